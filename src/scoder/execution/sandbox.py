"""Execute untrusted generated code in a contained subprocess.

Layers, each independent of the code being run:
- a fresh temporary working directory, removed afterwards; a minimal environment (no
  secrets, no proxies); stdin closed;
- resource limits set before exec: address space (memory), CPU seconds, file size, open
  files, process count;
- its own session/process group, killed as a whole (SIGKILL) at the wall-clock timeout, so
  loops, sleeps, ignored signals or children cannot outlive it;
- no network: a new, empty network namespace (`unshare -n`) where the system allows it,
  and in every case a PEP 578 audit hook (see sandbox_runner) that refuses sockets, new
  processes, signals to other processes, ctypes and writes outside the working directory.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from scoder.execution import sandbox_runner

# run by path in a fresh `python -I`; imported here so that it is in the import closure of every
# stage that executes code (DVC reruns them when it changes)
RUNNER = Path(sandbox_runner.__file__)


@dataclass
class SandboxConfig:
    timeout_s: float = 5.0
    memory_mb: int = 512
    cpu_s: int = 10
    file_size_mb: int = 16
    max_open_files: int = 64
    network_namespace: bool = True  # use `unshare -n` when the system allows it


@dataclass
class ExecResult:
    exec_ok: bool
    returncode: int | None
    timed_out: bool
    seconds: float
    stdout: str
    stderr: str
    isolation: str  # "netns+audit" or "audit"

    def as_dict(self) -> dict:
        return asdict(self)


@functools.lru_cache(maxsize=1)
def network_namespace_available() -> bool:
    unshare = shutil.which("unshare")
    if not unshare:
        return False
    try:
        probe = subprocess.run([unshare, "-n", "true"], capture_output=True, timeout=10)
        return probe.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _die_with_parent() -> None:
    """SIGKILL this process when the process that started it dies (Linux PR_SET_PDEATHSIG), so a
    killed stage leaves no sandboxed code running; elsewhere a no-op."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _limits(config: SandboxConfig):
    def apply() -> None:
        os.setsid()
        _die_with_parent()
        mb = 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (config.memory_mb * mb, config.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_CPU, (config.cpu_s, config.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (config.file_size_mb * mb, config.file_size_mb * mb))
        resource.setrlimit(resource.RLIMIT_NOFILE, (config.max_open_files, config.max_open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # not enforced for root; the audit hook refuses fork/exec in any case
        resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))

    return apply


def _own_session() -> None:
    """A new session and no core files; a process started this way must watch for its
    parent's death itself (the evalplus runner kills its whole group then)."""
    os.setsid()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def minimal_env(workdir: str | Path, **extra: str) -> dict[str, str]:
    """The whole environment a contained process gets: no secrets, no proxies, its home and
    temporary folder inside `workdir`."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "TMPDIR": str(workdir), "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0", **extra}


@dataclass
class Contained:
    returncode: int | None
    timed_out: bool
    seconds: float
    stdout: bytes
    stderr: bytes
    isolation: str  # "netns+audit" or "audit"


def run_contained(command: list[str], workdir: str | Path, env: dict[str, str], timeout_s: float,
                  network_namespace: bool = True, preexec=_own_session) -> Contained:
    """Run `command` in `workdir` with exactly `env`, stdin closed, in its own session (a new
    empty network namespace when allowed), and SIGKILL its whole process group at `timeout_s`
    (and on the way out, so no child outlives the call)."""
    use_netns = network_namespace and network_namespace_available()
    if use_netns:
        command = [shutil.which("unshare"), "-n", *command]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, preexec_fn=preexec, close_fds=True)
    timed_out = False
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(process.pid)
        stdout, stderr = process.communicate()
    finally:
        _kill_group(process.pid)  # children left behind (e.g. a worker that ignored its exit)
    return Contained(process.returncode, timed_out, round(time.perf_counter() - start, 3), stdout, stderr,
                     "netns+audit" if use_netns else "audit")


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_untrusted(code: str, config: SandboxConfig | None = None) -> ExecResult:
    config = config or SandboxConfig()
    workdir = tempfile.mkdtemp(prefix="scoder-sandbox-")
    try:
        code_file = Path(workdir) / "candidate.py"
        code_file.write_text(code, encoding="utf-8")
        done = run_contained([sys.executable, "-I", str(RUNNER), workdir, str(code_file)], workdir,
                             minimal_env(workdir), config.timeout_s, config.network_namespace, _limits(config))
        return ExecResult(
            exec_ok=(not done.timed_out and done.returncode == 0),
            returncode=done.returncode,
            timed_out=done.timed_out,
            seconds=done.seconds,
            stdout=done.stdout.decode("utf-8", "replace")[-2000:],
            stderr=done.stderr.decode("utf-8", "replace")[-2000:],
            isolation=done.isolation,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

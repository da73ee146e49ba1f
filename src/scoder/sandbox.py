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

RUNNER = Path(__file__).with_name("sandbox_runner.py")


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


def _limits(config: SandboxConfig):
    def apply() -> None:
        os.setsid()
        mb = 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (config.memory_mb * mb, config.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_CPU, (config.cpu_s, config.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (config.file_size_mb * mb, config.file_size_mb * mb))
        resource.setrlimit(resource.RLIMIT_NOFILE, (config.max_open_files, config.max_open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # not enforced for root; the audit hook refuses fork/exec in any case
        resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))

    return apply


def run_untrusted(code: str, config: SandboxConfig | None = None) -> ExecResult:
    config = config or SandboxConfig()
    use_netns = config.network_namespace and network_namespace_available()
    workdir = tempfile.mkdtemp(prefix="scoder-sandbox-")
    try:
        code_file = Path(workdir) / "candidate.py"
        code_file.write_text(code, encoding="utf-8")
        command = [sys.executable, "-I", str(RUNNER), workdir, str(code_file)]
        if use_netns:
            command = [shutil.which("unshare"), "-n", *command]
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        start = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, preexec_fn=_limits(config), close_fds=True,
        )
        timed_out = False
        try:
            stdout, stderr = process.communicate(timeout=config.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            stdout, stderr = process.communicate()
        seconds = time.perf_counter() - start
        return ExecResult(
            exec_ok=(not timed_out and process.returncode == 0),
            returncode=process.returncode,
            timed_out=timed_out,
            seconds=round(seconds, 3),
            stdout=stdout.decode("utf-8", "replace")[-2000:],
            stderr=stderr.decode("utf-8", "replace")[-2000:],
            isolation="netns+audit" if use_netns else "audit",
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

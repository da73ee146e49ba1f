"""Runs inside the sandbox subprocess (never imported by the pipeline itself).

Usage: python -I sandbox_runner.py <workdir> <code file>

An audit hook (PEP 578) is installed before the candidate code runs; audit hooks cannot be
removed, so the code cannot switch the policy off. The policy refuses: sockets, new
processes (fork, exec, spawn, system, Popen), signals to other processes, ctypes, and any
write, delete, rename or permission change outside the working directory, plus reads of
other processes' /proc entries. Resource limits and the wall-clock kill are applied by the
parent, which this process cannot influence.
"""

import os
import sys
import traceback


def install_policy(workdir: str) -> None:
    workdir = os.path.realpath(workdir)
    inside = lambda path: os.path.realpath(os.fspath(path)).startswith(workdir + os.sep) or os.path.realpath(os.fspath(path)) == workdir  # noqa: E731
    blocked = {
        "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo", "socket.__new__",
        "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen",
        "os.kill", "os.killpg", "signal.pthread_kill", "ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function",
        "os.setuid", "os.setgid", "os.chroot", "resource.setrlimit", "resource.prlimit",
        "os.putenv", "os.unsetenv", "webbrowser.open",
    }
    path_events = {
        "os.remove", "os.rmdir", "os.rename", "os.chmod", "os.chown", "os.mkdir", "os.symlink", "os.link",
        "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile", "shutil.chown", "os.chdir",
    }

    def hook(event, args):
        if event in blocked:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode = args[0], args[1]
            if isinstance(path, int):
                return
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            real = os.path.realpath(path) if isinstance(path, str) else ""
            writing = isinstance(mode, str) and any(c in mode for c in "wax+")
            writing = writing or (isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC))
            if writing and not inside(path):
                raise PermissionError(f"sandbox: writing {path} is not allowed")
            if real.startswith("/proc/") and not real.startswith(f"/proc/{os.getpid()}/"):
                raise PermissionError(f"sandbox: reading {path} is not allowed")
        elif event in path_events:
            for arg in args[:2]:
                if isinstance(arg, (str, bytes, os.PathLike)) and not inside(os.fsdecode(arg)):
                    raise PermissionError(f"sandbox: {event} outside the working directory")

    sys.addaudithook(hook)


def main() -> None:
    workdir, code_file = sys.argv[1], sys.argv[2]
    with open(code_file, encoding="utf-8") as handle:
        code = handle.read()
    try:
        compiled = compile(code, "<candidate>", "exec")
        install_policy(workdir)
        exec(compiled, {"__name__": "__main__", "__builtins__": __builtins__})
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as error:
        report_candidate_error(error)
        sys.exit(1)  # what an uncaught exception exits with


def report_candidate_error(error: BaseException) -> None:
    """The traceback without this runner's own frames: they name the checkout's absolute path,
    which would make the stderr kept in the records (and their DVC hashes) differ per folder."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    traceback.print_exception(type(error), error, tb)


if __name__ == "__main__":
    main()

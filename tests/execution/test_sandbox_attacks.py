"""Attack snippets through every place where generated code executes:
- `judge.execution_check` (score@R's and synthesize's execution check, `run_untrusted`);
- `evaluate.run_humaneval_base` (evaluate's fallback without evalplus problem files);
- `evaluate.run_evalplus` (evaluate and specialist_evaluate), each attack as a HumanEval+ solution.

Each attack is written so that its statements complete only if it got through. "Completed"
means the execution check reports exit 0 with the completion marker printed, or evalplus
reports the solution as passing (the attack runs first, then the canonical body). Each
attack also has an outside effect that the test checks itself: a file written or deleted
outside the sandbox, a byte received by a listener on loopback, a victim process killed,
or the caller gone. No attack may complete or leave an effect, every call must come back
within its time bound, and a legitimate control solution must still pass, so the
containment does not just break everything.
"""

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

from scoder.evaluation.benchmarks import read_problems, run_evalplus, run_humaneval_base, write_problem_subset
from scoder.bootstrap.scoring import execution_check
from scoder.execution.sandbox import SandboxConfig

SECRET_NAME = "OPENAI_API_KEY"
SECRET_VALUE = "sk-canary-7f3a9c1e5b2d4068"
MARK = "ATTACK-COMPLETED"


@dataclass
class Target:
    """What the attacks aim at, created fresh by the test outside the sandbox."""
    outside: Path  # a folder outside every sandbox
    victim: subprocess.Popen  # an innocent process the attacks try to kill
    port: int  # a listener on the host's loopback
    received: list  # bytes the listener got
    caller_pid: int  # the test process (the stage, in real runs)

    def fields(self) -> dict:
        return {"outside": str(self.outside), "victim": self.victim.pid, "port": self.port,
                "secret_name": SECRET_NAME, "secret": SECRET_VALUE, "caller": self.caller_pid}


# name -> attack statements (format fields from Target.fields). Each line of an attack must
# raise, hang or be killed when contained; reaching its end means it got through.
ATTACKS = {
    "network_connect": "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=3)\ns.sendall(b'leak')",
    "network_dns": "import socket\nsocket.getaddrinfo('pypi.org', 443)",
    "secret_from_environment": "import os\nassert os.environ.get('{secret_name}') == '{secret}'",
    "secret_from_caller_proc": "import io\nassert b'{secret}' in io.open('/proc/{caller}/environ', 'rb').read()",
    "write_outside_tempdir": "import io\nio.open('{outside}/written.txt', 'w').write('x')",
    "os_open_outside_tempdir": "import os, posix\nfd = posix.open('{outside}/os_open.txt', os.O_WRONLY | os.O_CREAT)\nposix.write(fd, b'x')",
    "delete_outside_tempdir": "import posix\nposix.unlink('{outside}/keep.txt')",
    "shell_command": "import posix\nassert posix.system('touch {outside}/shell.txt') == 0",
    "fork_bomb": "import posix\nfor _ in range(16):\n    if posix.fork() == 0:\n        while True:\n            pass",
    "memory_bomb": "block = bytearray(6 * 1024 ** 3)\nblock[-1] = 1",
    "raise_memory_limit_then_bomb": "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))\nblock = bytearray(6 * 1024 ** 3)",
    "infinite_loop": "while True:\n    pass",
    "kill_the_parent": "import posix, signal\nposix.kill(posix.getppid(), signal.SIGKILL)",
    "kill_the_caller": "import posix, signal\nposix.kill({caller}, signal.SIGKILL)",
    "kill_another_process": "import posix, signal\nposix.kill({victim}, signal.SIGKILL)",
    "kill_own_process_group": "import posix, signal\nposix.killpg(posix.getpgid(0), signal.SIGKILL)",
    "signal_tampering": ("import signal\nfor s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGXCPU):\n"
                         "    signal.signal(s, signal.SIG_IGN)\nsignal.setitimer(signal.ITIMER_REAL, 0)\nwhile True:\n    pass"),
    "ctypes_libc_kill": "import ctypes\nctypes.CDLL(None).kill({victim}, 9)",
}


def outside_effects(target: Target) -> list[str]:
    effects = [f"wrote {p.name}" for p in target.outside.iterdir() if p.name != "keep.txt"]
    if not (target.outside / "keep.txt").exists():
        effects.append("deleted keep.txt")
    if target.victim.poll() is not None:
        effects.append("killed the victim process")
    if target.received:
        effects.append(f"network listener received {target.received}")
    return effects


@pytest.fixture()
def target(tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_NAME, SECRET_VALUE)  # a real key in the caller's environment
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    received: list = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
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
    yield Target(outside, victim, listener.getsockname()[1], received, os.getpid())
    stop.set()
    thread.join()
    listener.close()
    victim.kill()
    victim.wait()


def as_program(attack: str, target: Target) -> str:
    return attack.format(**target.fields()) + f"\nprint('{MARK}')\n"


def test_the_listener_and_victim_would_notice_an_uncontained_attack(target):
    """The effect checks are live: the same attacks outside the sandbox leave effects."""
    for name in ("network_connect", "write_outside_tempdir", "delete_outside_tempdir", "kill_another_process"):
        subprocess.run([sys.executable, "-c", as_program(ATTACKS[name], target)], check=True, capture_output=True)
    time.sleep(0.5)
    assert sorted(outside_effects(target)) == sorted(["wrote written.txt", "deleted keep.txt", "killed the victim process",
                                                      "network listener received [b'leak']"])


def test_attacks_through_the_execution_check(target):
    config = SandboxConfig(timeout_s=4, memory_mb=512, cpu_s=6)
    candidates = [{"id": name, "code": as_program(code, target)} for name, code in ATTACKS.items()]
    candidates.append({"id": "control", "code": f"print(sum(range(10)))\nprint('{MARK}')\n"})
    start = time.perf_counter()
    checks = execution_check(candidates, config, workers=2)
    elapsed = time.perf_counter() - start
    verdicts = {c["id"]: r for c, r in zip(candidates, checks)}
    assert verdicts.pop("control")["exec_ok"]  # ordinary code still runs
    completed = [name for name, r in verdicts.items() if r["exec_ok"]]
    assert completed == [], f"attacks that got through: {completed}"
    assert outside_effects(target) == []
    # every attack was stopped within its own limit: 18 attacks over 2 workers, 4 s wall limit each
    assert elapsed < len(candidates) / 2 * (config.timeout_s + 2)
    reasons = {name: r["exec_reason"] for name, r in verdicts.items()}
    assert reasons["infinite_loop"] == reasons["signal_tampering"] == "timeout"
    assert all(r["exec_isolation"] in ("netns+audit", "audit") for r in verdicts.values())


@pytest.fixture(scope="module")
def humaneval0(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("he0")
    subset = write_problem_subset(shared_data / "benchmarks" / "HumanEvalPlus-v0.1.10.jsonl.gz", ["HumanEval/0"],
                                  folder / "problems.jsonl")
    return subset, read_problems(subset)[0]


def as_solution(attack: str, problem: dict, target: Target) -> str:
    """The attack as the first statements of the task's function, then the canonical body:
    the solution passes only if every attack statement completed."""
    return problem["prompt"] + textwrap.indent(attack.format(**target.fields()), "    ") + "\n" + problem["canonical_solution"]


def test_attacks_through_the_humaneval_fallback(target, humaneval0):
    _, problem = humaneval0
    solutions = {problem["task_id"]: [as_solution(code, problem, target) for code in ATTACKS.values()]
                 + [problem["prompt"] + problem["canonical_solution"]]}
    results = run_humaneval_base([problem], solutions, SandboxConfig(timeout_s=4, memory_mb=512, cpu_s=6), workers=2)
    verdicts = [r["base_status"] for r in results[problem["task_id"]]]
    assert verdicts[-1] == "pass"  # the control
    completed = [name for name, v in zip(ATTACKS, verdicts) if v == "pass"]
    assert completed == [], f"attacks that got through: {completed}"
    assert outside_effects(target) == []


@pytest.mark.slow
def test_attacks_through_evalplus(target, humaneval0, tmp_path):
    problems_file, problem = humaneval0
    solutions = {problem["task_id"]: [as_solution(code, problem, target) for code in ATTACKS.values()]
                 + [problem["prompt"] + problem["canonical_solution"]]}
    start = time.perf_counter()
    # base tests only: an attack that ignores SIGALRM is then stopped by evalplus' per-task
    # deadline (the sum of the base inputs' limits) instead of the plus inputs' 60 s cap
    results = run_evalplus("humaneval", problems_file, solutions, tmp_path / "work", base_only=True, timeout_s=300,
                           sandbox=SandboxConfig(memory_mb=1024))
    elapsed = time.perf_counter() - start
    verdicts = [r["base_status"] for r in results[problem["task_id"]]]
    assert verdicts[-1] == "pass"  # the control
    completed = [name for name, v in zip(ATTACKS, verdicts) if v == "pass"]
    assert completed == [], f"attacks that got through: {completed}"
    assert outside_effects(target) == []
    assert elapsed < 240
    # nothing evalplus started outlives the call
    leftover = subprocess.run(["pgrep", "-f", "scoder-evalplus-"], capture_output=True, text=True).stdout.split()
    assert leftover == []


def test_evalplus_runs_without_the_callers_environment(target, humaneval0, tmp_path, monkeypatch):
    """The evalplus process itself (not only its solutions) gets no secret from the caller."""
    problems_file, problem = humaneval0
    leak = "import os\nassert not [k for k in os.environ if k not in ('PATH', 'HOME', 'TMPDIR', 'LANG', 'PYTHONHASHSEED', " \
           "'HUMANEVAL_OVERRIDE_PATH', 'EVALPLUS_MAX_MEMORY_BYTES', 'XDG_CACHE_HOME', 'OMP_NUM_THREADS')], sorted(os.environ)"
    results = run_evalplus("humaneval", problems_file, {problem["task_id"]: [as_solution(leak, problem, target)]},
                           tmp_path / "work", base_only=True)
    assert results[problem["task_id"]][0]["base_status"] == "pass"


KILLED_STAGE = """
import sys
from pathlib import Path
from scoder.evaluation.benchmarks import read_problems, run_evalplus
from scoder.bootstrap.scoring import execution_check
from scoder.execution.sandbox import SandboxConfig
problems_file = sys.argv[1]
problem = read_problems(problems_file)[0]
slow = problem["prompt"] + "    import time\\n    time.sleep(120)\\n" + problem["canonical_solution"]
if sys.argv[2] == "check":
    execution_check([{"id": "x", "code": "import time\\ntime.sleep(120)"}], SandboxConfig(timeout_s=120, cpu_s=200), 1)
else:
    run_evalplus("humaneval", problems_file, {problem["task_id"]: [slow]}, Path(sys.argv[3]), base_only=True, timeout_s=300)
"""


@pytest.mark.parametrize("place", ["check", "evalplus"])
def test_a_killed_stage_leaves_no_generated_code_running(place, humaneval0, tmp_path):
    problems_file, _ = humaneval0
    marker = "scoder-sandbox-" if place == "check" else "scoder-evalplus-"

    def running():
        return subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()

    assert running() == []
    stage = subprocess.Popen([sys.executable, "-c", KILLED_STAGE, str(problems_file), place, str(tmp_path / "w")])
    deadline = time.time() + 60
    while not running() and time.time() < deadline:
        time.sleep(0.2)
    assert running(), "the generated code never started"
    time.sleep(1.5)
    stage.send_signal(signal.SIGKILL)
    stage.wait()
    deadline = time.time() + 10
    while running() and time.time() < deadline:
        time.sleep(0.2)
    assert running() == []

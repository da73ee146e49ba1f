"""Runs evalplus inside the evaluation sandbox (never imported by the pipeline itself).

Usage: python -I evalplus_runner.py '<evaluate() options as JSON>'

The parent (`scoder.evaluation.benchmarks.run_evalplus`) starts this in a throwaway directory, with a
minimal environment (no secrets), an empty network namespace where the system allows it and
its own process group, killed as a whole at the wall-clock limit. evalplus executes each
solution in a forked process after its `reliability_guard`, which only replaces Python names
(`os.kill = None`, `builtins.open = None`): `posix.kill`, `io.open` or a socket still work
there. So the guard is wrapped: right after it, the solution process also installs the
project sandbox's audit policy (`sandbox_runner.install_policy`), rooted at the throwaway
directory. Audit hooks cannot be removed, so the solution cannot switch it off. The ground
truth (trusted canonical solutions) runs in this process, before any hook exists.
"""

import json
import os
import sys


def kill_group_when_orphaned() -> None:
    """evalplus' workers and solution processes would outlive a killed stage, and so would this
    process (started without PR_SET_PDEATHSIG for this reason): a watchdog kills the whole
    process group, this process included, once the stage is gone."""
    import signal
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    options = json.loads(sys.argv[1])
    kill_group_when_orphaned()
    sandbox_root = os.path.realpath(os.getcwd())

    import evalplus.eval as evalplus_eval
    from scoder.execution.sandbox_runner import install_policy

    evalplus_guard = evalplus_eval.reliability_guard

    def guard_then_audit(*args, **kwargs):
        evalplus_guard(*args, **kwargs)
        install_policy(sandbox_root)

    evalplus_eval.reliability_guard = guard_then_audit  # unsafe_execute looks the name up here

    from evalplus.evaluate import evaluate

    evaluate(**options)
    sys.stdout.flush()
    os._exit(0)  # evalplus' watchdog thread would keep the interpreter alive ~20 s more


if __name__ == "__main__":
    main()

"""Launchers from params: a stage that declares a launcher param is re-executed by the runner
under it when the param is set (`train.launcher: "torchrun --nproc_per_node 8"`), once, with
a marker that keeps the launched processes from launching again; an empty launcher runs the
stage in the process DVC started. The toy stage below checks the runner's side in seconds;
the slow tests run the real feature and training stages under a two-process torchrun."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from tiny_models import train_reference, write_feature_records

from scoder.core.stage import Output, Stage

BIN = Path(sys.executable).parent

SCRIPT = '''
import json, os
from scoder.core.stage import Input, Option, Output, Stage, run_stage

STAGE = Stage(name="toy", summary="a toy stage", section="toy", launcher="toy.launcher",
              inputs=(Input("data", "data.txt"),), outputs=(Output("out_dir", "out", folder=True),),
              metrics="metrics/toy.json", options=(Option("shard", "0/1", "i/n, or auto", launched="auto"),))


def work(ctx):
    with open("runs.jsonl", "a") as runs:  # one line per process that did the stage's work
        runs.write(json.dumps({"pid": os.getpid(), "marker": os.environ.get("SCODER_LAUNCHED"),
                               "shard": ctx.options["shard"], "threads": os.environ.get("OMP_NUM_THREADS")}) + "\\n")
    (ctx.path("out_dir") / "result.txt").write_text(ctx.path("data").read_text() + str(ctx.config["scale"]))
    if os.environ.get("TOY_EXIT"):
        raise SystemExit(int(os.environ["TOY_EXIT"]))
    return {"written": 1}


if __name__ == "__main__":
    run_stage(STAGE, work)
'''

# stands in for torchrun: records how it was called, sets the thread count as torchrun does for
# several processes, and runs the script with the arguments it was given. Called from a process
# it launched, it stops (exit 99) instead of recursing: a broken marker fails, never forks on.
LAUNCHER = '''
import json, os, subprocess, sys
with open("launches.jsonl", "a") as launches:
    launches.write(json.dumps({"argv": sys.argv[1:], "threads": os.environ.get("OMP_NUM_THREADS"),
                               "marker": os.environ.get("SCODER_LAUNCHED")}) + "\\n")
if os.environ.get("TOY_INSIDE_LAUNCHER"):
    sys.exit(99)
os.environ.update(OMP_NUM_THREADS="1", TOY_INSIDE_LAUNCHER="1")
sys.exit(subprocess.call([sys.executable, *sys.argv[1:]]))
'''


def run_toy(tmp_path: Path, launcher, *args: str, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "toy.py").write_text(SCRIPT)
    (tmp_path / "launch.py").write_text(LAUNCHER)
    (tmp_path / "data.txt").write_text("data-")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"toy": {"scale": 3, "launcher": launcher}}))
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("OMP_NUM_THREADS", "SCODER_THREADS", "SCODER_LAUNCHED", "RANK", "WORLD_SIZE")}
    environment.update(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlruns.db'}", **env)
    return subprocess.run([sys.executable, "toy.py", *args], cwd=tmp_path, env=environment, capture_output=True, text=True)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_names(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        return [row[0] for row in connection.execute("SELECT name FROM runs ORDER BY start_time")]


def test_an_empty_launcher_runs_the_stage_in_this_process(tmp_path):
    result = run_toy(tmp_path, "")
    assert result.returncode == 0, result.stderr
    runs = lines(tmp_path / "runs.jsonl")
    assert len(runs) == 1 and runs[0]["marker"] is None and runs[0]["shard"] == "0/1"
    assert not (tmp_path / "launches.jsonl").exists()
    assert "running under the launcher" not in result.stderr
    assert (tmp_path / "out" / "result.txt").read_text() == "data-3"


def test_a_launcher_reexecutes_the_stage_once_and_the_launched_process_never_launches_again(tmp_path):
    result = run_toy(tmp_path, f"{sys.executable} launch.py")
    assert result.returncode == 0, result.stderr
    launches, runs = lines(tmp_path / "launches.jsonl"), lines(tmp_path / "runs.jsonl")
    assert [launch["argv"] for launch in launches] == [["toy.py", "--shard", "auto"]]  # one launch, no fork bomb
    assert launches[0]["marker"] == "toy"
    assert len(runs) == 1 and runs[0]["marker"] == "toy" and runs[0]["shard"] == "auto"
    # the waiting process passes on the environment it was given, not its own thread count: the
    # launcher's choice stands and the launched process's set_threads keeps it
    assert launches[0]["threads"] is None and runs[0]["threads"] == "1"
    assert f"running under the launcher in params 'toy.launcher': {sys.executable} launch.py toy.py --shard auto" \
        in result.stderr
    assert (tmp_path / "out" / "result.txt").read_text() == "data-3"
    assert json.loads((tmp_path / "metrics/toy.json").read_text()) == {"written": 1}
    assert run_names(tmp_path / "mlruns.db") == ["toy"]  # the launched process's run; the waiting one opens none


def test_an_explicit_shard_is_kept_and_the_launched_exit_code_is_the_stages(tmp_path):
    result = run_toy(tmp_path, f"{sys.executable} launch.py", "--shard", "1/2", TOY_EXIT="5")
    assert result.returncode == 5
    assert [launch["argv"] for launch in lines(tmp_path / "launches.jsonl")] == [["toy.py", "--shard", "1/2"]]
    assert [run["shard"] for run in lines(tmp_path / "runs.jsonl")] == ["1/2"]
    assert "the launched run exited with code 5" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_process_started_by_a_launcher_by_hand_does_not_launch_again(tmp_path):
    """`torchrun stages/train.py ...` with train.launcher set: each process runs the stage."""
    result = run_toy(tmp_path, f"{sys.executable} launch.py", RANK="0")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "launches.jsonl").exists()
    assert [run["marker"] for run in lines(tmp_path / "runs.jsonl")] == [None]
    assert "already under a distributed launcher (RANK=0); params 'toy.launcher' is not applied again" in result.stderr


def test_an_unknown_launcher_program_is_a_clear_error_naming_the_param_and_the_command(tmp_path):
    result = run_toy(tmp_path, "no-such-launcher --nproc_per_node 2")
    assert result.returncode != 0
    assert ("stage 'toy': launcher 'no-such-launcher' (params 'toy.launcher') was not found on PATH or beside "
            in result.stderr)
    assert "command: no-such-launcher --nproc_per_node 2 toy.py --shard auto" in result.stderr
    assert not (tmp_path / "runs.jsonl").exists() and not (tmp_path / "out").exists()
    assert not (tmp_path / "mlruns.db").exists()


def test_a_launcher_that_is_not_a_command_line_is_named(tmp_path):
    result = run_toy(tmp_path, 8)
    assert result.returncode != 0 and "params 'toy.launcher' must be a command prefix (a string), got 8" in result.stderr
    result = run_toy(tmp_path, "torchrun --rdzv_endpoint 'localhost")
    assert result.returncode != 0 and "params 'toy.launcher' is not a command line" in result.stderr


# a launcher that waits to be told to stop, and says which signal told it
WAITING_LAUNCHER = '''
import os, signal, sys, time
def stop(signum, frame):
    # written then renamed: the test polls for the name, and must never read a half-written file
    open("launcher.signal.tmp", "w").write(str(signum))
    os.replace("launcher.signal.tmp", "launcher.signal")
    sys.exit(128 + signum)
signal.signal(signal.SIGTERM, stop)
open("launcher.pid", "w").write(str(os.getpid()))
time.sleep(120)
'''


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stopped_stage_process_stops_its_launcher(tmp_path, stop):
    """SIGTERM is passed on; after a SIGKILL (nothing can pass it on) the kernel sends the
    launcher SIGTERM, so no launcher goes on writing the stage's outputs under a rerun."""
    import time

    (tmp_path / "toy.py").write_text(SCRIPT)
    (tmp_path / "wait.py").write_text(WAITING_LAUNCHER)
    (tmp_path / "data.txt").write_text("data-")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"toy": {"scale": 3, "launcher": f"{sys.executable} wait.py"}}))
    env = {k: v for k, v in os.environ.items() if k not in ("SCODER_LAUNCHED", "RANK")}
    stage = subprocess.Popen([sys.executable, "toy.py"], cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (tmp_path / "launcher.pid").exists():
        assert time.monotonic() < deadline and stage.poll() is None, "the launcher never started"
        time.sleep(0.1)
    stage.send_signal(stop)
    assert stage.wait(timeout=30) == (128 + signal.SIGTERM if stop == signal.SIGTERM else -signal.SIGKILL)
    while not (tmp_path / "launcher.signal").exists():
        assert time.monotonic() < deadline, "the launcher was not stopped"
        time.sleep(0.1)
    assert (tmp_path / "launcher.signal").read_text() == str(int(signal.SIGTERM))


def test_the_launcher_param_must_be_one_the_stage_declares():
    with pytest.raises(ValueError, match=r"stage 'x': launcher param 'other.launcher' is not among its declared params"):
        Stage(name="x", summary="x", section="x", outputs=(Output("out", "out"),), launcher="other.launcher")
    assert Stage(name="x", summary="x", params=("other",), launcher="other.launcher").launcher == "other.launcher"


# --- the real stages under torchrun (two gloo processes on CPU) ----------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(processes: int) -> str:
    return f"{BIN / 'torchrun'} --nproc_per_node {processes} --master_port {free_port()}"


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """A folder holding six synthesis records (records.jsonl)."""
    root = tmp_path_factory.mktemp("launcher")
    write_feature_records(root)
    return root


@pytest.fixture(scope="module")
def reference(records):
    """The records' folder, with a tiny reference model (LoRA + Adam state) trained on two of them."""
    from scoder.core.io import read_jsonl

    train_reference(records, read_jsonl(records / "records.jsonl"))
    return records


def run_stage_script(root: Path, repo_root: Path, script: str, params: dict, name: str, *args: str) -> str:
    """`python stages/<script>` as dvc.yaml runs it (no launcher on the command line)."""
    (root / f"{name}.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / f'{script}-mlruns.db'}", "OMP_NUM_THREADS": "1"}
    env.pop("SCODER_LAUNCHED", None)
    result = subprocess.run([sys.executable, str(repo_root / "stages" / script), "--params", str(root / f"{name}.yaml"), *args],
                            cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.mark.slow
def test_features_under_a_torchrun_launcher_from_params_equal_one_process_bit_for_bit(reference, repo_root):
    root = reference
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["influence"].update(proj_dim=32, batch_size=1, shard_batches=1, max_dp=0, max_length=256)
    params["reference"]["require_parse_ok"] = False

    def features(name: str, launcher: str) -> str:
        params["influence"]["launcher"] = launcher
        return run_stage_script(root, repo_root, "dp_features.py", params, name,
                                "--data", str(root / "records.jsonl"), "--reference", str(root / "reference"),
                                "--out-dir", str(root / name), "--target", str(root / f"{name}-target.npy"),
                                "--metrics", str(root / f"{name}.json"))

    single_log = features("single", "")
    log = features("multi", torchrun(2))
    assert "running under the launcher" not in single_log
    assert "running under the launcher in params 'influence.launcher'" in log and "--shard auto" in log
    assert "feature process 0 of 2" in log and "feature process 1 of 2" in log
    single = sorted((root / "single").glob("features-*.npz"))
    multi = sorted((root / "multi").glob("features-*.npz"))
    assert len(single) == len(multi) == 6  # shards 0, 2, 4 by rank 0 and 1, 3, 5 by rank 1
    for a, b in zip(single, multi):
        with np.load(a) as x, np.load(b) as y:
            assert np.array_equal(x["features"], y["features"]) and np.array_equal(x["ids"], y["ids"])
    assert np.array_equal(np.load(root / "single-target.npy"), np.load(root / "multi-target.npy"))
    assert json.loads((root / "multi.json").read_text())["examples"] == 6
    # one run per stage execution: the launched main process's, none from the waiting process or rank 1
    assert run_names(root / "dp_features.py-mlruns.db") == ["dp_features", "dp_features"]


@pytest.mark.slow
def test_training_under_a_torchrun_launcher_from_params_writes_its_outputs_once(records, repo_root):
    root = records
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["train"].update(batch_size=1, num_checkpoints=1, max_length=256, require_parse_ok=False, max_examples=2,
                           epochs=2, learning_rate=1e-3, launcher=torchrun(2))
    log = run_stage_script(root, repo_root, "train.py", params, "train-launched", "--key", "0",
                           "--data", str(root / "records.jsonl"), "--init", str(repo_root / "data/synthesizer/base"),
                           "--out-dir", str(root / "train-launched"), "--metrics", str(root / "train-launched.json"))
    assert "running under the launcher in params 'train.launcher'" in log
    assert "stage 'train@0': process 0 of 2" in log and "stage 'train@0': process 1 of 2" in log
    metrics = json.loads((root / "train-launched.json").read_text())
    assert metrics["steps"] == 2 and metrics["checkpoints"] == 1  # 2 examples, 2 epochs, a global batch of 2
    assert sorted(p.name for p in (root / "train-launched").iterdir()) == ["checkpoint-0", "synthesizer.json"]
    assert not (root / "train-launched.partial").exists()
    assert run_names(root / "train.py-mlruns.db") == ["train@0"]

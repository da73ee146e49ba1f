"""The one stage runner: params are guarded (undeclared reads and unread declarations fail),
the MLflow run logs exactly the declared params, folder outputs are atomic, and the metrics
file is written and logged."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

SCRIPT = '''
from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(name="toy", summary="a toy stage", section="toy", params=("seed",),
              inputs=(Input("data", "data.txt"),), outputs=(Output("out_dir", "out", folder=True),),
              metrics="metrics/toy.json")


def work(ctx):
    import os
    mode = os.environ["TOY_MODE"]
    (ctx.path("out_dir") / "result.txt").write_text(ctx.path("data").read_text() + str(ctx.config["scale"]))
    if mode == "undeclared":
        ctx.param("other")
    if mode != "unread":
        ctx.param("seed")
    if mode == "fail":
        raise RuntimeError("the stage failed half-way")
    return {"written": 1, "precision": "fp32"}


if __name__ == "__main__":
    run_stage(STAGE, work)
'''


def run_toy(tmp_path: Path, mode: str) -> subprocess.CompletedProcess:
    (tmp_path / "toy.py").write_text(SCRIPT)
    (tmp_path / "data.txt").write_text("data-")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"seed": 7, "toy": {"scale": 3}, "other": {"secret_knob": 1}}))
    env = {**os.environ, "TOY_MODE": mode, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns.db'}"}
    return subprocess.run([sys.executable, "toy.py"], cwd=tmp_path, env=env, capture_output=True, text=True)


def test_a_stage_runs_with_exactly_its_declared_params_logged(tmp_path):
    result = run_toy(tmp_path, "ok")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "result.txt").read_text() == "data-3"
    assert json.loads((tmp_path / "metrics/toy.json").read_text()) == {"written": 1, "precision": "fp32"}
    with sqlite3.connect(tmp_path / "mlruns.db") as db:
        params = dict(db.execute("SELECT key, value FROM params").fetchall())
        tags = dict(db.execute("SELECT key, value FROM tags").fetchall())
        metrics = dict(db.execute("SELECT key, value FROM metrics").fetchall())
    assert params == {"seed": "7", "toy.scale": "3"}  # not `other`
    assert tags["scoder.stage"] == "toy" and tags["scoder.precision"] == "fp32"
    assert metrics == {"written": 1.0}


def test_reading_an_undeclared_param_is_an_error(tmp_path):
    result = run_toy(tmp_path, "undeclared")
    assert result.returncode != 0
    assert "stage 'toy' reads params 'other', which its declaration does not list" in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "metrics/toy.json").exists()


def test_declaring_a_param_the_stage_never_reads_is_an_error(tmp_path):
    result = run_toy(tmp_path, "unread")
    assert result.returncode != 0 and "declares params ['seed'] but never read them" in result.stderr


def test_a_failing_stage_leaves_the_previous_folder_output_whole(tmp_path):
    assert run_toy(tmp_path, "ok").returncode == 0
    result = run_toy(tmp_path, "fail")
    assert result.returncode != 0 and "the stage failed half-way" in result.stderr
    assert (tmp_path / "out" / "result.txt").read_text() == "data-3"
    with sqlite3.connect(tmp_path / "mlruns.db") as db:
        statuses = [r[0] for r in db.execute("SELECT status FROM runs ORDER BY start_time")]
    assert statuses == ["FINISHED", "FAILED"]


def test_a_missing_input_is_named(tmp_path):
    (tmp_path / "toy.py").write_text(SCRIPT)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"seed": 7, "toy": {"scale": 3}}))
    result = subprocess.run([sys.executable, "toy.py"], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "TOY_MODE": "ok", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"})
    assert result.returncode != 0 and "stage 'toy': input 'data' not found: data.txt" in result.stderr


def test_threads_are_set_explicitly_before_numeric_libraries_load(tmp_path):
    probe = textwrap.dedent('''
        import os, sys
        from scoder.core.stage import set_threads
        os.environ.pop("OMP_NUM_THREADS", None)
        os.environ["SCODER_THREADS"] = "1"
        assert set_threads() == 1
        import torch
        print(os.environ["OMP_NUM_THREADS"], torch.get_num_threads())
    ''')
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={**os.environ})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1"]

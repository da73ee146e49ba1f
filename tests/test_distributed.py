"""Gradient features under a distributed launcher: two processes (torchrun, gloo on CPU; on a
GPU node `accelerate launch --config_file configs/accelerate/ddp.yaml`) each compute their own
feature shards, and the merged result equals one process's bit for bit."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from tiny_models import train_reference, write_feature_records

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A tiny reference model (LoRA + Adam state) and six synthesis records."""
    root = tmp_path_factory.mktemp("dist")
    train_reference(root, write_feature_records(root))
    return root


def run_features(root, repo_root, name, launcher):
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["influence"].update(proj_dim=32, batch_size=1, shard_batches=1, max_dp=0, max_length=256)
    params["reference"]["require_parse_ok"] = False
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns.db'}", "OMP_NUM_THREADS": "1"}
    cmd = launcher + [str(repo_root / "stages/dp_features.py"), "--params", str(root / "params.yaml"),
                      "--data", str(root / "records.jsonl"), "--reference", str(root / "reference"),
                      "--out-dir", str(root / name), "--target", str(root / f"{name}-target.npy"),
                      "--metrics", str(root / f"{name}.json")]
    if "torchrun" in launcher[0]:
        cmd += ["--shard", "auto"]
    result = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def test_two_processes_write_disjoint_shards_that_merge_into_the_single_process_result(reference, repo_root):
    root = reference
    run_features(root, repo_root, "single", [sys.executable])
    log = run_features(root, repo_root, "multi", [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", "29533"])
    assert "process 1 of 2" in log and "process 0 of 2" in log
    single = sorted((root / "single").glob("features-*.npz"))
    multi = sorted((root / "multi").glob("features-*.npz"))
    assert len(single) == len(multi) == 6  # one batch per shard, shards 0,2,4 on rank 0 and 1,3,5 on rank 1
    for a, b in zip(single, multi):
        with np.load(a) as x, np.load(b) as y:
            assert np.array_equal(x["features"], y["features"]) and np.array_equal(x["ids"], y["ids"])
    assert np.array_equal(np.load(root / "single-target.npy"), np.load(root / "multi-target.npy"))
    assert json.loads((root / "multi.json").read_text())["examples"] == 6
    import sqlite3

    with sqlite3.connect(root / "mlruns.db") as db:  # the main process alone records the stage run
        names = [r[0] for r in db.execute("SELECT name FROM runs ORDER BY start_time")]
    assert names == ["dp_features", "dp_features"]


def run_training(root, repo_root, name, launcher, batch_size):
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["train"].update(batch_size=batch_size, num_checkpoints=1, max_length=256, require_parse_ok=False,
                           max_examples=2, epochs=2, learning_rate=1e-3)  # each step sees both examples
    (root / f"{name}.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'train-mlruns.db'}", "OMP_NUM_THREADS": "1"}
    cmd = launcher + [str(repo_root / "stages/train.py"), "--params", str(root / f"{name}.yaml"), "--key", "0",
                      "--data", str(root / "records.jsonl"),
                      "--init", str(repo_root / "data/synthesizer/base"), "--out-dir", str(root / name), "--metrics", str(root / f"{name}.json")]
    result = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_ddp_training_matches_one_process_with_the_same_global_batch(reference, repo_root):
    """train@K under two DDP processes (batch 1 each) against one process with batch 2: the
    same two optimizer steps, one checkpoint written once, one MLflow run."""
    from safetensors.torch import load_file

    root = reference
    run_training(root, repo_root, "train-single", [sys.executable], batch_size=2)
    run_training(root, repo_root, "train-ddp", [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", "29534"],
                 batch_size=1)
    single = json.loads((root / "train-single.json").read_text())
    ddp = json.loads((root / "train-ddp.json").read_text())
    assert single["steps"] == ddp["steps"] == 2 and ddp["checkpoints"] == 1
    assert sorted(p.name for p in (root / "train-ddp").iterdir()) == ["checkpoint-0", "synthesizer.json"]
    a = load_file(str(root / "train-single/checkpoint-0/adapter_model.safetensors"))
    b = load_file(str(root / "train-ddp/checkpoint-0/adapter_model.safetensors"))
    assert a.keys() == b.keys()
    # LoRA B starts at zero, so B is the whole update. Adam's first steps move every element by
    # about lr * sign(gradient): an element whose gradient is ~0 flips with reduction order, so
    # the comparison is the direction of the update, not its worst element.
    import torch

    keys = [k for k in a if "lora_B" in k]
    x, y = (torch.cat([t[k].flatten() for k in keys]) for t in (a, b))
    assert float(x.abs().max()) > 1e-3  # it moved
    assert float(torch.nn.functional.cosine_similarity(x, y, dim=0)) > 0.999
    assert abs(single["checkpoint_loss"]["0"] - ddp["checkpoint_loss"]["0"]) < 0.01 * single["checkpoint_loss"]["0"]
    import sqlite3

    with sqlite3.connect(root / "train-mlruns.db") as db:
        assert [r[0] for r in db.execute("SELECT name FROM runs")] == ["train@0", "train@0"]

"""Gradient features on Ray: the dp_features stage with `influence.ray.workers: 2` (a local Ray
on 127.0.0.1, started by the stage) writes the same shards and target, bit for bit, as the
stage in one process; a rerun after shards were lost recomputes only those."""

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
pytest.importorskip("ray")

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A tiny reference model (LoRA + Adam state) and six synthesis records."""
    root = tmp_path_factory.mktemp("ray-features")
    train_reference(root, write_feature_records(root))
    return root


def run_features(root, repo_root, name, workers):
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["influence"].update(proj_dim=32, batch_size=1, shard_batches=1, max_dp=0, max_length=256)
    params["influence"]["ray"] = {"workers": workers, "threads": 1}
    params["reference"]["require_parse_ok"] = False
    (root / f"{name}.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns.db'}", "SCODER_THREADS": "1"}
    cmd = [sys.executable, str(repo_root / "stages/dp_features.py"), "--params", str(root / f"{name}.yaml"),
           "--data", str(root / "records.jsonl"), "--reference", str(root / "reference"),
           "--out-dir", str(root / name), "--target", str(root / f"{name}-target.npy"), "--metrics", str(root / f"{name}.json")]
    result = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((root / f"{name}.json").read_text()), result.stdout + result.stderr


def test_feature_shards_on_two_ray_workers_equal_one_process(reference, repo_root):
    root = reference
    single, _ = run_features(root, repo_root, "single", 0)
    on_ray, log = run_features(root, repo_root, "ray", 2)
    assert "gradient features on 2 Ray task(s)" in log
    a, b = sorted((root / "single").glob("features-*.npz")), sorted((root / "ray").glob("features-*.npz"))
    assert len(a) == len(b) == 6
    for x, y in zip(a, b):
        with np.load(x) as p, np.load(y) as q:
            assert np.array_equal(p["features"], q["features"]) and np.array_equal(p["ids"], q["ids"])
            assert np.array_equal(p["losses"], q["losses"], equal_nan=True)
    assert np.array_equal(np.load(root / "single-target.npy"), np.load(root / "ray-target.npy"))
    assert on_ray["computed_shards"] == 6 and on_ray["examples"] == single["examples"] == 6
    # two shards lost: the rerun on Ray computes those two only, and the target is unchanged
    for lost in b[:2]:
        lost.unlink()
    again, _ = run_features(root, repo_root, "ray", 2)
    assert again["computed_shards"] == 2
    assert np.array_equal(np.load(root / "single-target.npy"), np.load(root / "ray-target.npy"))

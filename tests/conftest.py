import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO_ROOT = Path(__file__).resolve().parents[1]

# `make test` runs two pytest-xdist workers (one per core; most slow tests wait on subprocesses,
# servers and kill points). Each worker gets its own response/model cache and default MLflow
# store, so two processes never share a sqlite file or unpack a model into the same folder.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER:
    import tempfile

    _scratch = Path(tempfile.gettempdir()) / f"scoder-tests-{os.environ.get('PYTEST_XDIST_TESTRUNUID', 'run')}-{_WORKER}"
    _scratch.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SCODER_CACHE_DIR", str(_scratch / "cache"))
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{_scratch / 'mlruns.db'}")
    # converted GGUF models: one folder for the run's workers (a lock lets one convert), not ~/.cache
    _run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "run")
    os.environ.setdefault("SCODER_MODEL_CACHE", str(Path(tempfile.gettempdir()) / f"scoder-tests-{_run}-models"))


def shared_data_dir() -> Path:
    """Offline benchmarks and instruction sets: $SCODER_SHARED_DATA or ../shared/data."""
    return Path(os.environ.get("SCODER_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.exists():
        pytest.fail(f"shared data not found at {path}; set SCODER_SHARED_DATA")
    return path


@pytest.fixture()
def mlflow_store(tmp_path, monkeypatch):
    """A private sqlite MLflow store per test."""
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


# tracked files under data/ that are inputs of the pipeline, not outputs of a stage
SHIPPED_DATA = ("data/benchmarks/", "data/teacher/", "data/synthesizer/base")


def new_project(repo_root: Path, dest: Path, edit_params: Callable[[dict], None]) -> Path:
    """A fresh git repository at `dest` holding this repository's tracked files, without stage
    outputs, metrics or dvc.lock (a run starts from nothing, as a new profile would), but with the
    shipped inputs under data/ (the benchmark slices the pool decontaminates against), with
    `edit_params` applied to params.yaml and everything committed."""
    files = subprocess.run(["git", "ls-files"], cwd=repo_root, capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        shipped_input = rel.startswith(SHIPPED_DATA)
        if rel.startswith("metrics/") or rel == "dvc.lock" or (rel.startswith("data/") and not shipped_input):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo_root / rel, target)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    edit_params(params)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest

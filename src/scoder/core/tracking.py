"""MLflow tracking for stage executions.

One MLflow run per stage execution, carrying the stage's params section, its metrics, small
artifacts, the git commit and the stage name. Runs of one pipeline share the tag
`scoder.pipeline_id` (git commit + hash of params.yaml, or $SCODER_PIPELINE_ID), so the runs
that `dvc repro` makes for one configuration can be listed together.

The default store is a sqlite file at the repository root (`mlruns.db`, git-ignored);
`MLFLOW_TRACKING_URI` overrides it (e.g. an `mlflow server`). Secrets are never logged:
params whose key looks like a credential are redacted, and so is any value equal to the
value of a secret-looking environment variable.

Provenance: when a stage's run ends, every metrics file (`metrics/**/*.json`, relative to the
working directory, which is the repository root under DVC) that the stage wrote is recorded
as a tag `scoder.metrics:<path>` = its content hash. `provenance()` (`scoder provenance`)
maps each metrics file back to the run that wrote those exact bytes, with its git commit and
the hash of dvc.lock when the stage started.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password|passwd|credential|auth)", re.I)
REDACTED = "***redacted***"
DEFAULT_EXPERIMENT = "scoder"
METRICS_DIR = Path("metrics")
METRICS_TAG = "scoder.metrics:"


def repo_root() -> Path:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
        )
        return Path(out.stdout.strip())
    except (subprocess.CalledProcessError, FileNotFoundError):
        return Path.cwd()


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "none"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlruns.db'}"


def _secret_values() -> set[str]:
    return {v for k, v in os.environ.items() if SECRET_KEY.search(k) and len(v) >= 8}


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings to dotted keys (lists stay values)."""
    flat: dict[str, Any] = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    else:
        flat[prefix] = obj
    return flat


def redact(params: dict[str, Any]) -> dict[str, Any]:
    """Drop credential values: by key name (except `*_env`, which names a variable) and by value."""
    secrets = _secret_values()
    clean = {}
    for key, value in params.items():
        leaf = key.rsplit(".", 1)[-1]
        secret_by_name = SECRET_KEY.search(leaf) and not leaf.endswith("_env")
        secret_by_value = isinstance(value, str) and any(s in value for s in secrets)
        clean[key] = REDACTED if (secret_by_name or secret_by_value) else value
    return clean


class StageRun:
    """Handle given to a stage inside `stage_run`; wraps the active MLflow run."""

    def __init__(self, mlflow_module: Any, run: Any):
        self._mlflow = mlflow_module
        self.run = run
        self.run_id = run.info.run_id

    def log_metrics(self, metrics: dict[str, Any]) -> None:
        # MLflow names allow letters, digits, _ - . space / only (failure reasons hold ':' and ',')
        numeric = {
            re.sub(r"[^\w\-. /]", "_", k): float(v)
            for k, v in flatten(metrics).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if numeric:
            self._mlflow.log_metrics(numeric)

    def log_artifact(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if path.exists() and path.stat().st_size <= 5_000_000:
            self._mlflow.log_artifact(str(path))

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._mlflow.set_tags(redact({k: str(v) for k, v in tags.items()}))


class _NullRun:
    run_id = None

    def log_metrics(self, metrics: dict[str, Any]) -> None:
        pass

    def log_artifact(self, path: str | os.PathLike) -> None:
        pass

    def set_tags(self, tags: dict[str, Any]) -> None:
        pass


@contextlib.contextmanager
def stage_run(stage: str, params: dict[str, Any], params_file: str | Path = "params.yaml") -> Iterator[StageRun]:
    """Open an MLflow run for one execution of `stage`, logging its params section. In the
    non-main processes of a distributed launch (RANK > 0) nothing is logged: the stage is one
    run, recorded by the main process."""
    if int(os.environ.get("RANK", "0")) != 0:
        yield _NullRun()
        return
    import mlflow  # imported here: it takes seconds and pure library code should not pay it

    logging.getLogger("alembic").setLevel(logging.WARNING)
    root = repo_root()
    mlflow.set_tracking_uri(tracking_uri())
    experiment_name = os.environ.get("SCODER_EXPERIMENT", DEFAULT_EXPERIMENT)
    if mlflow.get_experiment_by_name(experiment_name) is None:
        artifact_root = None
        if tracking_uri().startswith("sqlite:"):
            artifact_root = (root / "mlartifacts").as_uri()
        mlflow.create_experiment(experiment_name, artifact_location=artifact_root)
    mlflow.set_experiment(experiment_name)

    commit = git_commit()
    params_hash = _file_hash(Path(params_file))
    pipeline_id = os.environ.get("SCODER_PIPELINE_ID") or f"{commit[:12]}-{params_hash}"
    tags = {
        "scoder.stage": stage,
        "scoder.pipeline_id": pipeline_id,
        "scoder.params_hash": params_hash,
        "scoder.dvc_lock_hash": _file_hash(root / "dvc.lock"),
        "mlflow.source.git.commit": commit,
        "scoder.host": socket.gethostname(),
        "scoder.pid": str(os.getpid()),
    }
    _close_orphaned_runs(mlflow, stage, tags["scoder.host"])
    before = _metrics_files_state()
    with mlflow.start_run(run_name=stage, tags=tags) as run:
        flat = redact(flatten(params))
        # MLflow caps a param value at 6000 characters; long lists are summarised.
        mlflow.log_params({k: (str(v)[:5900]) for k, v in flat.items()})
        log.info("MLflow run %s for stage '%s' at %s", run.info.run_id, stage, tracking_uri())
        yield StageRun(mlflow, run)
        written = {path: _file_hash(path) for path, state in _metrics_files_state().items() if before.get(path) != state}
        mlflow.set_tags({f"{METRICS_TAG}{path.as_posix()}": digest for path, digest in written.items()})
        mlflow.set_tags(_float_environment_tags())
    log.info("stage '%s' finished its work; run %s closed as FINISHED", stage, run.info.run_id)


def _close_orphaned_runs(mlflow, stage: str, host: str) -> None:
    """Mark KILLED the runs of `stage` left RUNNING on this host by a process that no longer
    exists (a SIGKILLed stage never ends its run). Runs of live processes, or of other hosts,
    are left alone."""
    experiment = mlflow.get_experiment_by_name(os.environ.get("SCODER_EXPERIMENT", DEFAULT_EXPERIMENT))
    orphans = mlflow.search_runs(
        [experiment.experiment_id], output_format="list",
        filter_string=f"attributes.status = 'RUNNING' and tags.`scoder.stage` = '{stage}' and tags.`scoder.host` = '{host}'")
    for run in orphans:
        pid = int(run.data.tags.get("scoder.pid", "0"))
        if pid and not _process_exists(pid):
            log.info("closing run %s of stage '%s' as KILLED: its process %d ended without ending it",
                     run.info.run_id, stage, pid)
            mlflow.tracking.MlflowClient().set_terminated(run.info.run_id, status="KILLED")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _float_environment_tags() -> dict[str, str]:
    """What decides a CPU stage's floating-point bits besides its inputs: torch's thread count
    (reductions split differently; docs/reproducibility.md has the measurement)
    and the instruction set its kernels were picked for. Only for stages that used torch; this
    never imports it."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    return {"scoder.torch_threads": str(torch.get_num_threads()),
            "scoder.cpu_capability": str(torch.backends.cpu.get_cpu_capability())}


def _metrics_files_state() -> dict[Path, tuple[int, int]]:
    """(mtime, size) of every metrics JSON under the working directory's metrics/."""
    return {path: (path.stat().st_mtime_ns, path.stat().st_size) for path in sorted(METRICS_DIR.rglob("*.json"))}


def provenance(metrics_dir: str | Path = METRICS_DIR, uri: str | None = None) -> list[dict]:
    """For every metrics JSON under `metrics_dir` (a path relative to the repository root, as
    the stages write them), the newest FINISHED run that recorded exactly these bytes: run id,
    stage, git commit, dvc.lock hash. `run_id` is None where no run matches."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri or tracking_uri())
    by_file: dict[tuple[str, str], Any] = {}
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, "attributes.status = 'FINISHED'", order_by=["attributes.start_time ASC"],
                              max_results=50000) if experiments else []
    for run in runs:  # oldest first, so the newest run with the same bytes wins
        for key, digest in run.data.tags.items():
            if key.startswith(METRICS_TAG):
                by_file[(key[len(METRICS_TAG):], digest)] = run
    rows = []
    for path in sorted(Path(metrics_dir).rglob("*.json")):
        run = by_file.get((path.as_posix(), _file_hash(path)))
        tags = run.data.tags if run else {}
        rows.append({"metrics_file": path.as_posix(), "run_id": run.info.run_id if run else None,
                     "stage": tags.get("scoder.stage"), "git_commit": tags.get("mlflow.source.git.commit"),
                     "dvc_lock_hash": tags.get("scoder.dvc_lock_hash")})
    return rows

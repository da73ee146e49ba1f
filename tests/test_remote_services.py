"""Operations against real local services: a DVC remote on an S3-compatible server (moto) and
an MLflow tracking server, each started on 127.0.0.1 for the test."""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import new_project

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early ({process.returncode}): {process.stdout.read()[-2000:]}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def env_with(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", HF_HUB_OFFLINE="1", **extra)
    return env


def sh(cmd, cwd, env):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture()
def tiny_project(repo_root, tmp_path):
    """This repository's tracked files without outputs, with a pool of 30 stdlib files."""
    return new_project(repo_root, tmp_path / "project", lambda params: params["pool"].update(max_files=30, workers=1))


def md5_of_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_dvc_remote_on_s3_push_wipe_pull(tiny_project, tmp_path):
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    env = env_with(**credentials)
    server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(endpoint, server)
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
        s3.create_bucket(Bucket="scoder-dvc")
        project = tiny_project
        sh(["dvc", "remote", "add", "-d", "storage", "s3://scoder-dvc/cache"], project, env)
        sh(["dvc", "remote", "modify", "storage", "endpointurl", endpoint], project, env)
        sh(["dvc", "repro", "pool"], project, env)
        produced = md5_of_tree(project / "data/pool")
        assert "snippets.jsonl" in produced
        lock = yaml.safe_load((project / "dvc.lock").read_text())
        sh(["dvc", "push", "pool"], project, env)
        stored = s3.list_objects_v2(Bucket="scoder-dvc", Prefix="cache/")
        assert stored["KeyCount"] >= len(produced)

        shutil.rmtree(project / ".dvc" / "cache")
        shutil.rmtree(project / "data" / "pool")
        sh(["dvc", "pull", "pool"], project, env)
        assert md5_of_tree(project / "data/pool") == produced
        assert yaml.safe_load((project / "dvc.lock").read_text()) == lock
        assert "up to date" in sh(["dvc", "status", "pool"], project, env)
    finally:
        stop(server)


def test_stage_logs_to_an_mlflow_tracking_server(tiny_project, tmp_path):
    from mlflow.tracking import MlflowClient

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination", str(tmp_path / "artifacts")],
        env=env_with(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(f"{uri}/health", server)
        project = tiny_project
        sh(["dvc", "repro", "pool"], project, env_with(MLFLOW_TRACKING_URI=uri, SCODER_EXPERIMENT="remote-test"))
        assert not (project / "mlruns.db").exists()  # nothing went to the default local store
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name("remote-test")
        runs = client.search_runs([experiment.experiment_id], "tags.`scoder.stage` = 'pool'")
        assert len(runs) == 1 and runs[0].info.status == "FINISHED"
        run = runs[0]
        pool = json.loads((project / "metrics/pool.json").read_text())
        assert run.data.metrics["snippets"] == pool["snippets"]
        assert run.data.params["pool.max_files"] == "30"
        assert run.data.tags["mlflow.source.git.commit"] == sh(["git", "rev-parse", "HEAD"], project, env_with()).strip()
        assert "pool.json" in [a.path for a in client.list_artifacts(run.info.run_id)]
    finally:
        stop(server)

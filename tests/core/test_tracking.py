import subprocess
import sys

import mlflow
import torch

from scoder.core.tracking import REDACTED, flatten, redact, stage_run


def test_flatten_and_redact(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-very-secret-value")
    flat = flatten({"teacher": {"api_key": "abc", "api_key_env": "OPENAI_API_KEY", "url": "x"}})
    clean = redact({**flat, "teacher.header": "Bearer sk-test-very-secret-value"})
    assert clean["teacher.api_key"] == REDACTED
    assert clean["teacher.api_key_env"] == "OPENAI_API_KEY"  # the variable's name is fine
    assert clean["teacher.header"] == REDACTED
    assert clean["teacher.url"] == "x"


def test_stage_run_logs_params_metrics_tags(mlflow_store, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-very-secret-value")
    metrics_file = tmp_path / "m.json"
    metrics_file.write_text('{"count": 3}')
    with stage_run("pool", {"seed": 1, "pool": {"dedup": {"threshold": 0.5}, "token": "sk-test-very-secret-value"}}) as run:
        run.log_metrics({"count": 3, "nested": {"x": 1.5}, "label": "text-is-skipped"})
        run.log_artifact(metrics_file)
    client = mlflow.tracking.MlflowClient(mlflow_store)
    got = client.get_run(run.run_id)
    assert got.data.params["pool.dedup.threshold"] == "0.5"
    assert got.data.params["pool.token"] == REDACTED
    assert got.data.metrics == {"count": 3.0, "nested.x": 1.5}
    assert got.data.tags["scoder.stage"] == "pool"
    assert got.data.tags["scoder.torch_threads"] == str(torch.get_num_threads())  # torch was imported: tagged
    assert "mlflow.source.git.commit" in got.data.tags and "scoder.pipeline_id" in got.data.tags
    artifacts = [a.path for a in client.list_artifacts(run.run_id)]
    assert artifacts == ["m.json"]
    assert "sk-test-very-secret-value" not in str(got.data)


def test_every_metrics_file_maps_to_the_run_that_wrote_it(mlflow_store, tmp_path, monkeypatch, capsys):
    from scoder.cli import main
    from scoder.core.tracking import provenance

    monkeypatch.chdir(tmp_path)  # stages run from the repository root and write metrics/...
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "i"]):
        subprocess.run(cmd, cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    (tmp_path / "metrics" / "cost").mkdir(parents=True)
    (tmp_path / "metrics" / "old.json").write_text('{"kept": 1}')  # written before the run
    with stage_run("distill", {"distill": {}}) as first:
        (tmp_path / "metrics" / "distill.json").write_text('{"samples": 3}')
        (tmp_path / "metrics" / "cost" / "distill.json").write_text('{"usd": 0.1}')
    with stage_run("distill", {"distill": {}}) as second:  # a rerun writes new bytes to one file
        (tmp_path / "metrics" / "distill.json").write_text('{"samples": 4}')
    rows = {r["metrics_file"]: r for r in provenance("metrics", mlflow_store)}
    assert rows["metrics/distill.json"]["run_id"] == second.run_id
    assert rows["metrics/cost/distill.json"]["run_id"] == first.run_id
    assert rows["metrics/old.json"]["run_id"] is None  # no run wrote it
    assert all(r["git_commit"] == head and r["dvc_lock_hash"] not in (None, "none")
               for r in rows.values() if r["run_id"])
    assert main(["provenance"]) == 1 and "metrics/old.json" in capsys.readouterr().err
    (tmp_path / "metrics" / "old.json").unlink()
    assert main(["provenance"]) == 0
    # a hand-edited metrics file no longer maps to any run
    (tmp_path / "metrics" / "distill.json").write_text('{"samples": 99}')
    assert main(["provenance"]) == 1


def test_lock_diff_names_the_outputs_that_differ(tmp_path, capsys):
    from scoder.cli import main

    def lock(md5s):
        stages = {f"s{i}": {"outs": [{"path": path, "md5": md5}]} for i, (path, md5) in enumerate(md5s.items())}
        return yaml.safe_dump({"schema": "2.0", "stages": stages})

    import yaml
    (tmp_path / "a.lock").write_text(lock({"data/pool": "aa.dir", "data/distill": "bb.dir"}))
    (tmp_path / "b.lock").write_text(lock({"data/pool": "aa.dir", "data/distill": "cc.dir"}))
    assert main(["lock-diff", str(tmp_path / "a.lock"), str(tmp_path / "a.lock")]) == 0
    assert main(["lock-diff", str(tmp_path / "a.lock"), str(tmp_path / "b.lock")]) == 1
    assert "data/distill: bb.dir vs cc.dir" in capsys.readouterr().out


def test_a_killed_stage_s_run_is_marked_killed_when_the_stage_runs_again(mlflow_store, tmp_path):
    """A SIGKILLed stage never ends its MLflow run; the next run of that stage closes it."""
    script = ("import os, signal\nfrom scoder.core.tracking import stage_run\n"
              "with stage_run('pool', {}) as run:\n    print(run.run_id, flush=True)\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert killed.returncode == -9
    orphan = killed.stdout.split()[0]
    client = mlflow.tracking.MlflowClient(mlflow_store)
    assert client.get_run(orphan).info.status == "RUNNING"
    with stage_run("categorize", {}):  # another stage leaves it alone
        pass
    assert client.get_run(orphan).info.status == "RUNNING"
    with stage_run("pool", {}) as rerun:
        assert client.get_run(rerun.run_id).info.status == "RUNNING"  # its own run is not touched
    assert client.get_run(orphan).info.status == "KILLED"
    assert client.get_run(rerun.run_id).info.status == "FINISHED"

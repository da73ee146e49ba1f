import mlflow

from scoder.tracking import REDACTED, flatten, redact, stage_run


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
    assert "mlflow.source.git.commit" in got.data.tags and "scoder.pipeline_id" in got.data.tags
    artifacts = [a.path for a in client.list_artifacts(run.run_id)]
    assert artifacts == ["m.json"]
    assert "sk-test-very-secret-value" not in str(got.data)

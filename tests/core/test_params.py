import pytest
import yaml

from scoder.bootstrap.categorize import CategorizeConfig
from scoder.core.params import from_dict, load_params
from scoder.bootstrap.pool.config import PoolConfig


def test_default_params_file_parses(repo_root):
    params = load_params(repo_root / "params.yaml")
    pool = from_dict(PoolConfig, params["pool"], "pool")
    assert pool.dedup.threshold == 0.5
    categorize = from_dict(CategorizeConfig, params["categorize"], "categorize")
    assert len(categorize.categories) == 10


def test_unknown_key_is_an_error():
    with pytest.raises(ValueError, match=r"pool.dedup.*treshold"):
        from_dict(PoolConfig, {"dedup": {"treshold": 0.7}}, "pool")


def test_missing_params_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_params(tmp_path / "nope.yaml")


def test_params_yaml_holds_no_secret_values(repo_root):
    text = (repo_root / "params.yaml").read_text()
    data = yaml.safe_load(text)
    assert "sk-" not in text
    assert data["seed"] == int(data["seed"])


def test_distill_params_parse_into_typed_config(repo_root):
    from scoder.bootstrap.distill import DistillConfig

    params = load_params(repo_root / "params.yaml")
    config = from_dict(DistillConfig, params["distill"], "distill")
    assert config.teacher.backend == "dataset" and config.teacher.recorded.source.startswith("data/teacher/")
    assert config.sampling.max_tokens > 0
    assert config.teacher.api_key_env == "OPENAI_API_KEY"  # a variable name, never a key


def test_dicts_and_lists_of_sections_become_dataclasses():
    from scoder.evaluation.dataset_metrics import DatasetMetricsConfig
    from scoder.kspecialist.specialists import SpecialistEvaluateConfig

    config = from_dict(DatasetMetricsConfig, {"datasets": {"a": {"path": "x.jsonl", "question_fields": ["q"]}}}, "dm")
    assert config.datasets["a"].path == "x.jsonl" and config.datasets["a"].question_fields == ["q"]
    with pytest.raises(ValueError, match=r"dm.datasets.a.*: colour"):
        from_dict(DatasetMetricsConfig, {"datasets": {"a": {"path": "x", "colour": 1}}}, "dm")
    passes = from_dict(SpecialistEvaluateConfig, {"passes": [{"k": 10, "n": 10, "temperature": 0.8}]}, "se").passes
    assert passes[0].k == 10 and passes[0].temperature == 0.8
    with pytest.raises(ValueError, match=r"se.passes\[0\]"):
        from_dict(SpecialistEvaluateConfig, {"passes": [{"kk": 1}]}, "se")

"""`scoder export` and the export stage: a Hugging Face dataset folder that `datasets` loads,
with a generated card naming every model, the commit and the decontamination counts; the
parquet bytes depend on the rows only; bad input and an offline push are one clear line."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scoder.bootstrap.export import (PARAMS_READ, ExportConfig, ExportError, export_dataset, params_getter, push_to_hub,
                                    read_params)
from scoder.cli import main

REPO = Path(__file__).resolve().parents[2]

MODELS = {  # one distinct name per role, so the card can be checked for each
    "teacher": "gpt-4o-2024-08-06", "synthesizer": "Qwen/Qwen2.5-Coder-7B-Instruct", "scorer": "org/scorer-8b",
    "scorer_adapter": "data/scorer/checkpoint-0", "reference": "org/reference-8b", "embedding": "hkunlp/instructor-large",
    "quality": "org/quality-classifier", "code_model": "deepseek-ai/deepseek-coder-6.7b-base",
}


def params() -> dict:
    return {
        "seed": 1,
        "pool": {"source": "stdlib", "decontaminate": {"ngram": 10, "benchmarks": "evaluated", "extra_files": []},
                 "quality": {"method": "none", "model": "smollm2"}},
        "categorize": {"model": MODELS["embedding"], "quality": {"method": "lm", "model": MODELS["quality"], "threshold": 0.6}},
        "distill": {"teacher": {"backend": "openai", "model": MODELS["teacher"], "endpoint": "https://api.openai.com/v1",
                                "api_key_env": "OPENAI_API_KEY"}},
        "train": {"model": MODELS["synthesizer"], "method": "lora"},
        "synthesizers": {"0": {"data": "data/distill/samples.jsonl", "init": "base"}, "1": {"data": "data/rounds/1/selected.jsonl", "init": "0"}},
        "rounds": {"1": {"previous": "0", "snippets": 3, "select": 2}},
        "sample": {"engine": {"backend": "vllm"}},
        "synthesize": {"synthesizer": "1", "engine": {"backend": "vllm"}, "guided_problem_tokens": 0,
                       "guided_problem_lead": "Write a Python function"},
        "score": {"scorer": {"backend": "vllm", "model": MODELS["scorer"], "adapter": MODELS["scorer_adapter"]},
                  "mode": "generate"},
        "reference": {"model": MODELS["reference"], "method": "lora"},
        "scoder_train": {"train": {"model": MODELS["code_model"], "method": "full"}},
        "export": {"pretty_name": "Test export", "license": "other", "license_name": "test-terms",
                   "license_notes": "Snippets: PSF-2.0. Teacher outputs are subject to the teacher provider's terms.",
                   "model_licenses": {MODELS["synthesizer"]: "apache-2.0"}, "max_shard_rows": 3},
    }


ROWS = [{"id": f"s{i}", "instruction": f"Write a Python function number {i}", "response": f"Solution {i}\n```python\n"
         f"def f{i}(x):\n    return x + {i}\n```", "code": f"def f{i}(x):\n    return x + {i}", "snippet_id": f"p{i}",
         # the final dataset's snippets are not distillation seeds: most carry no category
         "category": ["Web Problems", "Database and SQL Problems", None][i % 3], "exec_ok": True, "exec_reason": "ok"}
        for i in range(5)]


def write_metrics(m: Path) -> None:
    def put(name: str, data: dict) -> None:
        (m / name).parent.mkdir(parents=True, exist_ok=True)
        (m / name).write_text(json.dumps(data, indent=2))

    put("pool.json", {"files_seen": 577, "functions_found": 6092, "after_filter": 2278, "after_exact_dedup": 2272,
                      "after_near_dedup": 2149, "after_decontamination": 2145, "snippets": 2145, "quality_rejected": 0,
                      "rejected": {"too_short": 177, "banned_import": 423}, "contamination_hits": 4,
                      "contaminated_benchmark_ids": ["HumanEval/1", "HumanEval/7", "Mbpp/12"],
                      "benchmark_tasks_indexed": 542,
                      "decontamination": {"ngram": 10, "removed": 4, "benchmarks": {
                          "humaneval": {"tasks": 164, "files": ["data/benchmarks/humaneval-decontam.jsonl.gz"],
                                        "hits_snippets": 3, "hit_tasks": ["HumanEval/1", "HumanEval/7"]},
                          "mbpp": {"tasks": 378, "files": ["data/benchmarks/mbpp-decontam.jsonl.gz"], "hits_snippets": 1,
                                   "hit_tasks": ["Mbpp/12"]}}}})
    put("categorize.json", {"seeds": 20, "per_category": {"Web Problems": 1000, "Database and SQL Problems": 1145},
                            "quality_rejected": 15})
    put("distill.json", {"samples": 20, "parse_ok": 5, "parse_rate": 0.25, "cost_usd": 0.05, "code_compiles": 5,
                         "price": {"row": "gpt-4o", "tier": "standard", "input_per_1m": 2.5, "output_per_1m": 10.0}})
    for key, examples in (("0", 5), ("1", 2)):
        put(f"train/{key}.json", {"examples": examples, "steps": examples, "checkpoints": 2, "train_loss": 0.4})
    put("sample/1.json", {"candidates": 12, "parse_ok": 9, "parse_rate": 0.75})
    put("score/1.json", {"scored": 12, "score_parse_ok": 11, "candidates": 12, "exec_ok": 8, "execution": "filter",
                         "isolation": "bwrap"})
    put("select/1.json", {"selected": 2, "available": 3, "method": "influence"})
    put("synthesize.json", {"samples": 8, "parse_ok": 7, "parse_rate": 0.875, "execution": "filter", "exec_ok": 5,
                            "isolation": "bwrap", "dataset_size": len(ROWS), "rejected": {"execution:timeout": 2}})
    put("cost.json", {"by_role": {"teacher": {"samples": 20, "tokens_in": 7000, "tokens_out": 4000, "cost_usd": 0.05},
                                  "quality_classifier": {"samples": 48, "tokens_in": 11918, "tokens_out": 0, "cost_usd": 0.0}},
                      "stages": {"distill": {"role": "teacher", "model": MODELS["teacher"], "backend": "openai"},
                                 "categorize": {"role": "quality_classifier", "model": MODELS["quality"],
                                                "backend": "transformers"}},
                      "total_cost_usd": 0.05})


def git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args], cwd=root,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.fixture()
def project(tmp_path, monkeypatch) -> Path:
    """A committed git checkout with params, the final dataset and a run's metrics."""
    root = tmp_path / "project"
    (root / "data" / "synthesize").mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params(), sort_keys=False))
    (root / "data" / "synthesize" / "dataset.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    write_metrics(root / "metrics")
    (root / ".gitignore").write_text("/data/\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "a run")
    monkeypatch.chdir(root)
    return root


def card_of(folder: Path) -> tuple[dict, str]:
    text = (folder / "README.md").read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    return yaml.safe_load(front), body


def test_export_loads_with_datasets_and_the_card_says_where_everything_came_from(project, tmp_path, capsys):
    import datasets

    assert main(["export", "--out", "data/export"]) == 0, capsys.readouterr().err
    folder = project / "data" / "export"
    assert sorted(p.name for p in (folder / "data").iterdir()) == ["train-00000-of-00002.parquet",
                                                                  "train-00001-of-00002.parquet"]  # 3 rows a shard
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf-cache"))
    assert list(loaded) == ["train"]
    train = loaded["train"]
    assert train.column_names == ["id", "instruction", "response", "code", "snippet_id", "category", "exec_ok",
                                  "exec_reason"]
    assert train.features["exec_ok"].dtype == "bool"
    assert [dict(r) for r in train] == ROWS

    meta, body = card_of(folder)
    assert meta["license"] == "other" and meta["license_name"] == "test-terms" and meta["pretty_name"] == "Test export"
    assert meta["task_categories"] == ["text-generation"] and "synthetic" in meta["tags"]
    assert meta["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    assert meta["dataset_info"]["splits"][0]["num_examples"] == len(ROWS)
    assert [f["name"] for f in meta["dataset_info"]["features"]] == train.column_names
    for model in MODELS.values():
        assert f"`{model}`" in body, model
    for role in ("teacher", "synthesizer (base model)", "scorer", "reference (influence)", "embedding (categorize)",
                 "quality classifier (categorize)", "code model (downstream)"):
        assert f"| {role} |" in body, role
    assert "openai @ https://api.openai.com/v1" in body and "priced as gpt-4o (standard)" in body
    assert "| synthesizer 1 (final) | `data/rounds/1/selected.jsonl` (round 1's selected candidates) | 2 |" in body
    # provenance: the commit, a clean tree, the params hash as the MLflow runs tag it
    assert f"`{git(project, 'rev-parse', 'HEAD')}`" in body and "clean (outside the pipeline's outputs)" in body
    assert hashlib.sha256((project / "params.yaml").read_bytes()).hexdigest()[:16] in body
    # decontamination, per benchmark, from the pool metrics' block
    assert "| benchmark | tasks indexed | snippets removed | tasks hit | files |" in body
    assert "| humaneval | 164 | 3 | HumanEval/1, HumanEval/7 |" in body and "| mbpp | 378 | 1 | Mbpp/12 |" in body
    # the pool, the rates and the bill, all from the metrics files
    assert "`stdlib`" in body and "| after decontamination | 2145 |" in body
    assert "| distill (teacher) | 20 | 25.0% (5 of 20) |" in body
    assert "| round 1: score | 12 | scorer output 91.7% (11 of 12) | 66.7% (8 of 12) [bwrap] | 2 of 3 by influence |" in body
    assert "| final synthesis | 8 | 87.5% (7 of 8) | 71.4% (5 of 7) [bwrap] | 5 kept (execution filter) |" in body
    assert "| teacher | gpt-4o-2024-08-06 (openai) | 20 | 7000 | 4000 | 0.05 |" in body
    assert "| teacher (5 of 20 accepted) | 0.01 |" in body  # 0.05 USD over 5 accepted
    assert "| the 5 samples of this dataset at the teacher's price | 0.05 |" in body
    # the prompts: package path, sha256 and the text itself
    from scoder.bootstrap.prompts import load_prompt
    for name in ("synthesis", "scoring"):
        digest = hashlib.sha256(load_prompt(name).encode()).hexdigest()
        assert f"`src/scoder/bootstrap/prompts/{name}.txt` | `{digest}`" in body
    assert load_prompt("synthesis").splitlines()[0] in body
    assert "PSF-2.0" in body and "teacher provider's terms" in body and "| `Qwen/Qwen2.5-Coder-7B-Instruct` | apache-2.0 |" in body


def test_same_input_gives_byte_identical_parquet_and_a_dirty_tree_is_flagged(project):
    first, second, third = (project / "data" / name for name in ("first", "second", "third"))
    assert main(["export", "--out", str(first)]) == 0
    assert main(["export", "--out", str(second)]) == 0
    for shard in sorted((first / "data").iterdir()):
        assert shard.read_bytes() == (second / "data" / shard.name).read_bytes()
    assert (first / "README.md").read_bytes() == (second / "README.md").read_bytes()
    params_text = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(params_text.replace("Test export", "Test export, edited"))
    (project / "metrics" / "pool.json").write_text((project / "metrics" / "pool.json").read_text() + "\n")  # an output
    (project / "notes.txt").write_text("an untracked file counts too")
    assert main(["export", "--out", str(third)]) == 0
    _, body = card_of(third)
    assert "**DIRTY**: 2 file(s) differ from the commit outside the pipeline's outputs (`notes.txt`, `params.yaml`)" in body
    for shard in sorted((first / "data").iterdir()):  # the card changed, the data did not
        assert shard.read_bytes() == (third / "data" / shard.name).read_bytes()


def test_a_malformed_dataset_line_is_named_and_leaves_no_folder(project, capsys):
    dataset = project / "data" / "synthesize" / "dataset.jsonl"
    lines = dataset.read_text().splitlines()
    dataset.write_text("\n".join([lines[0], lines[1][:-5], *lines[2:]]) + "\n")
    assert main(["export", "--out", "out"]) == 1
    err = capsys.readouterr().err
    assert f"scoder export: {Path('data/synthesize/dataset.jsonl')}:2: not valid JSON" in err and "Traceback" not in err
    assert not (project / "out").exists() and not (project / "out.partial").exists()
    config, read = ExportConfig(), read_params(params_getter(params()))
    for bad, message in ((dict(ROWS[0], code=None), ":3: field 'code' must be a string, got NoneType"),
                         ({k: v for k, v in ROWS[0].items() if k != "snippet_id"}, ":3: missing field(s) snippet_id"),
                         (dict(ROWS[0], extra=1), ":3: unexpected field(s) extra"),
                         (dict(ROWS[0], exec_ok="yes"), ":3: field 'exec_ok' must be true, false or null"),
                         (ROWS[0], ":3: duplicate id 's0' (first on line 1)")):
        dataset.write_text("".join(json.dumps(r) + "\n" for r in [ROWS[0], ROWS[1], bad]))
        with pytest.raises(ExportError, match=message.replace("(", r"\(").replace(")", r"\)")):
            export_dataset(dataset, project / "metrics", project / "x", config, read, "params.yaml")


def test_metrics_from_another_run_are_refused(project, capsys):
    dataset = project / "data" / "synthesize" / "dataset.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:3]))
    assert main(["export", "--out", "out"]) == 1
    assert "has 3 rows but metrics/synthesize.json records dataset_size 5" in capsys.readouterr().err


def test_push_to_hub_offline_is_a_clear_error_and_never_calls_the_hub(project, monkeypatch, capsys):
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("the hub was called while offline")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", no_network)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", no_network)
    assert main(["export", "--out", "out", "--push-to-hub", "someone/scoder-test", "--private"]) == 1
    captured = capsys.readouterr()
    assert "wrote out: 5 rows in 2 parquet shard(s)" in captured.out  # the folder is written first
    assert captured.err.strip().startswith("scoder export: cannot push to the Hub repo 'someone/scoder-test': offline "
                                           "mode is on (HF_HUB_OFFLINE=1)")
    assert "Traceback" not in captured.err and len(captured.err.strip().splitlines()) == 1
    assert (project / "out" / "README.md").exists()


def test_push_to_hub_creates_a_dataset_repo_and_uploads_the_folder(project, monkeypatch):
    import huggingface_hub

    calls = []
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create", repo_id, kw)))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder",
                        lambda self, **kw: calls.append(("upload", kw)) or "https://huggingface.co/datasets/x/commit/1")
    assert main(["export", "--out", "out", "--push-to-hub", "someone/scoder-test", "--private"]) == 0
    assert calls[0] == ("create", "someone/scoder-test", {"repo_type": "dataset", "private": True, "exist_ok": True})
    assert calls[1][1]["repo_type"] == "dataset" and Path(calls[1][1]["folder_path"]) == Path("out")

    def unreachable(self, repo_id, **kw):
        raise ConnectionError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", unreachable)
    with pytest.raises(ExportError, match=r"push to the Hub repo 'someone/x' failed \(ConnectionError: Failed to resolve"):
        push_to_hub(project / "out", "someone/x")
    with pytest.raises(ExportError, match="not an exported dataset folder"):
        push_to_hub(project / "metrics", "someone/x")


def test_the_stage_declares_exactly_the_params_the_card_reads(repo_root):
    from scoder.core.stage import load_stages

    stage = next(s for s in load_stages(repo_root / "stages") if s.name == "export")
    assert stage.params == PARAMS_READ and stage.section == "export"
    assert {i.path for i in stage.inputs} >= {"data/synthesize/dataset.jsonl", "metrics/pool.json", "metrics/cost.json"}


@pytest.mark.slow
def test_the_export_stage_runs_under_the_runner_with_its_guarded_params(project, tmp_path):
    """The runner refuses an undeclared read and an unread declaration: a real run proves the
    declaration and the card's reads agree, and the stage writes the same folder as the CLI."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns.db'}", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, str(REPO / "stages" / "export.py")], cwd=project, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((project / "metrics" / "export.json").read_text())
    assert metrics["rows"] == len(ROWS) and metrics["shards"] == 2 and metrics["git_dirty"] is False
    by_hand = project / "data" / "by-hand"
    assert main(["export", "--out", str(by_hand)]) == 0
    for shard in (project / "data" / "export" / "data").iterdir():
        assert shard.read_bytes() == (by_hand / "data" / shard.name).read_bytes()
    assert metrics["parquet_sha256"] == {f"data/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
                                         for p in sorted((by_hand / "data").iterdir())}

"""End-to-end: the real `dvc repro` / `dvc exp run` / `dvc metrics diff` in a fresh git clone
of this repository's tracked files, with the default MLflow store, on two profiles:

- micro (every `make test`): random-weight 2-layer models and the fake OpenAI-compatible
  teacher (tests/micro_profile.py), two rounds; minutes.
- tiny (`make test-nightly`, marked `nightly`): the real SmolLM2 everywhere, as `make run`.
"""

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import new_project, shared_data_dir
from fake_openai import FakeOpenAI
from micro_profile import TEACHER_KEY_ENV, build_micro_model, micro_params

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


HUMANEVAL_PLUS = "HumanEvalPlus-v0.1.10.jsonl.gz"


def run(cmd, cwd, stdout_only=False, **kwargs):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MBPP_OVERRIDE_PATH")}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["HF_HUB_OFFLINE"] = "1"
    # HumanEval+ from the shared offline file; MBPP has no override, so evaluate reports it skipped
    env["HUMANEVAL_OVERRIDE_PATH"] = str(shared_data_dir() / "benchmarks" / HUMANEVAL_PLUS)
    env[TEACHER_KEY_ENV] = "sk-e2e-micro-teacher-key"
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout if stdout_only else result.stdout + result.stderr


def tiny(params):
    params["pool"]["max_files"] = 60
    params["categorize"]["per_category"] = 1
    params["categorize"]["quality"]["batch_size"] = 1
    params["distill"]["sampling"]["max_tokens"] = 48  # answers get truncated: parse failures are counted
    params["train"].update(batch_size=1)  # 2 selected samples still make M=2 steps
    params["reference"].update(max_examples=4)
    params["influence"].update(proj_dim=64, max_dp=4)
    params["sample"]["sampling"].update(n=1, max_tokens=64)
    params["sample"]["guided_problem_tokens"] = 24
    params["score"]["max_chars"] = 400
    params["score"]["execution"] = "aspect"  # code cut at 64 tokens rarely runs: filter could leave a round empty
    params["synthesize"].update(execution="annotate")
    params["synthesize"]["sampling"].update(max_tokens=160)
    params["scoder_train"]["phase2"].update(epochs=1)
    params["evaluate"].update(limit=2)
    params["evaluate"]["sampling"].update(max_tokens=48)
    params["specialists"]["train"].update(epochs=1)
    params["specialist_evaluate"]["sampling"].update(max_tokens=32)


def both(params):
    """Two rounds, four final samples (K=2 specialists need two records), two pass@k settings."""
    params["synthesizers"] = {"0": {"data": "data/distill/samples.jsonl", "init": "base"}, "1": {"data": "data/rounds/1/selected.jsonl", "init": "0"},
                              "2": {"data": "data/rounds/2/selected.jsonl", "init": "1"}}
    params["rounds"] = {"1": {"previous": "0", "snippets": 3, "select": 2}, "2": {"previous": "1", "snippets": 2, "select": 1}}
    params["synthesize"].update(synthesizer="2", size=4)
    params["evaluate"]["datasets"] = ["humaneval", "mbpp"]
    params["specialist_evaluate"].update(limit=1, passes=[{"k": 1, "n": 1, "temperature": 0.2}, {"k": 2, "n": 2, "temperature": 0.8}])


@pytest.fixture(scope="module", params=["micro", pytest.param("tiny", marks=pytest.mark.nightly)])
def project(request, repo_root, tmp_path_factory):
    """A fresh repository holding the tracked files, with the micro or the tiny test profile."""
    root = tmp_path_factory.mktemp(f"e2e-{request.param}")
    if request.param == "tiny":
        yield new_project(repo_root, root / "project", lambda p: (tiny(p), both(p)))
        return
    model = build_micro_model(root / "micro-llama")
    with FakeOpenAI(delay_s=0.0) as teacher:
        yield new_project(repo_root, root / "project", lambda p: (micro_params(p, str(model), teacher.url), both(p)))


def yaml_params(project):
    import yaml

    return yaml.safe_load((project / "params.yaml").read_text())


def metrics(project, name):
    return json.loads((project / "metrics" / f"{name}.json").read_text())


def test_repro_noop_experiment_metrics_diff_and_mlflow(project):
    out = run(["dvc", "repro", "categorize"], project)
    assert "Running stage 'pool'" in out and "Running stage 'categorize'" in out
    pool = metrics(project, "pool")
    categorize = metrics(project, "categorize")
    assert pool["snippets"] > 100 and pool["after_near_dedup"] < pool["after_filter"]
    assert categorize["snippets"] == pool["snippets"] and 0 < categorize["seeds"] <= 10
    assert categorize["quality_evaluated"] >= categorize["seeds"]
    seeds = [json.loads(line) for line in (project / "data/categorize/seeds.jsonl").read_text().splitlines()]
    threshold = yaml_params(project)["categorize"]["quality"]["threshold"]
    assert all(s["category"] and s["meta"]["quality"] >= threshold for s in seeds)

    # a second repro is a no-op, in seconds
    start = time.perf_counter()
    out = run(["dvc", "repro", "categorize"], project)
    assert "didn't change" in out and "Running stage" not in out
    assert time.perf_counter() - start < 30

    run(["git", "add", "-A"], project)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "baseline"], project)

    # an experiment with a looser dedup threshold keeps more snippets, and metrics diff shows it
    run(["dvc", "exp", "run", "-S", "pool.dedup.threshold=0.7", "categorize"], project)
    assert metrics(project, "pool")["after_near_dedup"] > pool["after_near_dedup"]
    diff = json.loads(run(["dvc", "metrics", "diff", "--json", "--targets", "metrics/pool.json"], project, stdout_only=True))
    change = diff["metrics/pool.json"]["after_near_dedup"]
    assert change["old"] == pool["after_near_dedup"] and change["new"] > change["old"]

    # MLflow (default sqlite store at the repo root): one run per stage execution
    with sqlite3.connect(project / "mlruns.db") as db:
        rows = db.execute(
            "SELECT r.name, r.status, t.value FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE t.key = 'scoder.stage'"
        ).fetchall()
        params = dict(db.execute("SELECT key, value FROM params WHERE key = 'pool.dedup.threshold'").fetchall())
    stages = sorted(stage for _, _, stage in rows)
    assert stages == ["categorize", "categorize", "pool", "pool"]
    assert all(status == "FINISHED" for _, status, _ in rows)
    assert params  # the stage's params section was logged


def test_distill_and_cost_ledger_offline(project):
    out = run(["dvc", "repro"], project)
    assert "Running stage 'distill'" in out and "Running stage 'cost'" in out
    distill = metrics(project, "distill")
    seeds = (project / "data/categorize/seeds.jsonl").read_text().splitlines()
    assert distill["samples"] == len(seeds) > 0
    assert 0.0 <= distill["parse_rate"] <= 1.0
    assert sum(distill["reasons"].values()) == distill["samples"]  # every sample has a verdict
    samples = [json.loads(line) for line in (project / "data/distill/samples.jsonl").read_text().splitlines()]
    assert all(s["parse_ok"] or s["reason"] for s in samples)
    select = metrics(project, "subset")
    assert select["selected"] == len(seeds) < select["requested"]  # size is an upper bound
    cost = metrics(project, "cost")
    assert cost["by_role"]["teacher"]["tokens_out"] == distill["tokens_out"] > 0

    # train@0 -> sample@1 -> score@1
    train = metrics(project, "train/0")
    assert train["examples"] + train["dropped_too_long"] == len(seeds) and train["checkpoints"] == 2
    manifest = json.loads((project / "data/synthesizer/0/synthesizer.json").read_text())
    assert manifest["checkpoints"] == ["checkpoint-0", "checkpoint-1"]
    assert all((project / "data/synthesizer/0" / c / "adam_state.safetensors").exists() for c in manifest["checkpoints"])
    sample = metrics(project, "sample/1")
    assert sample["candidates"] == 3 * 2 * 1 and set(sample["per_checkpoint"]) == {"0", "1"}
    score = metrics(project, "score/1")
    assert score["candidates"] == 6 and score["mode"] == "forced" and score["scored"] == 6
    assert sum(d["count"] for d in score["score_by_checkpoint"].values()) == 6
    assert score["exec_ok"] + sum(v for k, v in score["exec_reasons"].items() if k != "ok") == 6
    best = (project / "data/rounds/1/best.jsonl").read_text().splitlines()
    assert len(best) == score["best"] <= 3

    # the reference model, influence, selection and round 2, in order
    assert metrics(project, "influence/dp")["examples"] == min(yaml_params(project)["influence"]["max_dp"], len(seeds))
    for key, keep in (("1", 2), ("2", 1)):
        influence = [json.loads(line) for line in (project / f"data/rounds/{key}/influence.jsonl").read_text().splitlines()]
        assert influence and all(-1 <= r["influence"] <= 1 for r in influence)
        selected = metrics(project, f"select/{key}")
        assert selected["selected"] == keep and selected["method"] == "influence"
        top = sorted(influence, key=lambda r: -r["influence"])[:keep]
        chosen = [json.loads(line) for line in (project / f"data/rounds/{key}/selected.jsonl").read_text().splitlines()]
        assert sorted(r["id"] for r in chosen) == sorted(r["id"] for r in top)
        train = metrics(project, f"train/{key}")  # micro learns raw answers, tiny parsed ones
        assert train["samples"] == keep and train["examples"] + sum(train.get("skipped", {}).values()) == keep
    assert metrics(project, "sample/2")["candidates"] == 4

    # final synthesis -> SCoder training -> EvalPlus -> report
    synthesize = metrics(project, "synthesize")
    last = json.loads((project / "data/synthesizer/2/synthesizer.json").read_text())["checkpoints"][-1]
    assert synthesize["snippets"] == 4 and synthesize["synthesizer"] == "2" and synthesize["checkpoint"] == last
    dataset = [json.loads(line) for line in (project / "data/synthesize/dataset.jsonl").read_text().splitlines()]
    assert len(dataset) == synthesize["dataset_size"] == synthesize["parse_ok"] > 0
    assert all(r["instruction"] and r["response"] and r["exec_ok"] is not None for r in dataset)
    used = {json.loads(line)["snippet_id"] for key in ("1", "2") for line in (project / f"data/rounds/{key}/candidates.jsonl").read_text().splitlines()}
    assert not used & {r["snippet_id"] for r in dataset}  # fresh snippets
    scoder = metrics(project, "scoder_train")
    assert scoder["phase1"] == {"skipped": True} and scoder["phase2"]["examples"] + scoder["phase2"]["dropped_too_long"] == len(dataset)
    evaluate = metrics(project, "evaluate")
    assert evaluate["humaneval"]["source"] == "override" and evaluate["humaneval"]["tasks"] == 2
    assert evaluate["mbpp"] == {"skipped": "no MBPP_OVERRIDE_PATH and evaluate.download is false"}
    for model in ("base", "scoder"):
        summary = evaluate["humaneval"][model]
        assert 0 <= summary["base_pass@1"] <= 1 and 0 <= summary["plus_pass@1"] <= summary["base_pass@1"]
        assert summary["canonical_nll"] > 0
    assert evaluate["humaneval"]["base"]["canonical_nll"] != evaluate["humaneval"]["scoder"]["canonical_nll"]  # the adapter is used
    assert evaluate["meta"]["decoding"]["mode"] == "greedy" and evaluate["meta"]["cpu_count"] == os.cpu_count()
    # K-Specialist: dedup -> K=2 clusters with an adapter each -> routed HumanEval+; dataset metrics
    dedup = metrics(project, "semantic_dedup")
    assert dedup["records"] == len(dataset) and dedup["kept"] + dedup["dropped"] == len(dataset)
    specialists = metrics(project, "specialists")
    assert specialists["k"] == 2 and sum(specialists["cluster_sizes"]) == dedup["kept"] and min(specialists["cluster_sizes"]) > 0
    assert all((project / f"data/specialists/cluster_{c}/checkpoint-0/adapter_model.safetensors").exists() for c in (0, 1))
    routed_eval = metrics(project, "specialist_evaluate")
    assert routed_eval["k"] == 2 and routed_eval["humaneval"]["tasks"] == 1
    assert 0 <= routed_eval["humaneval"]["pass1"]["plus_pass@1"] <= 1 and "plus_pass@2" in routed_eval["humaneval"]["pass2"]
    assert sum(routed_eval["humaneval"]["pass2"]["routed"].values()) == 1
    table = (project / "reports/dataset_metrics.md").read_text()
    assert "| synthesized |" in table and "| deduplicated |" in table
    assert metrics(project, "dataset_metrics")["synthesized"]["records"] == len(dataset)
    page = (project / "reports/report.html").read_text()
    assert page.count("<img") == 4 and "humaneval/scoder" in page and "Cost per accepted sample" in page
    assert (project / "plots/scores/round_2.csv").exists() and (project / "plots/evaluate.csv").exists()
    # `dvc metrics show` prints the one summary file; per-stage files are shown when named
    shown = json.dumps(json.loads(run(["dvc", "metrics", "show", "--json"], project, stdout_only=True)))
    assert "metrics/summary.json" in shown and "metrics/evaluate.json" not in shown
    summary = metrics(project, "summary")
    assert summary["humaneval_scoder_canonical_nll"] == evaluate["humaneval"]["scoder"]["canonical_nll"]
    assert summary["final_dataset"] == len(dataset) and summary["rounds"]["2"]["selected"] == 1
    run(["dvc", "plots", "show", "-o", "dvc_plots"], project)
    assert (project / "dvc_plots/index.html").exists()
    assert "Running stage" not in run(["dvc", "repro"], project)

    # the round schedule is a parameter: an experiment keeps two in round 2
    run(["git", "add", "-A"], project)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "two rounds"], project)
    run(["dvc", "exp", "run", "-S", "rounds.2.select=2"], project)
    assert metrics(project, "select/2")["selected"] == 2 and metrics(project, "train/2")["examples"] == 2
    diff = json.loads(run(["dvc", "metrics", "diff", "--all", "--json"], project, stdout_only=True))
    assert diff["metrics/summary.json"]["rounds.2.selected"] == {"old": 1, "new": 2, "diff": 1}
    # the experiment re-ran the final stages, and the evaluation is compared across the two
    nll = diff["metrics/summary.json"]["humaneval_scoder_canonical_nll"]
    assert nll["old"] == evaluate["humaneval"]["scoder"]["canonical_nll"] and nll["new"] == metrics(project, "evaluate")["humaneval"]["scoder"]["canonical_nll"]

    # K=1 (plain fine-tuning) vs K=2 as DVC experiments, compared in `dvc exp show`
    run(["dvc", "exp", "run", "-S", "specialists.k=1"], project)
    assert metrics(project, "specialists")["cluster_sizes"] == [dedup["kept"]]
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project, stdout_only=True))
    ks = set()
    for commit in shown:
        for exp in [commit] + [e for run_ in commit.get("experiments") or [] for e in run_.get("revs", [])]:
            data = (exp.get("data") or {})
            params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
            summary = ((data.get("metrics") or {}).get("metrics/summary.json") or {}).get("data") or {}
            if "humaneval_specialists_plus_pass@1" in summary:
                ks.add(params["specialists"]["k"])
    assert ks >= {1, 2}

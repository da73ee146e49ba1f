"""The summary metrics file (`metrics/summary.json`): the few figures a user compares across
experiments, gathered from the per-stage metrics files, so `dvc metrics show` / `dvc exp show`
print one readable row. Per-stage detail stays in metrics/<stage>.json."""

from __future__ import annotations

import json
from pathlib import Path


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _rounds(folder: Path) -> dict[str, dict]:
    return {p.stem: _read(p) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


def summary(metrics_dir: str | Path = "metrics") -> dict:
    m = Path(metrics_dir)
    pool, distill, synth = _read(m / "pool.json"), _read(m / "distill.json"), _read(m / "synthesize.json")
    out: dict = {
        "pool_snippets": pool.get("snippets"),
        "distill_parse_rate": distill.get("parse_rate"),
        "rounds": {},
        "final_dataset": synth.get("dataset_size"),
        "final_parse_rate": synth.get("parse_rate"),
        "final_exec_ok": synth.get("exec_ok"),
    }
    samples, scores, selects = _rounds(m / "sample"), _rounds(m / "score"), _rounds(m / "select")
    for key in sorted(set(samples) | set(scores) | set(selects)):
        best = scores.get(key, {}).get("best_score")
        out["rounds"][key] = {"parse_rate": samples.get(key, {}).get("parse_rate"),
                              "best_score_mean": best.get("mean") if isinstance(best, dict) else best,
                              "exec_rate": scores.get(key, {}).get("exec_rate"),
                              "selected": selects.get(key, {}).get("selected")}
    evaluate = _read(m / "evaluate.json")
    for dataset in ("humaneval", "mbpp"):
        for model in ("base", "scoder"):
            result = (evaluate.get(dataset) or {}).get(model) or {}
            if result:
                out[f"{dataset}_{model}_plus_pass@1"] = result.get("plus_pass@1")
                out[f"{dataset}_{model}_canonical_nll"] = result.get("canonical_nll")
    specialists = _read(m / "specialist_evaluate.json")
    for dataset in ("humaneval", "mbpp"):
        result = ((specialists.get(dataset) or {}).get("pass1")) or {}
        if result:
            out[f"{dataset}_specialists_plus_pass@1"] = result.get("plus_pass@1")
    subset = _read(m / "subset.json")
    if subset:
        out["subset_coverage"] = subset.get("coverage")
        out["subset_random_coverage"] = subset.get("random_coverage")
    cost = _read(m / "cost.json")
    if cost:
        out["cost_usd"] = cost.get("total_cost_usd")
        out["saved_vs_all_from_teacher_usd"] = cost.get("saved_vs_all_from_teacher_usd")
    return out

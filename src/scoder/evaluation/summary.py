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


def accepted_cost(metrics_dir: str | Path = "metrics") -> dict | None:
    """Dollars per accepted sample by source: the teacher (its distill cost over the samples
    that parsed) against the synthesizer (its ledger cost over the final dataset), and the
    teacher samples the final dataset saved, priced at the teacher's per-accepted-sample price.
    None without distill metrics (no teacher to compare with). A price that would divide by
    zero is None, with a note saying why; nothing is made up."""
    m = Path(metrics_dir)
    distill, synth, cost = _read(m / "distill.json"), _read(m / "synthesize.json"), _read(m / "cost.json")
    if not distill:
        return None
    ledger = (cost.get("by_role") or {}).get("synthesizer")
    teacher_usd = distill.get("cost_usd")
    teacher_samples, accepted = distill.get("samples"), distill.get("parse_ok")
    synthesizer_usd = float(ledger["cost_usd"]) if ledger else 0.0
    dataset = synth.get("dataset_size")
    notes = []
    teacher_per = None
    if teacher_usd is None or accepted is None:
        notes.append("metrics/distill.json records no cost_usd or parse_ok: the teacher has no price per accepted sample")
    elif accepted == 0:
        notes.append(f"the teacher accepted 0 of {teacher_samples} samples (for {teacher_usd} USD): it has no price "
                     "per accepted sample, so the samples the synthesizer saved are not priced")
    else:
        teacher_per = round(float(teacher_usd) / accepted, 8)
    synthesizer_per = None
    if dataset is None:
        notes.append("no metrics/synthesize.json: no final dataset to price")
    elif dataset == 0:
        notes.append("the final dataset is empty: the synthesizer has no price per accepted sample")
    else:
        synthesizer_per = round(synthesizer_usd / dataset, 8)
    if not ledger:
        notes.append("the cost ledger has no synthesizer entry (the synthesizer runs locally; the ledger prices "
                     "model calls, not compute): its cost counts as 0 USD")
    equivalent = round(teacher_per * dataset, 6) if teacher_per is not None and dataset is not None else None
    return {
        "teacher_samples": teacher_samples,
        "teacher_accepted": accepted,
        "teacher_usd": teacher_usd,
        "teacher_usd_per_accepted": teacher_per,
        "synthesizer_accepted": dataset,
        "synthesizer_usd": round(synthesizer_usd, 6),
        "synthesizer_in_ledger": bool(ledger),
        "synthesizer_usd_per_accepted": synthesizer_per,
        "teacher_samples_saved": dataset,
        "teacher_equivalent_usd": equivalent,  # what the saved samples would have cost from the teacher
        "saved_usd": round(equivalent - synthesizer_usd, 6) if equivalent is not None else None,
        "notes": notes,
    }


def summary(metrics_dir: str | Path = "metrics") -> dict:
    m = Path(metrics_dir)
    pool, distill, synth = _read(m / "pool.json"), _read(m / "distill.json"), _read(m / "synthesize.json")
    out: dict = {
        "pool_snippets": pool.get("snippets"),
        "distill_parse_rate": distill.get("parse_rate"),
        "rounds": {},
        "final_dataset": synth.get("dataset_size"),
        "final_parse_rate": synth.get("parse_rate"),
        "final_generation": synth.get("generation"),
        "final_exec_ok": synth.get("exec_ok"),
    }
    samples, scores, selects = _rounds(m / "sample"), _rounds(m / "score"), _rounds(m / "select")
    for key in sorted(set(samples) | set(scores) | set(selects)):
        best = scores.get(key, {}).get("best_score")
        out["rounds"][key] = {"parse_rate": samples.get(key, {}).get("parse_rate"),
                              "generation": samples.get(key, {}).get("generation"),
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
    accepted = accepted_cost(m)
    if accepted:  # cost.<key> in `dvc metrics show`; the notes stay in the report
        out["cost"] = {k: v for k, v in accepted.items() if k != "notes"}
    return out

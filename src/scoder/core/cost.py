"""Cost ledger: each model-calling stage writes `metrics/cost/<stage>.json`; the `cost`
stage sums them into `metrics/cost.json` by role (teacher vs synthesizer, ...).

DVC lets only one stage own an output, so stages do not append to one shared file; the
aggregate is its own stage, which depends on every ledger entry.
"""

from __future__ import annotations

from typing import Iterable


def ledger_entry(stage: str, role: str, model: str, backend: str, metrics: dict) -> dict:
    return {
        "stage": stage,
        "role": role,
        "model": model,
        "backend": backend,
        "samples": metrics["samples"],
        "tokens_in": metrics["tokens_in"],
        "tokens_out": metrics["tokens_out"],
        "cost_usd": metrics["cost_usd"],
        # paid for this run (cost_usd: what the samples cost at the role's price, paid or not)
        "paid_usd": metrics.get("cost_usd_paid_this_run", metrics["cost_usd"]),
    }


def cost_usd(tokens_in: int, tokens_out: int, price_in_per_1m: float, price_out_per_1m: float) -> float:
    """Estimated USD for a token count at per-1M-token prices."""
    return tokens_in / 1e6 * price_in_per_1m + tokens_out / 1e6 * price_out_per_1m


def priced_entry(stage: str, role: str, model: str, engine, samples: int, tokens_in: int, tokens_out: int) -> dict:
    """Ledger entry of a stage whose model is `engine` (an LLMConfig), priced from the price
    table (a local model is free unless it names `price_as`)."""
    from scoder.core.prices import price_for

    price = price_for(engine)
    return {"stage": stage, "role": role, "model": model, "backend": engine.backend, "samples": int(samples),
            "tokens_in": int(tokens_in), "tokens_out": int(tokens_out),
            "cost_usd": round(price.cost(tokens_in, tokens_out), 6)}


def usage_entry(stage: str, role: str, model: str, backend: str, usage: dict | None,
                price_in_per_1m: float = 0.0, price_out_per_1m: float = 0.0) -> dict:
    """Ledger entry from a backend's usage counters (None: the stage called no model)."""
    usage = usage or {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    cost = cost_usd(usage["prompt_tokens"], usage["completion_tokens"], price_in_per_1m, price_out_per_1m)
    return {
        "stage": stage, "role": role, "model": model, "backend": backend, "samples": usage["calls"],
        "tokens_in": usage["prompt_tokens"], "tokens_out": usage["completion_tokens"], "cost_usd": round(cost, 6),
    }


def summarize(entries: Iterable[dict]) -> dict:
    """Totals by role, and what the synthesizer-made samples would have cost from the teacher."""
    by_role: dict[str, dict] = {}
    entries = list(entries)
    for e in entries:
        role = by_role.setdefault(e["role"], {"samples": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0})
        for key in ("samples", "tokens_in", "tokens_out"):
            role[key] += int(e[key])
        role["cost_usd"] = round(role["cost_usd"] + float(e["cost_usd"]), 6)
    teacher = by_role.get("teacher")
    summary: dict = {"by_role": by_role, "stages": {e["stage"]: e for e in entries}}
    summary["total_cost_usd"] = round(sum(r["cost_usd"] for r in by_role.values()), 6)
    if teacher and teacher["samples"]:
        per_sample = teacher["cost_usd"] / teacher["samples"]
        synthesized = by_role.get("synthesizer", {}).get("samples", 0)
        summary["teacher_cost_per_sample_usd"] = round(per_sample, 8)
        summary["synthesized_samples"] = synthesized
        summary["all_from_teacher_cost_usd"] = round(per_sample * (teacher["samples"] + synthesized), 6)
        summary["saved_vs_all_from_teacher_usd"] = round(summary["all_from_teacher_cost_usd"] - summary["total_cost_usd"], 6)
    return summary

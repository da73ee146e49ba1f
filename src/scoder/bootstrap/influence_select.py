"""`select@R`: keep the top `rounds.R.select` of a round's best candidates by influence (SCoder
3.3), or by an ablation of Figure 4: `random`, `ppl_low` / `ppl_high` (perplexity of the
sample under the reference model, from the same pass as its gradient), `score_only` (the
multi-aspect score alone)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from scoder.core.stats import distribution

METHODS = {"influence": "influence", "score_only": "score", "ppl_low": "reference_loss", "ppl_high": "reference_loss", "random": None}


@dataclass
class RoundSelectConfig:
    method: str = "influence"  # influence | random | ppl_low | ppl_high | score_only
    seed: int = 1234


def select_round(records: Sequence[dict], size: int, config: RoundSelectConfig) -> tuple[list[dict], dict]:
    if config.method not in METHODS:
        raise ValueError(f"unknown select.method '{config.method}' (expected {', '.join(METHODS)})")
    if size < 1:
        raise ValueError(f"the round's select size must be at least 1, got {size}")
    key = METHODS[config.method]
    usable = [r for r in records if key is None or r.get(key) is not None]
    if config.method == "random":
        order = list(np.random.default_rng(config.seed).permutation(len(usable)))
        chosen = [usable[i] for i in order[:size]]
    else:
        sign = 1.0 if config.method == "ppl_low" else -1.0  # ascending loss for ppl_low, descending otherwise
        chosen = sorted(usable, key=lambda r: (sign * float(r[key]), r["id"]))[:size]
    chosen = sorted(chosen, key=lambda r: r["id"])  # a stable file order, whatever the method
    influences = [r["influence"] for r in records if r.get("influence") is not None]
    metrics = {
        "method": config.method,
        "requested": size,
        "available": len(records),
        "usable": len(usable),
        "selected": len(chosen),
        "influence_all": distribution(influences),
        "influence_selected": distribution([r["influence"] for r in chosen if r.get("influence") is not None]),
        "score_selected": distribution([r["score"] for r in chosen if r.get("score") is not None]),
        "selected_parse_ok": sum(bool(r.get("parse_ok")) for r in chosen),
        "selected_by_checkpoint": dict(sorted(Counter(str(r.get("checkpoint", 0)) for r in chosen).items())),
    }
    return chosen, metrics

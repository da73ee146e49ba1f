"""Multi-aspect scoring (SCoder eq. 1, Figure 7): parse judge outputs, aggregate, pick the best.

The judge answers `[Reason] ... [Score] {json-like block} [End]` with ten integer aspects
0-9. Judges deviate: single quotes, trailing commas, spaces in keys, markdown fences,
missing `[End]`, prose after the block. The parser accepts those, but never invents a
score: an out-of-range, non-integer or missing aspect makes the record `parse_ok: false`
with a reason, and such records are counted, not defaulted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from scoder.bootstrap.prompts import SCORING_ASPECTS

_KEY_NORMAL = {re.sub(r"[^a-z]", "", a.lower()): a for a in SCORING_ASPECTS}
_PAIR = re.compile(r"""["']?([A-Za-z][A-Za-z _-]*?)["']?\s*:\s*([^,}\n]*)""")


@dataclass
class ParsedScores:
    aspects: dict[str, int] = field(default_factory=dict)
    parse_ok: bool = False
    reason: str | None = None
    judge_reason: str = ""


def parse_scores(raw: str | None) -> ParsedScores:
    result = ParsedScores()
    text = (raw or "").replace("\r\n", "\n")
    if not text.strip():
        result.reason = "empty_output"
        return result
    score_at = re.search(r"\[\s*score\s*\]", text, re.IGNORECASE)
    reason_at = re.search(r"\[\s*reason\s*\]", text, re.IGNORECASE)
    if reason_at:
        end = score_at.start() if score_at and score_at.start() > reason_at.end() else len(text)
        result.judge_reason = text[reason_at.end() : end].strip()
    body = text[score_at.end() :] if score_at else text
    brace = body.find("{")
    if brace < 0:
        result.reason = "missing_score_block"
        return result
    close = body.find("}", brace)
    block = body[brace + 1 : close if close >= 0 else len(body)]
    found: dict[str, int] = {}
    for key, value in _PAIR.findall(block):
        name = _KEY_NORMAL.get(re.sub(r"[^a-z]", "", key.lower()))
        if name is None:
            continue
        value = value.strip().strip("'\"").strip()
        if not re.fullmatch(r"-?\d+", value):
            result.reason = f"non_integer_score:{name}"
            return result
        number = int(value)
        if not 0 <= number <= 9:
            result.reason = f"out_of_range:{name}"
            return result
        if name in found and found[name] != number:
            result.reason = f"conflicting_scores:{name}"
            return result
        found[name] = number
    missing = [a for a in SCORING_ASPECTS if a not in found]
    if missing:
        result.reason = "missing_aspects:" + ",".join(missing) if len(missing) < len(SCORING_ASPECTS) else "no_scores"
        result.aspects = found
        return result
    result.aspects = {a: found[a] for a in SCORING_ASPECTS}
    result.parse_ok = True
    return result


def aspect_vector(aspects: dict[str, float]) -> np.ndarray:
    return np.array([float(aspects[a]) for a in SCORING_ASPECTS])


def aggregate(aspects: dict[str, float], method: str, weights: Sequence[float] | None = None) -> float:
    """`weighted`: eq. 1, sum_z w_z x_z; `composite`: the judge's Composite Score; `mean`."""
    x = aspect_vector(aspects)
    if method == "weighted":
        if weights is None or len(weights) != len(SCORING_ASPECTS):
            raise ValueError(f"weighted aggregation needs {len(SCORING_ASPECTS)} weights")
        return float(np.dot(np.asarray(weights, dtype=float), x))
    if method == "composite":
        return float(aspects["Composite Score"])
    if method == "mean":
        return float(x.mean())
    raise ValueError(f"unknown score.aggregate '{method}' (expected weighted, composite or mean)")


def expected_score(digit_probabilities: Sequence[float]) -> float:
    """E[score] from the probabilities of the tokens 0..9 (finer than the argmax)."""
    p = np.asarray(digit_probabilities, dtype=float)
    if p.shape != (10,) or p.sum() <= 0:
        raise ValueError("need 10 non-negative probabilities with a positive sum")
    return float(np.dot(p / p.sum(), np.arange(10)))


def fit_weights(mean_aspects: np.ndarray, outcomes: np.ndarray, ridge_lambda: float) -> np.ndarray:
    """Eq. 2: w = argmin sum_k (y_k - w . x_k)^2 + lambda ||w||^2 (no intercept, as printed)."""
    from sklearn.linear_model import Ridge

    x = np.asarray(mean_aspects, dtype=float)
    y = np.asarray(outcomes, dtype=float)
    if x.ndim != 2 or x.shape[1] != len(SCORING_ASPECTS) or len(y) != len(x):
        raise ValueError(f"need a K x {len(SCORING_ASPECTS)} table of mean aspect scores and K outcomes")
    model = Ridge(alpha=ridge_lambda, fit_intercept=False).fit(x, y)
    return model.coef_


def read_weights(path: str | Path) -> list[float]:
    import json

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    weights = data["weights"]
    if isinstance(weights, dict):
        weights = [weights[a] for a in SCORING_ASPECTS]
    if len(weights) != len(SCORING_ASPECTS):
        raise ValueError(f"{path}: expected {len(SCORING_ASPECTS)} weights")
    return [float(w) for w in weights]

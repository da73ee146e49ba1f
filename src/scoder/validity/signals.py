"""Selection signals measured against known labels: ROC-AUC of real vs degraded candidates
with a stratified bootstrap 95% interval, per corruption type too, and the share of degraded
candidates among each signal's top k; downstream NLL means with bootstrap intervals over tasks.

Each signal is a score where higher means "select first" (`direction` flips the raw value:
low perplexity is `ppl_low`, high perplexity `ppl_high`). A candidate a signal cannot score
(NaN: no response token in the window, a score that did not parse) ranks last, and the count is
reported; it is never given a default value.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

# signal -> (column of the signals table, direction): the score a selector ranks by is direction * column
SIGNALS: dict[str, tuple[str, int]] = {
    "weighted": ("score_weighted", 1),
    "composite": ("score_composite", 1),
    "mean": ("score_mean", 1),
    "execution": ("exec_ok", 1),
    "influence_adam": ("influence_adam", 1),
    "influence_sgd": ("influence_sgd", 1),
    "ppl_low": ("nll", -1),
    "ppl_high": ("nll", 1),
    "ifd": ("ifd", 1),
    "random": ("random", 1),
    "parametric": ("parametric", 1),  # 1 for the k the parametric selector keeps, 0 otherwise
}


def signal_scores(rows: Sequence[Mapping], signal: str) -> np.ndarray:
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal '{signal}' (known: {', '.join(SIGNALS)})")
    column, direction = SIGNALS[signal]
    values = []
    for row in rows:
        value = row.get(column)
        values.append(math.nan if value is None else float(value))
    return direction * np.asarray(values, dtype=float)


def ranked_scores(scores: np.ndarray) -> np.ndarray:
    """NaN ranks below every scored candidate."""
    scores = np.asarray(scores, dtype=float)
    low = np.nanmin(scores) - 1.0 if np.isfinite(scores).any() else 0.0
    return np.where(np.isnan(scores), low, scores)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counted half
    (the Mann-Whitney form of the ROC-AUC; scikit-learn's roc_auc_score gives the same)."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = scores[labels], scores[~labels]
    if not len(positives) or not len(negatives):
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=float)
    sorted_scores = scores[order]
    # average ranks of ties
    start = 0
    while start < len(scores):
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return float((ranks[labels].sum() - len(positives) * (len(positives) + 1) / 2) / (len(positives) * len(negatives)))


def bootstrap_auc(labels: np.ndarray, scores: np.ndarray, samples: int, seed: int) -> tuple[float, float, float]:
    """(AUC, 2.5th, 97.5th percentile) over `samples` resamples that keep the class sizes."""
    labels = np.asarray(labels).astype(bool)
    scores = ranked_scores(scores)
    point = roc_auc(labels, scores)
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    values = []
    for _ in range(samples):
        index = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        values.append(roc_auc(labels[index], scores[index]))
    low, high = np.percentile(values, [2.5, 97.5])
    return point, float(low), float(high)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores; NaN never chosen before a scored one; ties by index."""
    scores = ranked_scores(scores)
    return np.argsort(-scores, kind="stable")[:k]


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def signal_table(rows: Sequence[Mapping], signals: Sequence[str], k: int, samples: int, seed: int) -> dict:
    """Per signal: AUC with interval, AUC per corruption (real vs that kind only), the share of
    degraded candidates in its top k (Wilson interval) and how many candidates it could not score."""
    labels = np.array([int(r["label"]) for r in rows])
    kinds = sorted({r["corruption"] for r in rows if r["corruption"] != "none"})
    corruption = np.array([r["corruption"] for r in rows])
    table = {}
    for number, signal in enumerate(signals):
        scores = signal_scores(rows, signal)
        auc, low, high = bootstrap_auc(labels, scores, samples, seed + number)
        per_kind = {}
        for kind in kinds:
            keep = (corruption == "none") | (corruption == kind)
            value, lo, hi = bootstrap_auc(labels[keep], scores[keep], samples, seed + number)
            per_kind[kind] = {"auc": round(value, 4), "low": round(lo, 4), "high": round(hi, 4)}
        chosen = top_k(scores, k)
        degraded = int((labels[chosen] == 0).sum())
        lo, hi = wilson(degraded, len(chosen))
        table[signal] = {"auc": round(auc, 4), "auc_low": round(low, 4), "auc_high": round(high, 4),
                         "by_corruption": per_kind, "top_k": len(chosen), "top_k_degraded": degraded,
                         "top_k_degraded_share": round(degraded / len(chosen), 4),
                         "top_k_degraded_low": round(lo, 4), "top_k_degraded_high": round(hi, 4),
                         "unscored": int(np.isnan(scores).sum())}
    return table


def bootstrap_mean(values: Sequence[float], samples: int, seed: int) -> tuple[float, float, float]:
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(samples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)


def paired_difference(values: Sequence[float], baseline: Sequence[float], samples: int, seed: int) -> tuple[float, float, float]:
    """Mean of values - baseline over the same tasks, with a bootstrap interval over tasks."""
    return bootstrap_mean(np.asarray(values, dtype=float) - np.asarray(baseline, dtype=float), samples, seed)

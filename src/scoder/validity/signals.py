"""Selection signals measured against known labels: ROC-AUC of real vs degraded candidates
with a stratified bootstrap 95% interval, per corruption type too, and the share of degraded
candidates among each signal's top k; downstream NLL means with bootstrap intervals over tasks.

Each signal is a score where higher means "select first" (`direction` flips the raw value:
low perplexity is `ppl_low`, high perplexity `ppl_high`). A candidate a signal cannot score
(NaN: no response token in the window, a score that did not parse) ranks last, which counts
against the signal; the count is reported, and so is the AUC over the candidates it scored.
"""

from __future__ import annotations

import math
from collections import Counter
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
    # trivial references: what the response's length or the source dataset alone tell
    "length": ("response_chars", 1),
    "source_mbpp": ("source_is_mbpp", 1),
}


def signal_scores(rows: Sequence[Mapping], signal: str) -> np.ndarray:
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal '{signal}' (known: {', '.join(SIGNALS)})")
    column, direction = SIGNALS[signal]
    values = []
    for row in rows:
        value = row.get(column)
        if value is not None and not isinstance(value, (int, float)):
            raise ValueError(f"candidate {row.get('id', '?')}: signal column '{column}' holds {value!r}, not a number")
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


def bootstrap_auc(labels: np.ndarray, scores: np.ndarray, samples: int, seed: int,
                  strata: np.ndarray | None = None) -> tuple[float, float, float]:
    """(AUC, 2.5th, 97.5th percentile) over `samples` resamples that keep the class sizes.
    With `strata` (e.g. the source dataset), the AUC is computed within each stratum holding
    both classes and averaged with weights = that stratum's negatives, resampled within each
    (stratum, class) cell: a signal that only recognises a source's style gains nothing."""
    labels = np.asarray(labels).astype(bool)
    scores = ranked_scores(scores)
    groups = np.zeros(len(labels), dtype=int) if strata is None else np.unique(np.asarray(strata), return_inverse=True)[1]
    cells = [(np.flatnonzero(labels & (groups == g)), np.flatnonzero(~labels & (groups == g))) for g in np.unique(groups)]
    cells = [(pos, neg) for pos, neg in cells if len(pos) and len(neg)]
    if not cells:
        return math.nan, math.nan, math.nan

    def value(picked) -> float:
        total = sum(len(neg) for _, neg in picked)
        return sum(len(neg) * roc_auc(np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)],
                                      np.r_[scores[pos], scores[neg]]) for pos, neg in picked) / total

    point = value(cells)
    rng = np.random.default_rng(seed)
    values = [value([(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))) for pos, neg in cells]) for _ in range(samples)]
    low, high = np.percentile(values, [2.5, 97.5])
    return point, float(low), float(high)


def top_k(scores: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Indices of the k highest scores; NaN never chosen before a scored one; ties broken by a
    seeded permutation (not by file position: the candidates file lists real pairs first, so
    index order would hand a 0/1 signal's ties to them)."""
    scores = ranked_scores(scores)
    order = np.random.default_rng(seed).permutation(len(scores))
    return order[np.argsort(-scores[order], kind="stable")][:k]


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _seed(seed: int, signal: str) -> int:
    import zlib

    return seed + zlib.crc32(signal.encode()) % 100_000  # the signal's name, not its place in the list


def signal_table(rows: Sequence[Mapping], signals: Sequence[str], k: int, samples: int, seed: int) -> dict:
    """Per signal: the AUC of real vs degraded with its interval, and within sources (`source`
    strata); per corruption, real vs that kind only, within sources (planted bugs exist for MBPP
    only, so their column compares with MBPP's real pairs); the AUC over the candidates the
    signal scored; the degraded share of its top k (Wilson interval; ties broken by a seeded
    permutation) and how many candidates it could not score (ranked last)."""
    if k < 1:
        raise ValueError(f"select.k must be at least 1, got {k}")
    labels = np.array([int(r["label"]) for r in rows])
    kinds = sorted({r["corruption"] for r in rows if r["corruption"] != "none"})
    corruption = np.array([r["corruption"] for r in rows])
    sources = np.array([r.get("source", "") for r in rows])
    table = {}
    for signal in signals:
        scores = signal_scores(rows, signal)
        s = _seed(seed, signal)
        auc, low, high = bootstrap_auc(labels, scores, samples, s)
        within, within_low, within_high = bootstrap_auc(labels, scores, samples, s, strata=sources)
        scored = ~np.isnan(scores)
        only_scored = roc_auc(labels[scored], scores[scored]) if scored.any() else math.nan
        per_kind = {}
        for kind in kinds:
            keep = (corruption == "none") | (corruption == kind)
            value, lo, hi = bootstrap_auc(labels[keep], scores[keep], samples, s, strata=sources[keep])
            per_kind[kind] = {"auc": round(value, 4), "low": round(lo, 4), "high": round(hi, 4)}
        chosen = top_k(scores, k, s)
        degraded = int((labels[chosen] == 0).sum())
        lo, hi = wilson(degraded, len(chosen))
        table[signal] = {"auc": round(auc, 4), "auc_low": round(low, 4), "auc_high": round(high, 4),
                         "auc_within_source": round(within, 4), "auc_within_source_low": round(within_low, 4),
                         "auc_within_source_high": round(within_high, 4),
                         "auc_scored_only": None if math.isnan(only_scored) else round(only_scored, 4),
                         "by_corruption": per_kind, "top_k": len(chosen), "top_k_degraded": degraded,
                         "top_k_degraded_share": round(degraded / len(chosen), 4),
                         "top_k_degraded_low": round(lo, 4), "top_k_degraded_high": round(hi, 4),
                         "top_k_by_corruption": dict(sorted(Counter(corruption[chosen].tolist()).items())),
                         "unscored": int((~scored).sum()), "top_k_ids": [rows[i]["id"] for i in chosen]}
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

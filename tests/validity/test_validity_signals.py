"""Signal statistics against independent implementations (scikit-learn's ROC-AUC, a plain
percentile bootstrap), NaN handling and the signal directions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from scoder.validity.signals import (
    SIGNALS, bootstrap_auc, bootstrap_mean, paired_difference, ranked_scores, roc_auc, signal_scores, signal_table,
    top_k, wilson,
)


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_scikit_learn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.normal(labels * 0.5, 1.0), 1)  # rounded: many ties
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_bootstrap_interval_brackets_the_point_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 2, 60)
    big = rng.integers(0, 2, 2000)
    widths = []
    for labels in (small, big):
        scores = rng.normal(labels * 1.0, 1.0)
        auc, low, high = bootstrap_auc(labels, scores, 500, 1)
        assert low <= auc <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 3


def test_unscored_candidates_rank_last_and_are_never_preferred():
    scores = np.array([0.2, math.nan, 0.9, math.nan])
    assert list(top_k(scores, 2)) == [2, 0]
    assert sorted(top_k(scores, 4)[2:]) == [1, 3]
    assert ranked_scores(scores)[1] < 0.2
    # a signal that cannot score the real ones gets no credit for them
    assert roc_auc(np.array([1, 1, 0, 0]), ranked_scores(np.array([math.nan, math.nan, 0.1, 0.2]))) == 0.0


def test_ties_in_the_top_k_are_broken_by_a_seeded_permutation_not_by_position():
    scores = np.r_[np.ones(50), np.ones(50)]  # a 0/1 signal: everything tied
    picks = [set(top_k(scores, 20, seed).tolist()) for seed in range(3)]
    assert picks[0] == set(top_k(scores, 20, 0).tolist())  # seeded
    assert picks[0] != picks[1] and len({i < 50 for i in picks[0]}) == 2  # both halves, not the first 20


def test_within_source_auc_ignores_a_signal_that_only_knows_the_source():
    labels = np.r_[np.ones(40), np.zeros(40)].astype(int)
    sources = np.array(["a"] * 20 + ["b"] * 20 + ["a"] * 10 + ["b"] * 30)
    knows_source = (sources == "a").astype(float)  # real pairs are mostly "a"-sourced... per source, nothing
    plain, _, _ = bootstrap_auc(labels, knows_source, 50, 0)
    within, low, high = bootstrap_auc(labels, knows_source, 200, 0, strata=sources)
    assert plain > 0.6 and within == 0.5 and low == high == 0.5


def test_directions():
    rows = [{"nll": 1.0}, {"nll": 2.0}, {"nll": None}]
    low, high = signal_scores(rows, "ppl_low"), signal_scores(rows, "ppl_high")
    assert list(top_k(low, 1)) == [0] and list(top_k(high, 1)) == [1]
    assert set(SIGNALS) >= {"weighted", "influence_adam", "influence_sgd", "ifd", "random", "parametric", "execution"}
    with pytest.raises(ValueError, match="unknown signal"):
        signal_scores(rows, "nope")


def test_signal_table_per_corruption_and_top_k():
    rows = [{"id": f"r{i}", "label": 1, "corruption": "none", "score_weighted": 5.0 + i} for i in range(4)]
    rows += [{"id": "s", "label": 0, "corruption": "swapped", "score_weighted": 1.0},
             {"id": "t", "label": 0, "corruption": "truncated", "score_weighted": 9.0}]
    table = signal_table(rows, ["weighted"], 4, 200, 0)["weighted"]
    assert table["by_corruption"]["swapped"]["auc"] == 1.0 and table["by_corruption"]["truncated"]["auc"] == 0.0
    assert table["auc"] == 0.5 and table["top_k_degraded"] == 1 and table["unscored"] == 0
    assert table["top_k_by_corruption"] == {"none": 3, "truncated": 1} and len(table["top_k_ids"]) == 4
    with pytest.raises(ValueError, match="at least 1"):
        signal_table(rows, ["weighted"], 0, 10, 0)
    with pytest.raises(ValueError, match="not a number"):
        signal_table([{**rows[0], "score_weighted": "high"}] + rows[1:], ["weighted"], 2, 10, 0)


def test_bootstrap_mean_and_paired_difference():
    values = np.arange(100, dtype=float)
    mean, low, high = bootstrap_mean(values, 1000, 0)
    assert mean == 49.5 and low < mean < high
    assert abs((high - low) - 2 * 1.96 * values.std() / 10) < 3  # close to the normal interval
    diff, low, high = paired_difference(values + 1.0, values, 200, 0)
    assert diff == low == high == 1.0


def test_wilson():
    low, high = wilson(0, 48)
    assert low == pytest.approx(0.0, abs=1e-12) and 0.05 < high < 0.1

"""Dataset metrics (seed 002): MTLD, spread, radon complexity, checked against known values."""

import numpy as np
import pytest

from scoder.metrics import code_complexity, question_mtld, sample_indices, spread


def test_mtld_matches_hand_computed_values():
    # forward: "the cat the" drops the TTR to 2/3 < 0.72 -> a factor every 3 words; 8 words,
    # 2 full factors, a final partial factor of (1 - 1) / (1 - 0.72) = 0 -> 8 / 2 = 4; backward alike
    assert question_mtld(["the cat the cat", "the cat the cat"]) == pytest.approx(4.0)
    # forward: one factor closes at word 5 (TTR 3/5), the remaining 7 words are all new -> 12 / 1;
    # backward: the factor closes at word 10 (TTR 7/10), the last 2 are new -> 12 / 1
    assert question_mtld(["one two three one two three four five six seven one two"]) == pytest.approx(12.0)
    with pytest.raises(ValueError, match="no question"):
        question_mtld(["", "  "])


def test_spread_is_the_reciprocal_of_the_mean_pairwise_cosine():
    e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    cosines = [0.0, 1 / np.sqrt(2), 1 / np.sqrt(2)]  # (1,2), (1,3), (2,3)
    assert spread(e) == pytest.approx(1 / np.mean(cosines))
    assert spread(np.array([[1.0, 0.0], [2.0, 0.0]])) == pytest.approx(1.0)  # identical directions
    with pytest.raises(ValueError):
        spread(np.array([[1.0, 0.0], [-1.0, 0.0]]))


def test_radon_metrics_on_hand_checked_functions():
    simple = "def add(a, b):\n    return a + b\n"
    branchy = "def sign(x):\n    if x > 0:\n        return 1\n    elif x < 0:\n        return -1\n    return 0\n"
    # add: operators {+} (1 distinct, 1 total), operands {a, b} (2 distinct, 2 total)
    # -> vocabulary 3, length 3, difficulty (1/2) * (2/2) = 0.5; cyclomatic 1
    assert code_complexity([simple]) == {"programs": 1, "unparsable": 0, "halstead_vocabulary": 3, "halstead_length": 3,
                                         "halstead_difficulty": 0.5, "cyclomatic_avg": 1.0}
    both = code_complexity([simple, branchy, "def broken(:\n"])
    assert both["unparsable"] == 1 and both["programs"] == 3
    assert both["cyclomatic_avg"] == pytest.approx((1 + 3) / 2)  # sign: two branches + 1


def test_sample_is_seeded():
    assert np.array_equal(sample_indices(5000, 1000, 1), sample_indices(5000, 1000, 1))
    assert len(sample_indices(10, 1000, 1)) == 10

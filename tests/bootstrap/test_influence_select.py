"""select@R: top-k by influence and the Figure-4 ablations."""

import pytest

from scoder.bootstrap.influence_select import RoundSelectConfig, select_round

RECORDS = [
    {"id": "a", "influence": 0.9, "score": 1.0, "reference_loss": 2.0, "checkpoint": 0, "parse_ok": True},
    {"id": "b", "influence": 0.1, "score": 9.0, "reference_loss": 0.5, "checkpoint": 1, "parse_ok": False},
    {"id": "c", "influence": 0.5, "score": 5.0, "reference_loss": 3.0, "checkpoint": 1, "parse_ok": True},
    {"id": "d", "influence": None, "score": 7.0, "reference_loss": None, "checkpoint": 0, "parse_ok": False},
]


@pytest.mark.parametrize("method, expected", [
    ("influence", ["a", "c"]), ("score_only", ["b", "d"]), ("ppl_low", ["a", "b"]), ("ppl_high", ["a", "c"]),
])
def test_each_method_ranks_by_its_own_key(method, expected):
    selected, metrics = select_round(RECORDS, 2, RoundSelectConfig(method=method))
    assert [r["id"] for r in selected] == expected and metrics["selected"] == 2


def test_records_without_influence_are_counted_not_ranked():
    _, metrics = select_round(RECORDS, 10, RoundSelectConfig(method="influence"))
    assert metrics["usable"] == 3 and metrics["selected"] == 3 and metrics["available"] == 4
    assert metrics["influence_all"]["max"] == 0.9 and metrics["selected_by_checkpoint"] == {"0": 1, "1": 2}


def test_random_is_seeded():
    first = [r["id"] for r in select_round(RECORDS, 2, RoundSelectConfig(method="random", seed=3))[0]]
    assert first == [r["id"] for r in select_round(RECORDS, 2, RoundSelectConfig(method="random", seed=3))[0]]
    picks = {tuple(r["id"] for r in select_round(RECORDS, 2, RoundSelectConfig(method="random", seed=s))[0]) for s in range(20)}
    assert len(picks) > 1


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="select.method"):
        select_round(RECORDS, 2, RoundSelectConfig(method="vibes"))
    with pytest.raises(ValueError, match="at least 1"):
        select_round(RECORDS, 0, RoundSelectConfig())

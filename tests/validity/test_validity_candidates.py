"""Labelled candidates: every corruption is what its label says (planted bugs fail their own
tests in the sandbox, the real solutions pass), sources are balanced across labels, nothing is
reused, the same seed gives the same set, and bad records are named."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from scoder.core.io import read_jsonl
from scoder.execution.sandbox import SandboxConfig, run_untrusted
from scoder.validity.candidates import (
    BOILERPLATE, CandidatesConfig, build_candidates, evol_pairs, mbpp_pairs, mutants, truncate,
)

SANDBOX = SandboxConfig(timeout_s=3, cpu_s=6, memory_mb=512)


@pytest.fixture(scope="module")
def sources(repo_root):
    evol = evol_pairs(read_jsonl(repo_root / "data/teacher/evol-codealpaca-python.jsonl.gz"), "evol")
    mbpp = mbpp_pairs(read_jsonl(repo_root / "experiments/validity/data/mbpp-not-plus.jsonl.gz"), "mbpp")
    return evol, mbpp


@pytest.fixture(scope="module")
def built(sources):
    config = CandidatesConfig(real_per_source=6, per_corruption=6, dp_per_source=3, seed=7, sandbox=SANDBOX)
    return build_candidates(*sources, config)


def test_counts_labels_and_source_balance(built):
    candidates, dp, metrics = built
    kinds = Counter(c["corruption"] for c in candidates)
    assert kinds == {"none": 12, "swapped": 6, "planted_bug": 6, "truncated": 6, "boilerplate": 6}
    assert all(c["label"] == (c["corruption"] == "none") for c in candidates)
    # the evol / MBPP mix is the same among real and degraded candidates
    for label in (0, 1):
        mix = Counter(c["source"] for c in candidates if c["label"] == label)
        assert mix["evol"] == mix["mbpp"], (label, mix)
    assert len(dp) == 6 and metrics["dp"] == 6


def test_no_source_record_is_used_twice(built):
    candidates, dp, _ = built
    used = [c["source_id"] for c in candidates] + [p["id"] for p in dp]
    donors = [c["donor"] for c in candidates if c["corruption"] == "swapped"]
    assert len(set(used + donors)) == len(used) + len(donors)


def test_planted_bugs_fail_their_tests_and_real_mbpp_passes(built):
    candidates, _, _ = built
    planted = [c for c in candidates if c["corruption"] == "planted_bug"]
    real = [c for c in candidates if c["corruption"] == "none" and c["source"] == "mbpp"]
    assert planted and real
    for c in planted:
        assert c["code"].endswith(c["tests"][-1]) and not run_untrusted(c["code"], SANDBOX).exec_ok, c["id"]
    for c in real:
        assert run_untrusted(c["code"], SANDBOX).exec_ok, c["id"]


def test_the_other_corruptions_change_the_response_as_named(built, sources):
    candidates, _, _ = built
    originals = {p["id"]: p["response"] for source in sources for p in source}
    for c in candidates:
        original = originals[c["source_id"]]
        if c["corruption"] == "none":
            assert c["response"] == original
        elif c["corruption"] == "swapped":
            assert c["response"] == originals[c["donor"]] != original
        elif c["corruption"] == "truncated":
            assert original.startswith(c["response"]) and len(c["response"]) <= 0.6 * len(original)
        elif c["corruption"] == "boilerplate":
            assert c["response"] in BOILERPLATE


def test_same_seed_same_candidates_other_seed_others(sources):
    config = CandidatesConfig(real_per_source=3, per_corruption=2, dp_per_source=1, seed=3, sandbox=SANDBOX,
                              corruptions=["swapped", "truncated"])
    first = build_candidates(*sources, config)[0]
    assert first == build_candidates(*sources, config)[0]
    other = build_candidates(*sources, CandidatesConfig(**{**config.__dict__, "seed": 4}))[0]
    assert [c["id"] for c in other] != [c["id"] for c in first]


def test_mutants_change_one_thing_and_are_seeded():
    code = "def f(a, b):\n    if a < b:\n        return a + 1\n    return b"
    first = mutants(code, random.Random(0))
    assert first == mutants(code, random.Random(0))
    assert {kind for kind, _ in first} <= {"comparison", "arithmetic", "constant", "return", "boolean"}
    assert all(source != code for _, source in first) and len(first) >= 3
    assert mutants("def broken(:\n", random.Random(0)) == []


def test_truncate_cuts_inside_the_text():
    text = "\n".join(f"line {i} " * 3 for i in range(40))
    cut = truncate(text, random.Random(1))
    assert text.startswith(cut) and 0 < len(cut) < len(text)


def test_bad_records_are_named():
    with pytest.raises(ValueError, match=r"src: record 2 \(b\) has no 'solution'"):
        evol_pairs([{"id": "a", "problem": "p", "solution": "s"}, {"id": "b", "problem": "p"}], "src")
    with pytest.raises(ValueError, match=r"m: record 1 \(x\) has no 'test_list'"):
        mbpp_pairs([{"id": "x", "text": "t", "code": "def f(): pass", "test_list": []}], "m")
    with pytest.raises(ValueError, match="does not parse"):
        mbpp_pairs([{"id": "y", "text": "t", "code": "def f(:", "test_list": ["assert f()"]}], "m")
    with pytest.raises(ValueError, match="unknown"):
        CandidatesConfig(corruptions=["swapped", "typo"])


def test_too_few_records_is_a_clear_error(sources):
    evol, mbpp = sources
    with pytest.raises(ValueError, match="too few usable records"):
        build_candidates(evol[:5], mbpp[:5], CandidatesConfig(real_per_source=6, sandbox=SANDBOX))

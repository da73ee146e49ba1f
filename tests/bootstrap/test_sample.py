"""Round snippet draws, training examples, and multi-checkpoint sampling from a real tiny synthesizer."""

import json

import pytest

from scoder.bootstrap.manifest import read_synthesizer
from scoder.bootstrap.rounds import RoundSpec, round_snippets, round_specs
from scoder.bootstrap.sample import SampleConfig, sample_candidates
from scoder.bootstrap.synthesizer import synthesis_examples

POOL = [{"id": f"s{i:03d}", "code": f"def f{i}(x):\n    return x + {i}\n"} for i in range(50)]


def test_rounds_draw_disjoint_seeded_slices_without_the_seeds():
    rounds = round_specs({"1": {"previous": "0", "snippets": 5, "select": 2}, "2": {"previous": "1", "snippets": 7, "select": 2},
                          "10": {"previous": "2", "snippets": 3, "select": 1}})
    exclude = {"s000", "s001"}
    drawn = {k: [s["id"] for s in round_snippets(POOL, exclude, rounds, k, seed=7)] for k in rounds}
    assert [len(drawn[k]) for k in ("1", "2", "10")] == [5, 7, 3]
    flat = drawn["1"] + drawn["2"] + drawn["10"]
    assert len(set(flat)) == 15 and not set(flat) & exclude
    assert drawn == {k: [s["id"] for s in round_snippets(list(reversed(POOL)), exclude, rounds, k, seed=7)] for k in rounds}
    assert drawn["1"] != [s["id"] for s in round_snippets(POOL, exclude, rounds, "1", seed=8)]


def test_round_params_are_checked():
    with pytest.raises(ValueError, match="quoted string"):
        round_specs({1: {"previous": "0", "snippets": 2, "select": 1}})
    with pytest.raises(ValueError, match="unknown key"):
        round_specs({"1": {"previous": "0", "snippets": 2, "select": 1, "snipets": 3}})
    with pytest.raises(ValueError, match="the pool has"):
        round_snippets(POOL[:3], set(), {"1": RoundSpec(previous="0", snippets=5, select=1)}, "1", seed=1)
    with pytest.raises(KeyError, match="not in params"):
        round_snippets(POOL, set(), {"1": RoundSpec(previous="0", snippets=5, select=1)}, "2", seed=1)


def test_synthesis_examples_use_the_two_section_format():
    records = [
        {"id": "a", "snippet": "def f(x):\n    return x", "parse_ok": True, "problem": "Add one.", "solution": "```python\ndef g(x): return x+1\n```"},
        {"id": "b", "snippet": "def h(): pass", "parse_ok": False, "reason": "truncated", "raw": "[Problem Description]\nrambling"},
        {"id": "c", "snippet": "def k(): pass", "parse_ok": False, "reason": "empty_output", "raw": ""},
    ]
    strict, skipped = synthesis_examples(records, require_parse_ok=True)
    assert [e["id"] for e in strict] == ["a"] and skipped == {"unparsed:empty_output": 1, "unparsed:truncated": 1}
    completion = strict[0]["completion"][0]["content"]
    assert completion.startswith("[Problem Description]\nAdd one.\n\n[Solution]\n```python")
    assert "def f(x):\n    return x" in strict[0]["prompt"][0]["content"]
    loose, skipped = synthesis_examples(records, require_parse_ok=False)
    assert [e["id"] for e in loose] == ["a", "b"] and skipped == {"unparsed:empty_output": 1}
    with pytest.raises(ValueError, match="record 1 .* no 'snippet'"):
        synthesis_examples([{"id": "x", "parse_ok": True}], require_parse_ok=True)


def test_missing_synthesizer_manifest_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="output of a train stage"):
        read_synthesizer(tmp_path)


@pytest.mark.slow
def test_multi_checkpoint_sampling_from_a_tiny_trained_synthesizer(tmp_path, monkeypatch):
    from scoder.models.llm.base import LLMConfig, SamplingParams
    from tiny_models import train_synthesizer

    monkeypatch.setenv("SCODER_CACHE_DIR", str(tmp_path / "cache"))
    synthesizer = train_synthesizer(tmp_path / "synth")
    snippets = POOL[:2]
    config = SampleConfig(engine=LLMConfig(model="", batch_size=2), sampling=SamplingParams(n=2, temperature=0.2, max_tokens=12, seed=5))
    records, metrics = sample_candidates(synthesizer, snippets, config, "1")
    assert len(records) == 2 * 2 * 2 and metrics["candidates"] == 8
    assert sorted({(r["snippet_id"], r["checkpoint"], r["sample_idx"]) for r in records}) == [
        (s["id"], c, j) for s in snippets for c in (0, 1) for j in (0, 1)]
    assert set(metrics["per_checkpoint"]) == {"0", "1"} and all(r["round"] == "1" for r in records)
    assert len({r["id"] for r in records}) == 8
    # ablation: every sample from the last checkpoint
    config.multi_checkpoint = False
    last, metrics = sample_candidates(synthesizer, snippets, config, "1")
    assert len(last) == 8 and {r["checkpoint"] for r in last} == {1} and sorted({r["sample_idx"] for r in last}) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="trained from"):
        sample_candidates(synthesizer, snippets, SampleConfig(engine=LLMConfig(model="gpt2")), "1")


@pytest.mark.slow
def test_full_fine_tuning_checkpoints_are_sampled_as_whole_models(tmp_path, monkeypatch):
    from scoder.models.llm.base import LLMConfig, SamplingParams
    from scoder.training.sft import TrainConfig, train_sft

    monkeypatch.setenv("SCODER_CACHE_DIR", str(tmp_path / "cache"))
    examples, _ = synthesis_examples([{"id": "a", "snippet": "def f(x):\n    return x", "parse_ok": True,
                                       "problem": "Identity.", "solution": "```python\ndef f(x):\n    return x\n```"}] * 2,
                                     require_parse_ok=True)
    folder = tmp_path / "full"
    result = train_sft(examples, TrainConfig(method="full", batch_size=2, num_checkpoints=1, max_length=384, learning_rate=1e-5), folder)
    (folder / "synthesizer.json").write_text(json.dumps({"base_model": "smollm2", "method": "full", "checkpoints": ["checkpoint-0"]}))
    assert result["steps"] == 1 and (folder / "checkpoint-0" / "model.safetensors").exists()
    records, metrics = sample_candidates(read_synthesizer(folder), POOL[:1],
                                         SampleConfig(engine=LLMConfig(model=""), sampling=SamplingParams(n=1, max_tokens=4)), "1")
    assert len(records) == 1 and metrics["candidates"] == 1

"""Final synthesis: fresh snippets after every round's, and a dataset of parsed (and, with
`execution: filter`, runnable) samples that `datasets` loads."""

import json

import pytest

import scoder.bootstrap.final_dataset as synthesize_module
from scoder.models.llm.base import Completion
from scoder.bootstrap.rounds import RoundSpec, round_snippets
from scoder.bootstrap.final_dataset import SynthesizeConfig, final_snippets, synthesize_dataset


def pool(n):
    return [{"id": f"s{i:03d}", "code": f"def f{i}(x):\n    return x + {i}\n", "category": "Web Problems"} for i in range(n)]


def test_final_snippets_follow_every_round_and_skip_the_seeds():
    rounds = {"1": RoundSpec("0", 3, 1), "2": RoundSpec("1", 2, 1)}
    snippets = pool(20)
    seeds = {"s000", "s001"}
    used = {s["id"] for key in rounds for s in round_snippets(snippets, seeds, rounds, key, seed=7)}
    final = final_snippets(snippets, seeds, rounds, 6, seed=7)
    assert len(final) == 6 and not {s["id"] for s in final} & (used | seeds)
    assert final == final_snippets(list(reversed(snippets)), seeds, rounds, 6, seed=7)  # file order does not matter
    with pytest.raises(ValueError, match="13 snippets left"):
        final_snippets(snippets, seeds, rounds, 14, seed=7)


ANSWERS = [
    "[Problem Description]\nAdd one.\n\n[Solution]\n```python\ndef f(x):\n    return x + 1\n```",  # runs
    "[Problem Description]\nFail.\n\n[Solution]\n```python\nraise SystemExit(3)\n```",  # parses, exits 3
    "I cannot help with that.",  # does not parse
]


class Scripted:
    def generate(self, prompts, params):
        return [Completion(texts=[ANSWERS[i % 3]], prompt_tokens=5, completion_tokens=[9], finish_reasons=["stop"])
                for i, _ in enumerate(prompts)]


@pytest.mark.parametrize("execution, kept", [("filter", 1), ("annotate", 2), ("off", 2)])
def test_dataset_keeps_parsed_and_runnable_samples(execution, kept, monkeypatch, tmp_path):
    monkeypatch.setattr(synthesize_module, "load_llm", lambda engine: Scripted())
    synthesizer = {"key": "2", "base_model": "smollm2", "method": "lora", "checkpoints": ["x/checkpoint-0", "x/checkpoint-1"]}
    rows, samples, metrics = synthesize_dataset(synthesizer, pool(3), SynthesizeConfig(execution=execution))
    assert len(samples) == 3 and len(rows) == kept == metrics["dataset_size"]
    assert rows[0]["instruction"] == "Add one." and rows[0]["response"].startswith("```python")
    assert metrics["rejected"]["unparsed:refusal"] == 1 and metrics["parse_ok"] == 2
    if execution == "filter":
        assert metrics["rejected"]["execution:error:SystemExit"] == 1 and metrics["exec_ok"] == 1
    assert metrics["checkpoint"] == "checkpoint-1"  # the last checkpoint writes the dataset
    path = tmp_path / "dataset.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from datasets import load_dataset

    loaded = load_dataset("json", data_files=str(path), split="train")
    assert loaded.num_rows == kept and loaded[0]["instruction"] == "Add one."


def test_unknown_execution_mode_is_an_error():
    with pytest.raises(ValueError, match="synthesize.execution 'maybe'"):
        synthesize_dataset({"key": "2", "base_model": "smollm2", "checkpoints": ["c"]}, pool(1), SynthesizeConfig(execution="maybe"))

"""Scorer distillation: the teacher (an OpenAI-compatible endpoint) judges pairs, a LoRA scorer
learns the parsable judgements, and the scoring code loads it as `score.scorer.adapter`."""

import pytest

from fake_openai import FakeOpenAI
from scoder.models.llm.base import LLMConfig
from scoder.bootstrap.scorer_distill import ScorerDistillConfig, distill_scorer, judged_examples
from scoder.training.sft import TrainConfig

PAIRS = [{"id": f"p{i}", "snippet_id": f"s{i}", "sample_idx": 0, "parse_ok": True, "problem": f"Return x plus {i}.",
          "solution": f"```python\ndef f(x):\n    return x + {i}\n```"} for i in range(4)]


def test_only_parsable_judgements_become_examples(tmp_path, monkeypatch):
    monkeypatch.setenv("SCODER_CACHE_DIR", str(tmp_path / "cache"))

    class HalfBroken:
        def generate(self, prompts, params):
            from fake_openai import judge_answer_for
            from scoder.models.llm.base import Completion

            return [Completion(texts=[judge_answer_for(p[0]["content"]) if "plus 1" in p[0]["content"] else "I like it."],
                               prompt_tokens=1, completion_tokens=[1]) for p in prompts]

    examples, metrics = judged_examples(HalfBroken(), PAIRS, ScorerDistillConfig())
    assert [e["id"] for e in examples] == ["p1"]
    assert metrics["score_parse_ok"] == 1 and metrics["score_failures"] == {"missing_score_block": 3}
    assert examples[0]["completion"][0]["content"].startswith("[Reason]")


@pytest.mark.slow
def test_distilled_scorer_trains_and_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("SCODER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FAKE_KEY", "sk-test")
    with FakeOpenAI() as server:
        config = ScorerDistillConfig(
            teacher=LLMConfig(backend="openai", model="gpt-4o", endpoint=server.url, api_key_env="FAKE_KEY", max_retries=1),
            train=TrainConfig(batch_size=2, epochs=1, max_length=1400, learning_rate=1e-3),
            max_chars=200,
        )
        metrics = distill_scorer(PAIRS, config, tmp_path / "scorer")
        assert server.requests == 4
    assert metrics["examples"] == 4 and metrics["score_parse_rate"] == 1.0 and metrics["steps"] == 2
    adapter = tmp_path / "scorer" / "checkpoint-0"
    assert (adapter / "adapter_model.safetensors").exists()

    from scoder.bootstrap.scoring import DIGITS, template_parts
    from scoder.models.llm.base import load_llm

    scorer = load_llm(LLMConfig(model="smollm2", adapter=str(adapter), use_cache=False))
    slots = scorer.fill_choices([[{"role": "user", "content": "rate: def f(x): return x"}]], template_parts(), DIGITS)[0]
    assert len(slots) == 10

import pytest

from scoder.models.llm import LLMConfig, SamplingParams, load_llm
from scoder.models.llm.base import option_probabilities
from scoder.bootstrap.pool.quality import YES_NO, quality_scores


@pytest.fixture(scope="module")
def smollm2():
    return load_llm(LLMConfig(model="smollm2", batch_size=4))


def test_generates_with_the_shipped_model(smollm2):
    prompts = [[{"role": "user", "content": "Write a Python function that adds two numbers."}]] * 2
    out = smollm2.generate(prompts, SamplingParams(max_tokens=16))
    assert len(out) == 2
    assert out[0].texts[0] and out[0].texts == out[1].texts  # greedy is deterministic
    assert 0 < out[0].completion_tokens[0] <= 16 and out[0].prompt_tokens > 5


def test_yes_no_probabilities_are_a_distribution(smollm2):
    prompts = [[{"role": "user", "content": "Is Paris the capital of France? Answer yes or no."}]]
    (probs,) = option_probabilities(smollm2, prompts, YES_NO)
    assert set(probs) == {"yes", "no"} and abs(sum(probs.values()) - 1) < 1e-6


def test_quality_scores_are_batched_consistently(smollm2):
    snippets = [{"code": f'def f{i}(x):\n    """Return x times {i}."""\n    return x * {i}\n'} for i in range(5)]
    together = quality_scores(smollm2, snippets, 2000, batch_size=5)
    one_by_one = quality_scores(smollm2, snippets, 2000, batch_size=1)
    assert len(together) == 5 and all(0.0 <= s <= 1.0 for s in together)
    assert together == pytest.approx(one_by_one, abs=1e-3)  # left padding does not change scores


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown LLM backend 'nope'"):
        load_llm(LLMConfig(backend="nope"))


def test_usage_counts_computed_tokens_only(smollm2, tmp_path, caplog):
    from scoder.core.cache import ResponseCache

    llm = load_llm(LLMConfig(model="smollm2", batch_size=2), ResponseCache(tmp_path / "c.sqlite"))
    prompts = [[{"role": "user", "content": "Say hi."}]] * 2
    with caplog.at_level("DEBUG", logger="scoder.models.llm.base"):
        first = llm.generate(prompts, SamplingParams(max_tokens=4))
        used = dict(llm.usage)
        again = llm.generate(prompts, SamplingParams(max_tokens=4))
    # the log says what is computed: the first call's one batch, nothing for the cached one
    assert [r.getMessage() for r in caplog.records if "generating" in r.getMessage()] == [
        "generating 1 of 1 batches (2 prompts in all; the rest cached), at most 4 new tokens each"]
    assert used["calls"] == 2 and used["completion_tokens"] == sum(sum(c.completion_tokens) for c in first)
    assert llm.usage == used and all(c.cached for c in again)  # cache hits compute nothing
    assert [c.texts for c in again] == [c.texts for c in first]

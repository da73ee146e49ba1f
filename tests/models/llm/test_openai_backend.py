import pytest

from fake_openai import FakeOpenAI, answer_for
from scoder.core.cache import ResponseCache
from scoder.models.llm import LLMConfig, SamplingParams, load_llm
from scoder.models.llm.openai_backend import EndpointError, OpenAICompatibleLLM


def config(url, **kw):
    base = dict(backend="openai", model="gpt-test", endpoint=url, api_key_env="SCODER_TEST_KEY",
                max_concurrency=4, timeout_s=1.0, max_retries=4, backoff_base_s=0.01, backoff_max_s=0.05)
    return LLMConfig(**{**base, **kw})


def prompts(n):
    return [[{"role": "user", "content": f"prompt number {i}"}] for i in range(n)]


def test_retries_every_fault_kind_then_succeeds(tmp_path, monkeypatch):
    monkeypatch.setenv("SCODER_TEST_KEY", "sk-secret-test-key")
    with FakeOpenAI() as server:
        server.faults = ["429", "500", "slow", "malformed"]
        llm = OpenAICompatibleLLM(config(server.url, max_concurrency=1), ResponseCache(tmp_path / "c.sqlite"))
        (out,) = llm.generate(prompts(1), SamplingParams(max_tokens=50))
        assert out.texts == [answer_for("prompt number 0")] and not out.cached
        assert llm.stats["retries"] == 4 and server.requests == 5
        assert server.seen_auth == {"Bearer sk-secret-test-key"}  # the key travels only in the header


def test_cache_second_run_makes_zero_requests(tmp_path):
    cache_path = tmp_path / "c.sqlite"
    with FakeOpenAI() as server:
        first = OpenAICompatibleLLM(config(server.url), ResponseCache(cache_path)).generate(prompts(6), SamplingParams(n=2))
        requests_after_first = server.requests
        second_llm = OpenAICompatibleLLM(config(server.url), ResponseCache(cache_path))
        second = second_llm.generate(prompts(6), SamplingParams(n=2))
        assert requests_after_first == 12 and server.requests == 12  # zero new requests
        assert [c.texts for c in first] == [c.texts for c in second] and all(c.cached for c in second)
        # a different sampling parameter is a different request
        second_llm.generate(prompts(1), SamplingParams(n=1, temperature=0.7))
        assert server.requests == 13


def test_no_duplicate_paid_requests_after_a_crash(tmp_path):
    cache_path = tmp_path / "c.sqlite"
    with FakeOpenAI() as server:
        # the 6th request gets a non-retryable error: the run "crashes" half-way
        server.faults = [None] * 5 + ["400"]
        with pytest.raises(EndpointError, match="HTTP 400"):
            OpenAICompatibleLLM(config(server.url, max_concurrency=1), ResponseCache(cache_path)).generate(prompts(10), SamplingParams())
        paid_before = sum(server.paid.values())
        assert 5 <= paid_before <= 6  # the crash stopped the run (one request may be in flight)
        out = OpenAICompatibleLLM(config(server.url), ResponseCache(cache_path)).generate(prompts(10), SamplingParams())
        assert len(out) == 10
        assert max(server.paid.values()) == 1 and sum(server.paid.values()) == 10  # each prompt paid once


def test_endpoint_down_is_a_clear_error_naming_the_url(tmp_path):
    url = "http://127.0.0.1:9/v1"  # discard port: nothing listens
    llm = OpenAICompatibleLLM(config(url, max_retries=2), ResponseCache(tmp_path / "c.sqlite"))
    with pytest.raises(EndpointError, match=r"http://127.0.0.1:9/v1/chat/completions failed after 3 attempts"):
        llm.generate(prompts(1), SamplingParams())


def test_retry_budget_spent_on_persistent_429(tmp_path):
    with FakeOpenAI() as server:
        server.faults = ["429"] * 10
        llm = OpenAICompatibleLLM(config(server.url, max_retries=3, max_concurrency=1), None)
        with pytest.raises(EndpointError, match="HTTP 429"):
            llm.generate(prompts(1), SamplingParams())
        assert server.requests == 4


def test_logprobs_through_the_endpoint(tmp_path):
    from scoder.models.llm.base import option_probabilities

    with FakeOpenAI() as server:
        llm = load_llm(config(server.url), ResponseCache(tmp_path / "c.sqlite"))
        (probs,) = option_probabilities(llm, prompts(1), {"yes": ["yes"], "no": ["no"]})
        assert probs["yes"] > 0.8 and abs(probs["yes"] + probs["no"] - 1) < 1e-9


def test_vllm_backend_without_vllm_installed_is_a_clear_error():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed here")
    except ImportError:
        pass
    with pytest.raises(ImportError, match=r"gpu extra"):
        load_llm(LLMConfig(backend="vllm", model="Qwen/Qwen2.5-Coder-7B-Instruct", use_cache=False))

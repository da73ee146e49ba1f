"""The price table, the token bound the budget cap relies on, and the budget's bookkeeping."""

import pytest

from scoder.core.budget import Budget, BudgetExceeded
from scoder.core.prices import Price, price_for, prompt_tokens_upper_bound, table_row
from scoder.models.llm.base import LLMConfig


def test_dated_model_names_find_their_row_and_batch_is_half_price():
    assert table_row("gpt-4o-2024-08-06") == "gpt-4o"
    assert table_row("gpt-4o-mini-2024-07-18") == "gpt-4o-mini"  # the longer row wins
    assert table_row("gpt-4o-2024-05-13") == "gpt-4o-2024-05-13"  # an exact row of its own
    assert table_row("gpt-4omega") is None and table_row("my-model") is None
    sync = price_for(LLMConfig(backend="openai", model="gpt-4o-2024-08-06"))
    batch = price_for(LLMConfig(backend="openai-batch", model="gpt-4o-2024-08-06"))
    assert (sync.input_per_1m, sync.output_per_1m, sync.tier) == (2.5, 10.0, "sync")
    assert (batch.input_per_1m, batch.output_per_1m, batch.tier) == (1.25, 5.0, "batch")


def test_local_models_are_free_unless_priced_as_an_api_model():
    assert price_for(LLMConfig(backend="transformers", model="smollm2")).cost(10**6, 10**6) == 0.0
    stand_in = price_for(LLMConfig(backend="transformers", model="smollm2", price_as="gpt-4o"))
    assert stand_in.cost(10**6, 10**6) == 12.5


def test_an_unpriced_api_model_is_free_unless_capped_then_an_error_naming_the_way_out():
    assert price_for(LLMConfig(backend="openai", model="my-served-model")).row == "unpriced"
    with pytest.raises(ValueError, match="price_as"):
        price_for(LLMConfig(backend="openai", model="my-served-model", max_budget_usd=5.0))
    explicit = price_for(LLMConfig(backend="openai-batch", model="my-served-model", price_in_per_1m=1.0, price_out_per_1m=3.0))
    assert (explicit.input_per_1m, explicit.output_per_1m, explicit.row) == (0.5, 1.5, "params")
    with pytest.raises(ValueError, match="both"):
        price_for(LLMConfig(backend="openai", model="x", price_in_per_1m=1.0))


@pytest.mark.parametrize("text", ["def f(x):\n    return x + 1\n", "naïve café ☕ 日本語", "\x00\x01" * 50, " " * 200])
def test_the_prompt_bound_is_above_a_real_bpe_count(text):
    from scoder.core.prices import token_counter

    count, name = token_counter()
    assert "SmolLM2" in name  # the shipped tokenizer loads offline
    messages = [{"role": "system", "content": "You are a teacher."}, {"role": "user", "content": text}]
    assert prompt_tokens_upper_bound(messages) >= sum(count(m["content"]) for m in messages) + 2 * 3


def test_the_budget_refuses_what_would_pass_the_cap_and_counts_cached_answers():
    budget = Budget(1.0, Price(1.0, 1.0), "teacher")
    budget.add_cached(0.4)
    held = budget.reserve(0.5)
    with pytest.raises(BudgetExceeded, match=r"budget cap \$1.0000 reached after 1 answered") as stopped:
        budget.reserve(0.2, remaining_requests=7)
    assert "7 request(s) not sent" in str(stopped.value) and stopped.value.exit_code == 3
    budget.settle(held, 0.1)  # billed less than its worst case: room again
    assert budget.reserve(0.45) == 0.45
    assert round(budget.committed_usd, 9) == 0.95
    assert Budget(None, Price(1.0, 1.0)).reserve(10**9) == 10**9  # no cap


def test_params_check_rejects_unpriced_models_and_negative_caps():
    from scoder.core.profile import check_params, load_profile

    params = load_profile("params.yaml", None)
    params["distill"]["teacher"].update(backend="openai", model="my-served-model", price_as="", max_budget_usd=10)
    params["score"]["scorer"]["max_budget_usd"] = -1
    with pytest.raises(ValueError) as problems:
        check_params(params)
    assert "no price for model 'my-served-model'" in str(problems.value)
    assert "score.scorer.max_budget_usd: must be >= 0" in str(problems.value)

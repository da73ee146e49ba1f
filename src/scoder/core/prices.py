"""The price table: USD per 1M tokens for the API models the pipeline can call, at the
synchronous (list) rate and at the Batch API rate, and the token bounds the budget cap uses.

One table, in code, so every paid stage depends on it in dvc.yaml (its import closure) and a
price change reruns the cost ledger. Prices are OpenAI's published list prices
(https://openai.com/api/pricing, standard tier) as this file was last checked; they change,
so a run's ledger records the price it used. A model that is not in the table is priced by
`LLMConfig.price_as` (another row) or by explicit per-1M prices in params; without either it
is "unpriced" (USD 0 in the ledger, a warning in the log), and a budget cap on it is an error.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    from scoder.models.llm.base import LLMConfig

CHECKED = "2026-12-02"


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens; `tier` says which rate a ledger entry was priced at."""

    input_per_1m: float
    output_per_1m: float
    tier: str = "sync"  # sync | batch | local
    row: str = ""  # the price-table row (or "params" / "local")

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return tokens_in / 1e6 * self.input_per_1m + tokens_out / 1e6 * self.output_per_1m


# model -> (input, output) at the synchronous rate, (input, output) at the Batch API rate
TABLE: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "gpt-4o": ((2.50, 10.00), (1.25, 5.00)),
    "gpt-4o-2024-05-13": ((5.00, 15.00), (2.50, 7.50)),
    "gpt-4o-mini": ((0.15, 0.60), (0.075, 0.30)),
    "gpt-4.1": ((2.00, 8.00), (1.00, 4.00)),
    "gpt-4.1-mini": ((0.40, 1.60), (0.20, 0.80)),
    "gpt-4.1-nano": ((0.10, 0.40), (0.05, 0.20)),
    "gpt-4-turbo": ((10.00, 30.00), (5.00, 15.00)),
    "gpt-3.5-turbo": ((0.50, 1.50), (0.25, 0.75)),
}

LOCAL_BACKENDS = ("transformers", "vllm")
API_BACKENDS = ("openai", "openai-batch")  # the backends that bill (dataset: recorded answers, free)
BATCH_FACTOR = 0.5  # the Batch API's discount on explicit params prices
BATCH_BACKENDS = ("openai-batch",)


def table_row(model: str) -> str | None:
    """The table row for a served model name: exact, else the longest row that the name starts
    with followed by a dated or versioned suffix ("gpt-4o-2024-08-06" -> "gpt-4o")."""
    if model in TABLE:
        return model
    matches = [row for row in TABLE if model.startswith(row + "-") and model[len(row) + 1 : len(row) + 2].isdigit()]
    return max(matches, key=len) if matches else None


def price_for(config: "LLMConfig", tier: str | None = None) -> Price:
    """The price a model role is billed (or, for a local stand-in with `price_as`, would be
    billed) at: explicit params prices first, then the table row of `price_as` or the model.
    Local backends without `price_as` are free; so is an API model the table does not know
    (row "unpriced"), unless its role has a budget cap, which needs a price. `tier` defaults to the backend's own (batch
    for openai-batch); explicit params prices are the synchronous rate, and the batch rate is
    half of it, as OpenAI's Batch API bills."""
    tier = tier or ("batch" if config.backend in BATCH_BACKENDS else "sync")
    if config.price_in_per_1m is not None or config.price_out_per_1m is not None:
        if config.price_in_per_1m is None or config.price_out_per_1m is None:
            raise ValueError("set both price_in_per_1m and price_out_per_1m (USD per 1M tokens), or neither")
        factor = BATCH_FACTOR if tier == "batch" else 1.0
        return Price(config.price_in_per_1m * factor, config.price_out_per_1m * factor, tier, "params")
    name = config.price_as or ("" if config.backend in LOCAL_BACKENDS else config.model)
    if not name:
        return Price(0.0, 0.0, "local", "local")
    row = table_row(name)
    if row is None and config.max_budget_usd is None:
        # e.g. a model behind `vllm serve`: nothing to bill, and no cap that would need a price
        return Price(0.0, 0.0, tier, "unpriced")
    if row is None:
        raise ValueError(f"no price for model '{name}': the price table (scoder/core/prices.py) has "
                         f"{', '.join(sorted(TABLE))}; set price_as to one of them, or price_in_per_1m and "
                         "price_out_per_1m in the model's params")
    sync, batch = TABLE[row]
    return Price(*(batch if tier == "batch" else sync), tier, row)


# --- token bounds for the budget cap ------------------------------------------------------
# Chat requests cost a few tokens per message beyond their content (role, separators) and a
# few to prime the answer (OpenAI's published counting recipe: 3 per message, 3 per reply;
# 8 and 8 leave room for other servers).
MESSAGE_OVERHEAD_TOKENS = 8
REPLY_OVERHEAD_TOKENS = 8


def prompt_tokens_upper_bound(messages: Sequence[dict]) -> int:
    """An upper bound on a chat request's prompt tokens for any byte-level BPE tokenizer:
    every token holds at least one UTF-8 byte of the content, plus the per-message overhead.
    It over-counts English text about 4x; the cap uses it only for requests whose real usage
    is not known yet, and replaces it with the billed count once the answer arrives."""
    return REPLY_OVERHEAD_TOKENS + sum(
        MESSAGE_OVERHEAD_TOKENS + len(str(m.get("content", "")).encode("utf-8")) + len(str(m.get("role", "")))
        for m in messages
    )


@functools.lru_cache(maxsize=1)  # one tokenizer per process, however many teachers load it
def token_counter() -> tuple[Callable[[str], int], str]:
    """A token count for texts no API has counted (an estimate, or a recorded teacher's answers):
    the shipped SmolLM2 tokenizer, a byte-level BPE like OpenAI's (o200k_base is not offline),
    else UTF-8 bytes / 4; the second value names which."""
    try:
        from transformers import AutoTokenizer

        from scoder.models.gguf import readable
        from scoder.models.registry import resolve

        path, kwargs = readable(resolve("smollm2"))  # the same tokenizer either way
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        return (lambda text: len(tokenizer.encode(text, add_special_tokens=False))), "SmolLM2 tokenizer (stand-in)"
    except Exception as exc:  # noqa: BLE001 - the estimate still works, with a cruder count it names
        return (lambda text: max(1, len(text.encode("utf-8")) // 4)), f"UTF-8 bytes / 4 (tokenizer unavailable: {exc})"

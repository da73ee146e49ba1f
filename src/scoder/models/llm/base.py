"""The LLM interface shared by every backend, and the factory that picks one from params."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from tqdm import tqdm

from scoder.core.cache import cache_key
from scoder.distributed.runtime import RayConfig
from scoder.models.precision import check_precision

if TYPE_CHECKING:
    from scoder.core.cache import ResponseCache

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]  # chat messages: [{"role": ..., "content": ...}]


def is_prefilled(messages: Messages) -> bool:
    """A conversation ending in an assistant message asks the model to continue that message
    (prefill): the answer starts with the given text, as evalplus' chat prompts and the
    template-guided synthesis do."""
    return bool(messages) and messages[-1].get("role") == "assistant"


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """`text` up to the first stop string (excluded), as OpenAI-style servers return it, and
    whether one was found."""
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


def plan_batches(prompts: Sequence[Messages], batch_size: int) -> list[tuple[int, list[Messages]]]:
    """The fixed batches (start index, prompts) a local backend generates a call's prompts in.
    A batch's cache key and sampling seed follow from its start, so any process (this one, a
    resumed run, a Ray worker) computes a batch the same way."""
    size = max(1, batch_size)
    return [(start, list(prompts[start : start + size])) for start in range(0, len(prompts), size)]


def batch_key(identity: dict, start: int, chunk: list[Messages], params: "SamplingParams") -> str:
    """The response-cache key of the fixed batch of `chunk`'s prompts starting at `start`
    under the engine `identity` (the same in-process and on Ray)."""
    return cache_key(identity, chunk, dataclasses.asdict(params), start)


def fill_choices_key(identity: dict, messages: Messages, parts: Sequence[str], choices: Sequence[str]) -> str:
    return cache_key(identity, "fill_choices", list(messages), list(parts), list(choices))


def store_batch(cache: "ResponseCache | None", usage: dict, key: str, completions: list["Completion"]) -> list["Completion"]:
    """Count a freshly computed batch's tokens into `usage` and commit it to the cache."""
    usage["calls"] += len(completions)
    usage["prompt_tokens"] += sum(c.prompt_tokens for c in completions)
    usage["completion_tokens"] += sum(sum(c.completion_tokens) for c in completions)
    if cache is not None:
        cache.put(key, [dataclasses.asdict(c) for c in completions])
    return completions


def generate_in_batches(llm, prompts: Sequence[Messages], params: "SamplingParams") -> list["Completion"]:
    """A local backend's `generate`: the call's fixed batches, cached ones read back, the
    missing ones computed by `llm.compute_batches` and each stored as soon as it ends."""
    chunks = plan_batches(prompts, llm.config.batch_size)
    keys = [batch_key(llm.identity, start, chunk, params) for start, chunk in chunks]
    done: dict[int, list[Completion]] = {}
    for index, key in enumerate(keys):
        if llm.cache is not None and (hit := llm.cache.get(key)) is not None:
            done[index] = [Completion(**{**c, "cached": True}) for c in hit]
    missing = [i for i in range(len(chunks)) if i not in done]
    # a long call (164 answers take minutes on a CPU) shows how far it is; callers that cut their
    # work into chunks (distill, scoring) show their own bar, so this one is debug-level and
    # transient rather than a line per chunk
    if missing:
        log.debug("generating %d of %d batches (%d prompts in all; the rest cached), at most %d new tokens each",
                  len(missing), len(chunks), len(prompts), params.max_tokens)
    progress = tqdm(total=len(missing), desc="generate", unit="batch", mininterval=10, leave=False,
                    disable=len(missing) < 2)

    def finished(position: int, completions: list[Completion]) -> None:
        index = missing[position]
        done[index] = store_batch(llm.cache, llm.usage, keys[index], completions)
        progress.update(1)

    with progress:
        llm.compute_batches([chunks[i] for i in missing], params, finished)
    return [c for index in range(len(chunks)) for c in done[index]]


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    max_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    seed: int = 0


@dataclass
class Completion:
    texts: list[str]  # n samples for one prompt
    prompt_tokens: int
    completion_tokens: list[int]
    finish_reasons: list[str] = field(default_factory=list)  # "stop" | "length"
    cached: bool = False  # served from the response cache (nothing was paid or computed)


@dataclass
class RecordedConfig:
    """Where the recorded answers are and which fields hold what (`LLMConfig.recorded`, backend
    `dataset`: scoder.bootstrap.recorded_teacher)."""

    source: str = ""  # JSON array / JSON Lines file (plain or .gz), or hf:<dataset>
    split: str = "train"  # of an hf: dataset
    seed_field: str = "seed"  # the snippet the answer was written from
    problem_field: str = "problem"
    solution_field: str = "solution"
    # the raw answer instead of problem + solution (parsed like a live teacher's answer); "" = unused
    answer_field: str = ""
    id_field: str = ""  # "" = an id from the seed text
    category_field: str = ""  # "" = uncategorized seeds
    # keep records whose fields equal these, type included (lang: python; a missing field never matches)
    where: dict[str, Any] = field(default_factory=dict)


@dataclass
class LLMConfig:
    """Every model setting in one place (one params block per model role)."""

    backend: str = "transformers"  # transformers | vllm | openai | openai-batch | dataset
    model: str = "smollm2"  # alias, local folder/.gguf, or hub name; for openai the served model name
    adapter: str | None = None  # PEFT/LoRA adapter folder (transformers, vllm)
    batch_size: int = 8  # prompts per forward batch (transformers)
    threads: int = 0  # torch threads; 0 keeps torch's default
    # transformers: "generate" (model.generate on fixed batches, the default and reference) or
    # "continuous" (shared-prefix reuse, finished rows replaced at once: scoder.models.llm.decoding;
    # greedy outputs equal generate's, docs/performance.md; sampled outputs differ by design,
    # per-row generators)
    decoder: str = "generate"
    # continuous: rows decoded together (x n samples); 0 = batch_size. On a CPU a decode step
    # reads every weight once whatever the row count, so more rows cost little more per step;
    # batch_size still cuts the call into the cached, seeded batches
    max_rows: int = 0
    # weights' dtype (transformers, vllm): fp32 | bf16 | auto (bf16 where the device has it natively);
    # see scoder.models.precision. The backend's `precision` attribute says what it resolved to.
    precision: str = "fp32"
    max_input_tokens: int = 2048
    use_cache: bool = True  # persistent response cache (see scoder.core.cache)
    # openai-compatible endpoints (OpenAI itself, `vllm serve`, ...)
    endpoint: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"  # the variable's NAME; the key itself never enters params
    max_concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    # money (scoder.core.prices, scoder.core.budget): the price-table row that prices this role
    # ("" = the model's own row; a local stand-in with a row is priced as if it were that model),
    # or explicit USD per 1M tokens; and the stage's cap (None: no cap; cached answers count)
    price_as: str = ""
    price_in_per_1m: float | None = None
    price_out_per_1m: float | None = None
    max_budget_usd: float | None = None
    # openai-batch: OpenAI's Batch API (half price, answers within the completion window);
    # batch ids and their state persist under <cache>/batches/ so a rerun never resubmits
    batch_completion_window: str = "24h"
    batch_poll_s: float = 30.0
    batch_max_requests: int = 50000  # requests per batch file (OpenAI's limit)
    batch_max_attempts: int = 3  # a request that failed in this many batches is an error
    # dataset: a recorded teacher (answers another project already paid a model for)
    recorded: RecordedConfig = field(default_factory=RecordedConfig)
    # vllm
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_lora_rank: int = 64
    # local backends (transformers, vllm) on Ray: `workers` actors, each holding one engine,
    # share a call's fixed batches; outputs equal an in-process run's (scoder.distributed.llm)
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self):
        check_precision(self.precision, "LLMConfig.precision")


class LLM(Protocol):
    def generate(self, prompts: Sequence[Messages], params: SamplingParams) -> list[Completion]: ...

    def next_token_logprobs(self, prompts: Sequence[Messages], tokens: Sequence[str]) -> list[list[float]]:
        """log P(first token of each string in `tokens` | prompt + assistant turn start)."""
        ...

    def fill_choices(self, prompts: Sequence[Messages], parts: Sequence[str], choices: Sequence[str]) -> list[list[list[float]]]:
        """Teacher-forced template filling (local backends): see TransformersLLM.fill_choices."""
        ...


def option_probabilities(
    llm: LLM, prompts: Sequence[Messages], options: dict[str, list[str]]
) -> list[dict[str, float]]:
    """Probability of each labelled option as the answer's first token, renormalised over
    the options (each option may have spelling variants such as "yes"/"Yes")."""
    variants = [v for spellings in options.values() for v in spellings]
    rows = llm.next_token_logprobs(prompts, variants)
    results = []
    for row in rows:
        masses, offset = {}, 0
        for label, spellings in options.items():
            masses[label] = sum(math.exp(lp) for lp in row[offset : offset + len(spellings)])
            offset += len(spellings)
        total = sum(masses.values())
        results.append({k: (v / total if total > 0 else 0.0) for k, v in masses.items()})
    return results


def load_llm(config: LLMConfig, cache: "ResponseCache | None" = None) -> LLM:
    """Build the backend named in `config`; `cache` defaults to the project response cache."""
    from scoder.core.cache import ResponseCache

    if not config.use_cache:
        cache = None
    elif cache is None:
        cache = ResponseCache()
    if config.ray.enabled:
        if config.backend not in ("transformers", "vllm"):
            raise ValueError(f"ray.workers applies to the local backends (transformers, vllm), not '{config.backend}' "
                             "(remote endpoints have their own concurrency: max_concurrency)")
        from scoder.distributed.llm import RayLLM

        return RayLLM(config, cache)
    if config.backend == "transformers":
        from scoder.models.llm.transformers_backend import TransformersLLM

        return TransformersLLM(config, cache)
    if config.backend == "openai":
        from scoder.models.llm.openai_backend import OpenAICompatibleLLM

        return OpenAICompatibleLLM(config, cache)
    if config.backend == "openai-batch":
        from scoder.models.llm.openai_batch import OpenAIBatchLLM

        return OpenAIBatchLLM(config, cache)
    if config.backend == "vllm":
        from scoder.models.llm.vllm_backend import VLLMBackend

        return VLLMBackend(config, cache)
    if config.backend == "dataset":
        from scoder.bootstrap.recorded_teacher import RecordedTeacher

        return RecordedTeacher(config, cache)
    raise ValueError(f"unknown LLM backend '{config.backend}' (available: transformers, openai, openai-batch, vllm, "
                     "dataset)")

"""The LLM interface shared by every backend, and the factory that picks one from params."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, Sequence

Messages = list[dict[str, str]]  # chat messages: [{"role": ..., "content": ...}]


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


@dataclass
class LLMConfig:
    backend: str = "transformers"  # transformers | (later) vllm | openai
    model: str = "smollm2"
    adapter: str | None = None  # PEFT adapter folder
    batch_size: int = 8
    threads: int = 0  # torch threads; 0 keeps torch's default
    max_input_tokens: int = 2048


class LLM(Protocol):
    def generate(self, prompts: Sequence[Messages], params: SamplingParams) -> list[Completion]: ...

    def next_token_logprobs(self, prompts: Sequence[Messages], tokens: Sequence[str]) -> list[list[float]]:
        """log P(first token of each string in `tokens` | prompt + assistant turn start)."""
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


def load_llm(config: LLMConfig) -> LLM:
    if config.backend == "transformers":
        from .transformers_backend import TransformersLLM

        return TransformersLLM(config)
    raise ValueError(f"unknown LLM backend '{config.backend}' (available: transformers)")

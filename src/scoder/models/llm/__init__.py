"""One interface to language models: batched chat generation and next-token judgements."""

from scoder.models.llm.base import Completion, LLMConfig, SamplingParams, load_llm

__all__ = ["Completion", "LLMConfig", "SamplingParams", "load_llm"]

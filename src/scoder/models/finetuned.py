"""The engine for a fine-tuned checkpoint, in one place: a full fine-tune's checkpoint is a
model folder of its own; a LoRA checkpoint is the base model plus that adapter."""

from __future__ import annotations

from dataclasses import replace

from scoder.models.llm.base import LLMConfig


def finetuned_engine(engine: LLMConfig, base_model: str, method: str, checkpoint: str | None) -> LLMConfig:
    """`engine`'s backend settings serving `checkpoint` (None: the base model itself)."""
    if checkpoint is None:
        return replace(engine, model=base_model, adapter=None)
    if method == "full":
        return replace(engine, model=checkpoint, adapter=None)
    if method != "lora":
        raise ValueError(f"unknown fine-tuning method '{method}' (expected lora or full)")
    return replace(engine, model=base_model, adapter=checkpoint)

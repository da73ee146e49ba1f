"""The mean token NLL of a response after its prompt, under a transformers causal LM: what
evaluate's canonical-solution NLL and seed 003's PPL / IFD baselines both measure."""

from __future__ import annotations

import math
from typing import Sequence

import torch


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices in batches of `batch_size`, longest first, so each batch pads to lengths close to
    its own (a padded row costs as much as a full one); the caller puts the results back in order."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    size = max(1, batch_size)
    return [order[start : start + size] for start in range(0, len(order), size)]


def nll_in_length_batches(score, prompts: Sequence[str], texts: Sequence[str], batch_size: int) -> list:
    """`score(prompts, texts)` (a response_nll) over length-sorted batches of `batch_size`,
    the values back in the input order."""
    values: list = [None] * len(texts)
    for batch in length_sorted_batches([len(t) for t in texts], batch_size):
        for i, value in zip(batch, score([prompts[i] for i in batch], [texts[i] for i in batch]), strict=True):
            values[i] = value
    return values


@torch.inference_mode()
def response_nll(model, tokenizer, prompts: list[str], fulls: list[str], max_length: int) -> list[float]:
    """Mean token NLL of each `fulls[i]` after its prefix `prompts[i]` (NaN if nothing is left)."""
    previous_side, tokenizer.padding_side = tokenizer.padding_side, "right"  # scores read left to right
    try:
        batch = tokenizer(fulls, return_tensors="pt", padding=True, truncation=True, max_length=max_length, add_special_tokens=False)
    finally:
        tokenizer.padding_side = previous_side
    prompt_lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    logits = model(**batch).logits[:, :-1].float()
    targets = batch["input_ids"][:, 1:]
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    mask = batch["attention_mask"][:, 1:].bool().clone()
    for row, length in enumerate(prompt_lengths):
        mask[row, : max(0, length - 1)] = False  # score only the response tokens
    values = []
    for row in range(len(fulls)):
        count = int(mask[row].sum())
        values.append(float((nll[row] * mask[row]).sum() / count) if count else math.nan)
    return values

"""Baselines of seed 003: Random, K-Center greedy, PPL (lowest / highest) and IFD."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from scoder.models.lm_loss import response_nll


def select_random(n: int, m: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).choice(n, size=m, replace=False)


def select_kcenter(features: np.ndarray, m: int, seed: int) -> np.ndarray:
    """Greedy K-Center (Sener & Savarese): repeatedly take the sample farthest (cosine
    distance) from the chosen centres; the first centre is a seeded random sample."""
    f = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    n = f.shape[0]
    first = int(np.random.default_rng(seed).integers(n))
    chosen = [first]
    nearest = 1.0 - f @ f[first]  # distance of every sample to its closest centre
    for _ in tqdm(range(m - 1), desc="k-center", unit="center", mininterval=5, disable=m < 1000):
        nearest[chosen[-1]] = -1.0
        pick = int(torch.argmax(nearest))
        chosen.append(pick)
        nearest = torch.minimum(nearest, 1.0 - f @ f[pick])
    return np.array(chosen, dtype=np.int64)


def response_losses(llm, instructions: Sequence[str], responses: Sequence[str], batch_size: int = 4, max_length: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Mean token NLL of each response with and without its instruction as the user turn,
    under a transformers model (the `llm.model` / `llm.tokenizer` of TransformersLLM)."""
    tokenizer, model = llm.tokenizer, llm.model
    conditioned, unconditioned = [], []
    for start in tqdm(range(0, len(responses), batch_size), desc="ppl/ifd", unit="batch", mininterval=5):
        for with_instruction, out in ((True, conditioned), (False, unconditioned)):
            prompts, fulls = [], []
            for instruction, response in zip(instructions[start : start + batch_size], responses[start : start + batch_size]):
                messages = [{"role": "user", "content": instruction if with_instruction else ""}]
                prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
                prompts.append(prompt)
                fulls.append(prompt + response)
            out.extend(response_nll(model, tokenizer, prompts, fulls, max_length))
    return np.array(conditioned), np.array(unconditioned)


def select_by_score(scores: np.ndarray, m: int, highest: bool) -> np.ndarray:
    """Top-m by score (NaN never selected), ties broken by index for determinism."""
    scores = np.asarray(scores, dtype=float)
    valid = np.flatnonzero(~np.isnan(scores))
    order = valid[np.argsort(-scores[valid] if highest else scores[valid], kind="stable")]
    return order[:m]


def ifd_scores(conditioned_nll: np.ndarray, unconditioned_nll: np.ndarray) -> np.ndarray:
    """Instruction-Following Difficulty: PPL(response | instruction) / PPL(response)."""
    return np.exp(conditioned_nll) / np.exp(unconditioned_nll)

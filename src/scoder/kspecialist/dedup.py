"""Semantic dedup (seed 002 section 2.3): one record of every group of near-identical
instructions, greedy in row order, by cosine of their embeddings. Light on purpose: the
semantic_dedup stage needs neither training nor evaluation code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np


def normalise(embeddings: np.ndarray) -> np.ndarray:
    e = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"embedding row {int(np.flatnonzero(norms[:, 0] == 0)[0])} is all zeros")
    return e / norms


def semantic_dedup(embeddings: np.ndarray, threshold: float = 0.95, batch_size: int = 1024) -> tuple[list[int], dict[int, int]]:
    """(indices kept, {dropped index: the kept index it duplicates}), greedy in row order."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"dedup threshold must be in (0, 1], got {threshold}")
    e = normalise(embeddings) if len(embeddings) else np.zeros((0, 1), np.float32)
    kept: list[int] = []
    duplicate_of: dict[int, int] = {}
    kept_vectors = np.zeros((0, e.shape[1]), dtype=np.float32)
    for start in range(0, len(e), max(1, batch_size)):
        block = e[start : start + batch_size]
        against_kept = block @ kept_vectors.T if len(kept) else np.zeros((len(block), 0), np.float32)
        within = block @ block.T
        survivors: list[int] = []
        for i in range(len(block)):
            if against_kept.shape[1] and against_kept[i].max() > threshold:
                duplicate_of[start + i] = kept[int(against_kept[i].argmax())]
                continue
            if survivors:
                sims = within[i, survivors]
                if sims.max() > threshold:
                    duplicate_of[start + i] = start + survivors[int(sims.argmax())]
                    continue
            survivors.append(i)
        kept.extend(start + i for i in survivors)
        kept_vectors = np.vstack([kept_vectors, block[survivors]])
    return kept, duplicate_of


def question_texts(records: Sequence[dict], fields: Sequence[str], source: str) -> list[str]:
    from scoder.models.features import instruction_text

    texts = []
    for index, record in enumerate(records, start=1):
        try:
            texts.append(instruction_text(record, fields))
        except ValueError as exc:
            raise ValueError(f"{source}: record {index}: {exc}") from None
    return texts


@dataclass
class SemanticDedupConfig:
    """The `semantic_dedup` params section (seed 002 section 2.3)."""

    instruction_fields: list[str] = field(default_factory=lambda: ["instruction"])
    response_fields: list[str] = field(default_factory=lambda: ["response", "output"])
    model: str = "minilm"  # seed 002: intfloat/e5-base-v2 (prompt "query: ")
    prompt: str = ""
    threshold: float = 0.95
    batch_size: int = 1024  # rows per similarity block
    embed_batch_size: int = 64


def dedup_records(records: Sequence[dict], config: SemanticDedupConfig, source: str,
                  embed: Callable[[list[str]], np.ndarray] | None = None) -> tuple[list[dict], list[dict]]:
    """(kept records, one {id, duplicate_of} row per dropped record). The embedded text is the
    question and the response together: two records asking the same thing with different code
    are not duplicates."""
    questions = question_texts(records, config.instruction_fields, source)
    answers = question_texts(records, config.response_fields, source)
    if embed is None:
        from scoder.models.embed import embed_texts, load_embedder

        embed = lambda texts: embed_texts(load_embedder(config.model), texts, config.prompt,  # noqa: E731
                                          config.embed_batch_size, progress=True)
    texts = [f"{q}\n\n{a}" for q, a in zip(questions, answers)]
    kept, duplicate_of = semantic_dedup(embed(texts), config.threshold, config.batch_size)
    key = lambda i: records[i].get("id", f"{source}:{i + 1}")  # noqa: E731
    return [records[i] for i in kept], [{"id": key(i), "duplicate_of": key(j)} for i, j in sorted(duplicate_of.items())]

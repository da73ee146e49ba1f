"""Diversity and complexity of an instruction dataset (seed 002, Tables 1 and 2).

- Question MTLD: lexicalrichness' MTLD (factor threshold 0.72, forward and backward
  averaged) over the sampled questions joined into one text.
- Question / code spread: the seed prints a garbled formula; implemented is what its words
  say, "the reciprocal of the average cosine similarities of embeddings amongst each other":
  spread = N (N - 1) / sum_{i != j} cos(e_i, e_j), over a seeded sample of N (1000) records.
  Higher means more spread out.
- Code complexity with radon: Halstead vocabulary, length and difficulty of the whole
  program, and the average cyclomatic complexity of its blocks; code that does not parse is
  counted (`unparsable`), not crashed on.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def question_mtld(questions: Sequence[str], threshold: float = 0.72) -> float:
    from lexicalrichness import LexicalRichness

    text = "\n".join(q for q in questions if q and q.strip())
    if not text:
        raise ValueError("no question text to measure")
    return float(LexicalRichness(text).mtld(threshold=threshold))


def spread(embeddings: np.ndarray) -> float:
    """N (N-1) / sum of the pairwise cosine similarities (i != j)."""
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2 or len(e) < 2:
        raise ValueError("spread needs at least two embeddings")
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    n = len(e)
    total = float((e @ e.T).sum() - n)  # drop the diagonal (cos = 1)
    if total <= 0:
        raise ValueError(f"the pairwise cosines sum to {total:.4f}: spread is undefined")
    return n * (n - 1) / total


def sample_indices(count: int, size: int, seed: int) -> np.ndarray:
    if count <= size:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=size, replace=False))


def code_complexity(codes: Sequence[str]) -> dict:
    """Mean Halstead vocabulary / length / difficulty and mean cyclomatic complexity over the
    programs that parse; the others are counted."""
    from radon.complexity import cc_visit
    from radon.metrics import h_visit

    vocabulary, length, difficulty, cyclomatic = [], [], [], []
    unparsable = 0
    for code in codes:
        try:
            halstead = h_visit(code).total
            blocks = cc_visit(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            unparsable += 1
            continue
        vocabulary.append(halstead.vocabulary)
        length.append(halstead.length)
        difficulty.append(halstead.difficulty)
        cyclomatic.append(np.mean([b.complexity for b in blocks]) if blocks else 1.0)
    mean = lambda values: round(float(np.mean(values)), 4) if values else None  # noqa: E731
    return {"programs": len(codes), "unparsable": unparsable, "halstead_vocabulary": mean(vocabulary),
            "halstead_length": mean(length), "halstead_difficulty": mean(difficulty), "cyclomatic_avg": mean(cyclomatic)}

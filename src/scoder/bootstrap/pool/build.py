"""The pool pipeline: read -> extract -> filter -> exact dedup -> near dedup -> decontaminate
-> (optional) LM quality classifier. Each step is counted in the returned metrics."""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from scoder.core.io import content_id
from scoder.bootstrap.pool.config import EVALUATED_DATASETS, PoolConfig
from scoder.bootstrap.pool.decontaminate import benchmark_files, build_index
from scoder.bootstrap.pool.dedup import near_dedup, signature
from scoder.bootstrap.pool.extract import extract_functions, parse_module
from scoder.bootstrap.pool.filters import REASONS, FunctionFilter
from scoder.bootstrap.pool.prescan import extract_fast
from scoder.bootstrap.pool.sources import iter_hf_files, list_python_files

log = logging.getLogger(__name__)


@dataclass
class FileOutcome:
    path: str
    snippets: list[dict] = field(default_factory=list)
    signatures: list[np.ndarray] = field(default_factory=list)
    functions_found: int = 0
    rejected: Counter = field(default_factory=Counter)
    skip_reason: str | None = None


def decode_source(data: bytes, max_bytes: int) -> tuple[str | None, str | None]:
    """Return (text, None) or (None, skip reason) for raw file bytes."""
    if len(data) > max_bytes:
        return None, "too_large"
    if b"\x00" in data[:8192]:
        return None, "binary"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "non_utf8"


def find_functions(text: str, path: str, extractor: str = "fast") -> list:
    """The documented functions of one file's text (SyntaxError when it does not parse): the
    fast path where it is exact (prescan.extract_fast), else the reference (one ast.parse)."""
    if extractor == "fast":
        functions = extract_fast(text, path)
        if functions is not None:
            return functions
    return extract_functions(text, path, parse_module(text, path))


def process_source(path: str, text: str, config: PoolConfig) -> FileOutcome:
    """Extract, filter and sign the documented functions of one file's text."""
    if config.extractor == "fast" and gc.isenabled():
        # the trees here hold no reference cycles, so the cyclic collector only costs time
        # while they are built (7% of the fast path; 37% of the ast path, left as it was)
        gc.disable()
        try:
            return _process_source(path, text, config)
        finally:
            gc.enable()
    return _process_source(path, text, config)


def _process_source(path: str, text: str, config: PoolConfig) -> FileOutcome:
    outcome = FileOutcome(path=path)
    try:
        functions = find_functions(text, path, config.extractor)
    except SyntaxError:
        outcome.skip_reason = "syntax_error"
        return outcome
    function_filter = FunctionFilter(config.filters)
    outcome.functions_found = len(functions)
    for fn in functions:
        reason = function_filter.first_rejection(fn)
        if reason:
            outcome.rejected[reason] += 1
            continue
        outcome.snippets.append(
            {
                "id": content_id(fn.code),
                "code": fn.code,
                "imports": "\n".join(fn.imports),
                "source": f"{path}:{fn.lineno}",
                "category": None,
                "meta": {
                    "path": path,
                    "qualname": fn.qualname,
                    "lineno": fn.lineno,
                    "end_lineno": fn.end_lineno,
                    "is_method": fn.is_method,
                    "is_async": fn.is_async,
                    "n_args": fn.n_args,
                    "n_lines": fn.code.count("\n"),
                    "docstring": fn.docstring,
                },
            }
        )
        outcome.signatures.append(signature(fn.code, config.dedup.num_perm, config.dedup.ngram))
    return outcome


def process_file(args: tuple[str, str, PoolConfig]) -> FileOutcome:
    path, display_path, config = args
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        log.debug("cannot read %s: %s", path, exc)
        return FileOutcome(path=display_path, skip_reason="unreadable")
    text, reason = decode_source(data, config.max_file_bytes)
    if text is None:
        return FileOutcome(path=display_path, skip_reason=reason)
    return process_source(display_path, text, config)


def process_text(args: tuple[str, str, PoolConfig]) -> FileOutcome:
    path, text, config = args
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > config.max_file_bytes:
        return FileOutcome(path=path, skip_reason="too_large")
    return process_source(path, text, config)


def _outcomes(config: PoolConfig) -> tuple[Iterator[FileOutcome], int | None]:
    if config.ray.enabled:
        return _ray_outcomes(config)
    if config.source.startswith("hf:"):
        jobs: Iterable = ((p, t, config) for p, t in iter_hf_files(config))
        worker, total = process_text, (config.max_files or None)
    else:
        root, files = list_python_files(config)
        jobs = [(str(p), p.relative_to(root).as_posix(), config) for p in files]
        worker, total = process_file, len(files)
    log.info("pool: extract+filter %s", "in-process" if config.workers <= 1 else f"on {config.workers} processes")
    if config.workers <= 1:
        return map(worker, jobs), total
    executor = ProcessPoolExecutor(max_workers=config.workers)

    def run() -> Iterator[FileOutcome]:
        with executor:
            # chunks amortise pickling; map keeps the input order so results are deterministic
            yield from executor.map(worker, jobs, chunksize=16)

    return run(), total


def _ray_outcomes(config: PoolConfig) -> tuple[Iterator[FileOutcome], int | None]:
    """The same outcomes in the same order, computed on Ray tasks (scoder.distributed.pool)."""
    from scoder.distributed import pool as ray_pool  # imports Ray: only when asked for

    log.info("pool: extract+filter on Ray, %d worker(s)", config.ray.workers)
    if config.source.startswith("hf:"):
        return ray_pool.text_outcomes(iter_hf_files(config), config), (config.max_files or None)
    root, files = list_python_files(config)
    jobs = [(str(p), p.relative_to(root).as_posix()) for p in files]
    return ray_pool.file_outcomes(jobs, config), len(files)


def _snippet_hits(snippets: list[dict], index, config: PoolConfig) -> Iterator[dict[str, list[str]]]:
    """`index.hits` of each snippet's code, in snippet order: on Ray tasks or in process."""
    if not index.owners:  # nothing indexed (decontamination off): every snippet is clean
        return ({} for _ in snippets)
    if config.ray.enabled:
        from scoder.distributed.pool import snippet_hits

        return snippet_hits(snippets, index, config.ray)
    return map(index.hits, (snippet["code"] for snippet in snippets))


@dataclass
class PoolResult:
    snippets: list[dict]
    metrics: dict
    skipped_files: list[dict]
    removed: list[dict]  # near-duplicates and contaminated snippets, with the reason


def build_pool(config: PoolConfig, quality_scorer=None, evaluated: Sequence[str] = EVALUATED_DATASETS,
               slices: Mapping[str, str | Path] | None = None) -> PoolResult:
    """Run the pool steps; `quality_scorer(snippets) -> list[float]` is the LM classifier,
    `evaluated` the datasets the evaluate stage scores (`evaluate.datasets`), `slices` the
    shipped benchmark slices (name -> path; default data/benchmarks/)."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    # the benchmark index first: a bad benchmark file fails before minutes of extraction
    decontam = config.decontaminate
    index = build_index(decontam.ngram, benchmark_files(decontam, list(evaluated), slices))
    skipped_benchmarks = sorted(set(evaluated) - set(index.benchmarks))
    if skipped_benchmarks:
        log.warning("the evaluate stage scores %s, but the pool is not decontaminated against it "
                    "(pool.decontaminate.benchmarks: %s)", ", ".join(skipped_benchmarks), decontam.benchmarks)
    timings["decontaminate_index"] = time.perf_counter() - start
    step = time.perf_counter()
    outcomes, total = _outcomes(config)
    snippets: list[dict] = []
    signatures: dict[str, np.ndarray] = {}
    skipped: list[dict] = []
    file_reasons: Counter = Counter()
    rejected: Counter = Counter({reason: 0 for reason in REASONS})
    files_seen = functions_found = exact_duplicates = 0
    for outcome in tqdm(outcomes, total=total, desc="pool: extract+filter", unit="file", mininterval=2):
        files_seen += 1
        if outcome.skip_reason:
            file_reasons[outcome.skip_reason] += 1
            skipped.append({"path": outcome.path, "reason": outcome.skip_reason})
            continue
        functions_found += outcome.functions_found
        rejected.update(outcome.rejected)
        for snippet, sig in zip(outcome.snippets, outcome.signatures):
            if snippet["id"] in signatures:
                exact_duplicates += 1
                continue
            signatures[snippet["id"]] = sig
            snippets.append(snippet)
    timings["extract_filter"] = time.perf_counter() - step
    after_filter = len(snippets) + exact_duplicates

    step = time.perf_counter()
    kept_ids, duplicate_of = near_dedup(
        ((s["id"], signatures[s["id"]]) for s in snippets), config.dedup.threshold, config.dedup.num_perm
    )
    kept = set(kept_ids)
    removed = [
        {"id": s["id"], "source": s["source"], "reason": "near_duplicate", "of": duplicate_of[s["id"]]}
        for s in snippets
        if s["id"] not in kept
    ]
    after_exact = len(snippets)
    snippets = [s for s in snippets if s["id"] in kept]
    timings["near_dedup"] = time.perf_counter() - step

    step = time.perf_counter()
    clean, contaminated_ids = [], set()
    for snippet, hits in zip(snippets, _snippet_hits(snippets, index, config)):
        if hits:
            index.count(hits)
            ids = sorted({task for tasks in hits.values() for task in tasks})
            contaminated_ids.update(ids)
            removed.append({"id": snippet["id"], "source": snippet["source"], "reason": "contaminated",
                            "benchmark_ids": ids, "benchmarks": hits})
        else:
            clean.append(snippet)
    contamination_hits = len(snippets) - len(clean)
    snippets = clean
    timings["decontaminate"] = time.perf_counter() - step

    after_decontam = len(snippets)
    quality_rejected = 0
    if config.quality.method == "lm":
        step = time.perf_counter()
        if quality_scorer is None:
            raise ValueError("pool.quality.method is 'lm' but no quality scorer was given")
        scores = quality_scorer(snippets)
        for snippet, score in zip(snippets, scores):
            snippet["meta"]["quality"] = round(float(score), 6)
        passed = [s for s in snippets if s["meta"]["quality"] >= config.quality.threshold]
        quality_rejected = len(snippets) - len(passed)
        removed.extend({"id": s["id"], "source": s["source"], "reason": "low_quality"} for s in snippets if s["meta"]["quality"] < config.quality.threshold)
        snippets = passed
        timings["quality"] = time.perf_counter() - step
    elif config.quality.method != "none":
        raise ValueError(f"unknown pool.quality.method '{config.quality.method}' (expected none or lm)")

    if config.max_snippets and len(snippets) > config.max_snippets:
        snippets = snippets[: config.max_snippets]
    timings["total"] = time.perf_counter() - start

    metrics = {
        "files_seen": files_seen,
        "files_skipped": dict(sorted(file_reasons.items())),
        "functions_found": functions_found,
        "rejected": dict(rejected),
        "after_filter": after_filter,
        "exact_duplicates": exact_duplicates,
        "after_exact_dedup": after_exact,
        "near_duplicates": after_exact - len(kept),
        "after_near_dedup": len(kept),
        "dedup_ratio": round(1 - len(kept) / after_filter, 6) if after_filter else 0.0,
        "contamination_hits": contamination_hits,
        "contaminated_benchmark_ids": sorted(contaminated_ids),
        "benchmark_tasks_indexed": index.tasks,
        "decontamination": {"ngram": decontam.ngram, "benchmarks": index.summary(), "removed": contamination_hits},
        "after_decontamination": after_decontam,
        "quality_method": config.quality.method,
        "quality_rejected": quality_rejected,
        "snippets": len(snippets),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "functions_per_second": round(functions_found / timings["total"], 1) if timings["total"] else 0.0,
    }
    return PoolResult(snippets=snippets, metrics=metrics, skipped_files=skipped, removed=removed)

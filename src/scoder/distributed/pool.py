"""The pool stage's data-parallel steps on Ray tasks (`pool.ray.workers > 0`): the per-file map
(extract, filter, sign) and the per-snippet decontamination check.

Why the outputs equal an in-process run's: every file goes through the same function as in
process (`process_file` for a folder, `process_text` for an `hf:` dataset) with the same config,
a task computes one fixed batch of consecutive inputs, and the driver consumes the batches in
input order (`ordered_results`), so its exact dedup, near dedup and counting see exactly the
sequence of outcomes the local path yields. A task is pure (it reads files, computes, returns),
so Ray may retry one whose worker died (`ray.max_restarts`) without changing anything.

What runs where:

- extract + filter + MinHash signatures: Ray tasks of FILES_PER_TASK files. For a folder the
  workers read the files themselves (paths travel, not contents), so on a cluster of several
  nodes the folder must be at the same path on each (a shared filesystem); an `hf:` dataset is
  streamed by the driver and its text shipped in batches.
- exact dedup and near dedup: the driver. MinHash LSH is a global operation (which snippet
  survives depends on every snippet before it), and it is cheap next to extraction (0.2 s for
  the 2,700 stdlib snippets). A source whose signatures do not fit in one driver's memory needs
  a multi-stage dedup over buckets instead, as datatrove's MinHash pipeline does (signatures,
  then per-band buckets, then clusters, then filtering), not this driver.
- decontamination of the near-dedup survivors: Ray tasks of SNIPPETS_PER_TASK snippets, against
  the benchmark index put in the object store once (each worker process deserialises it once).
  The hits are counted on the driver, in snippet order, as in process.

At most `ray.workers` tasks compute at once, each reserving `ray.num_cpus` CPUs (and
`ray.num_gpus`, which the pool does not use: leave it 0; `ray.threads` sets torch threads,
and the pool runs no torch), and at most WINDOW_PER_WORKER batches per worker are submitted and
not yet consumed, so a huge source streams through a bounded set of results instead of all of
them at once. Ray runs its workers at nice 15 (`RAY_worker_niceness`): on a machine shared with
other work they yield to it, where an in-process run would not.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from scoder.bootstrap.pool.build import FileOutcome, process_file, process_text
from scoder.bootstrap.pool.config import PoolConfig
from scoder.bootstrap.pool.decontaminate import BenchmarkIndex
from scoder.distributed.runtime import RayConfig, connect

FILES_PER_TASK = 64  # ~0.3 s of extraction on one core for stdlib files: Ray's per-task cost is noise
SNIPPETS_PER_TASK = 512  # ~50 ms of n-gram look-ups
# batches submitted and not yet consumed, per worker: one computing, the others finished and
# waiting behind a slower batch earlier in the order, so one slow batch does not idle the rest
WINDOW_PER_WORKER = 4


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (the last one shorter), pulled lazily from `items`."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def ordered_results(ray, submit: Callable[[Any], Any], batches: Iterable, workers: int,
                    window: int) -> Iterator[Any]:
    """The result of `submit(batch)` (an ObjectRef) for each batch, in batch order, with at most
    `workers` tasks computing and `window` batches submitted but not yet consumed."""
    batches = iter(batches)
    pending: deque = deque()  # submitted, not yet consumed, in batch order
    computing: set = set()  # submitted and not yet seen to be finished
    more = True
    try:
        while True:
            while more and len(computing) < workers and len(pending) < window:
                batch = next(batches, None)
                if batch is None:
                    more = False
                    break
                ref = submit(batch)
                pending.append(ref)
                computing.add(ref)
            if not pending:
                return
            if pending[0] in computing:
                # wait for whichever task ends first: a later batch's end frees a slot as well
                finished, _ = ray.wait(list(computing), num_returns=1)
                computing.difference_update(finished)
                continue
            yield ray.get(pending.popleft())
    finally:
        # the consumer stopped early (an error further down the pool): drop the work in flight
        for ref in computing:
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001 - a task that ended meanwhile, or Ray already shut down
                pass


def _task_options(settings: RayConfig) -> dict:
    return {"num_cpus": settings.num_cpus, "num_gpus": settings.num_gpus, "max_retries": settings.max_restarts}


def extract_files(jobs: Sequence[tuple[str, str]], config: PoolConfig) -> list[FileOutcome]:
    """Ray task: (path to read, path to report) pairs -> their outcomes, in order."""
    return [process_file((path, display_path, config)) for path, display_path in jobs]


def extract_texts(jobs: Sequence[tuple[str, str]], config: PoolConfig) -> list[FileOutcome]:
    """Ray task: (path, text) pairs -> their outcomes, in order."""
    return [process_text((path, text, config)) for path, text in jobs]


def _owned(outcome: FileOutcome) -> FileOutcome:
    # Ray hands numpy arrays back as read-only views of the task's result in the object store,
    # which stays pinned while any view lives; the driver keeps every signature until near
    # dedup, so copying them lets each batch's result be freed once it is consumed
    outcome.signatures = [np.array(sig) for sig in outcome.signatures]
    return outcome


def _outcomes(task, jobs: Iterable, config: PoolConfig) -> Iterator[FileOutcome]:
    settings = config.ray
    ray = connect(settings)
    remote = ray.remote(task).options(**_task_options(settings))
    config_ref = ray.put(config)  # once, not pickled into every task
    results = ordered_results(ray, lambda batch: remote.remote(batch, config_ref),
                              batched(jobs, FILES_PER_TASK), settings.workers, WINDOW_PER_WORKER * settings.workers)
    for outcomes in results:
        for outcome in outcomes:
            yield _owned(outcome)


def file_outcomes(jobs: Iterable[tuple[str, str]], config: PoolConfig) -> Iterator[FileOutcome]:
    """`process_file` of each (path to read, path to report) pair on Ray, in input order."""
    return _outcomes(extract_files, jobs, config)


def text_outcomes(jobs: Iterable[tuple[str, str]], config: PoolConfig) -> Iterator[FileOutcome]:
    """`process_text` of each (path, text) pair on Ray, in input order."""
    return _outcomes(extract_texts, jobs, config)


# the index a worker process deserialised last, by object id: a pool run checks every batch
# against one index, and one index at a time is all a worker keeps
_index_cache: dict[str, BenchmarkIndex] = {}


def _index(ray, ref) -> BenchmarkIndex:
    key = ref.hex()
    if key not in _index_cache:
        _index_cache.clear()
        _index_cache[key] = ray.get(ref)
    return _index_cache[key]


def benchmark_hits(codes: Sequence[str], index_holder: list) -> list[dict[str, list[str]]]:
    """Ray task: `index.hits` of each snippet's code, in order. The index ref arrives inside a
    list so that Ray passes the ref instead of resolving it, and `_index` resolves it once per
    worker process rather than once per task."""
    import ray

    index = _index(ray, index_holder[0])
    return [index.hits(code) for code in codes]


def snippet_hits(snippets: Iterable[dict], index: BenchmarkIndex, settings: RayConfig) -> Iterator[dict[str, list[str]]]:
    """`index.hits(snippet["code"])` of each snippet on Ray, in input order."""
    ray = connect(settings)
    remote = ray.remote(benchmark_hits).options(**_task_options(settings))
    index_ref = ray.put(index)
    codes = (snippet["code"] for snippet in snippets)
    results = ordered_results(ray, lambda batch: remote.remote(batch, [index_ref]),
                              batched(codes, SNIPPETS_PER_TASK), settings.workers, WINDOW_PER_WORKER * settings.workers)
    for hits in results:
        yield from hits

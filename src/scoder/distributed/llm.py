"""A local backend's work on Ray actors: `RayLLM` has the LLM interface of the backend it
wraps (transformers or vllm) and hands a call's fixed batches to `ray.workers` actors, each
holding one engine.

Why the outputs equal an in-process run's, bit for bit: a call is cut into the same fixed
batches (`plan_batches`), a batch's sampling seed follows from its start index, and each batch
is computed whole by one engine with the same weights and thread count, so where it runs does
not matter. Results are put back in batch order.

The response cache stays with the driver (the stage process): it looks batches up before
anything is sent and stores each batch the moment it comes back, under the in-process key, so
Ray and in-process runs share cached work, and a rerun after a crash or a kill computes only
the batches that are missing. A worker that dies is restarted by Ray (`ray.max_restarts`) and
its batch retried; the adapter it had is part of every task, so a restarted worker loads it
again before it computes.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from scoder.core.cache import ResponseCache
from scoder.distributed.runtime import RayConfig, connect
from scoder.models.llm.base import (Completion, LLMConfig, Messages, SamplingParams, batch_key, fill_choices_key,
                                    plan_batches, store_batch)

log = logging.getLogger(__name__)

IN_FLIGHT_PER_WORKER = 2  # one batch computing, one queued: a worker never waits for the driver


STARTUP_TIMEOUT_S = 900.0  # loading a large model on every worker; beyond this, resources are missing


def check_resources(config: LLMConfig) -> None:
    settings = config.ray
    if config.backend == "vllm" and settings.num_gpus < config.tensor_parallel_size:
        raise ValueError(f"a vLLM engine on Ray needs its GPUs reserved: ray.num_gpus ({settings.num_gpus:g}) must be "
                         f">= tensor_parallel_size ({config.tensor_parallel_size}), or every engine sees every GPU")
    if config.backend == "transformers" and settings.num_gpus:
        log.warning("ray.num_gpus is %g, but the transformers backend runs on the CPU: the GPUs stay idle",
                    settings.num_gpus)


class LLMWorker:
    """The Ray actor: one engine, no cache of its own (the driver's cache is the only one)."""

    def __init__(self, config: LLMConfig, threads: int, folder: str):
        import torch

        if not Path(folder).is_dir():
            raise FileNotFoundError(f"the Ray worker on {os.uname().nodename} cannot see the stage's folder {folder}: "
                                    "relative model and adapter paths need the repository on a shared filesystem")
        os.chdir(folder)

        torch.set_num_threads(threads)
        from scoder.models.llm.base import load_llm

        # ray.threads is the workers' thread count: the engine must not reset it (LLMConfig.threads)
        self.llm = load_llm(replace(config, ray=RayConfig(), use_cache=False, threads=threads))
        self.adapter: tuple[str, str, bool] | None = None

    def _use(self, adapter: tuple[str, str, bool] | None) -> None:
        if adapter is not None and adapter != self.adapter:
            folder, name, keep_others = adapter
            self.llm.activate_adapter(folder, name, keep_others=keep_others)
        self.adapter = adapter

    def describe(self, adapter=None) -> dict:
        self._use(adapter)
        import torch

        return {"identity": dict(self.llm.identity), "precision": getattr(self.llm, "precision", None),
                "pid": os.getpid(), "threads": torch.get_num_threads()}

    def generate_batches(self, chunks, params: SamplingParams, adapter=None) -> tuple[list[list[Completion]], dict]:
        self._use(adapter)
        results: list[Any] = [None] * len(chunks)

        def finished(position: int, completions: list[Completion]) -> None:
            results[position] = completions

        self.llm.compute_batches(chunks, params, finished)
        return results, getattr(self.llm, "decode_stats", None) and vars(self.llm.decode_stats)

    def _counted(self, method: str, *args) -> tuple[Any, dict]:
        """A call and the tokens it computed (the driver keeps the stage's usage)."""
        before = dict(self.llm.usage)
        result = getattr(self.llm, method)(*args)
        return result, {k: self.llm.usage[k] - before.get(k, 0) for k in self.llm.usage}

    def next_token_logprobs(self, prompts, tokens, adapter=None) -> tuple[list[list[float]], dict]:
        self._use(adapter)
        return self._counted("next_token_logprobs", prompts, tokens)

    def fill_choices(self, prompts, parts, choices, adapter=None) -> tuple[list[list[list[float]]], dict]:
        self._use(adapter)
        return self._counted("fill_choices", prompts, parts, choices)

    def response_nll(self, prompts, texts, max_length, adapter=None) -> tuple[list[float], dict]:
        self._use(adapter)
        return self.llm.response_nll(prompts, texts, max_length), {}


class RayLLM:
    def __init__(self, config: LLMConfig, cache: ResponseCache | None = None):
        self.config = config
        self.cache = cache
        self.usage = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self.decode_stats = None
        settings = config.ray
        check_resources(config)
        self.ray = ray = connect(settings)
        worker = ray.remote(LLMWorker).options(
            num_cpus=settings.num_cpus, num_gpus=settings.num_gpus or None,
            max_restarts=settings.max_restarts, max_task_retries=settings.max_restarts,
        )
        log.info("starting %d Ray worker(s) with %s (%s backend), %g CPU / %g GPU and %d thread(s) each",
                 settings.workers, config.model, config.backend, settings.num_cpus, settings.num_gpus,
                 settings.actor_threads)
        if config.decoder == "continuous":
            log.warning("decoder 'continuous' on Ray: each worker decodes its own batches, so which prompts share a "
                        "forward pass differs from one process and greedy texts may drift (docs/performance.md); "
                        "decoder 'generate' gives one process's outputs exactly")
        # workers started elsewhere (`ray start`) run in another folder: they move to this one (on a
        # shared filesystem), so relative model and adapter paths, and the cache keys naming them,
        # mean what they mean here
        self.workers = [worker.remote(config, settings.actor_threads, os.getcwd()) for _ in range(settings.workers)]
        self.adapter: tuple[str, str, bool] | None = None
        # batches computed here that their generate call has not taken yet: with a cache only
        # their keys (the cache holds them), without one the completions themselves
        self._fresh: set[str] = set()
        self._prefetched: dict[str, list[Completion]] = {}
        self._describe()
        import torch

        here = torch.get_num_threads()
        if settings.actor_threads != here:
            log.warning("the Ray workers run %d torch thread(s), this process %d: the thread count decides "
                        "floating-point reduction order, so scores may differ from an in-process run in the last "
                        "digits (set ray.threads: %d for identical ones)", settings.actor_threads, here, here)

    def _describe(self) -> None:
        """Identity and precision as the engines see them (every worker loads the same model)."""
        refs = [w.describe.remote(self.adapter) for w in self.workers]
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=STARTUP_TIMEOUT_S)
        if len(ready) < len(refs):
            raise RuntimeError(
                f"{len(refs) - len(ready)} of {len(refs)} Ray workers did not start within {STARTUP_TIMEOUT_S:.0f}s: "
                f"each asks for {self.config.ray.num_cpus:g} CPU / {self.config.ray.num_gpus:g} GPU, the cluster has "
                f"{self.ray.available_resources()} free (ray.workers, ray.num_cpus, ray.num_gpus)")
        described = self.ray.get(refs)
        identities = {repr(sorted(d["identity"].items())) for d in described}
        if len(identities) != 1:
            raise RuntimeError(f"the Ray workers loaded different models: {described}")
        self.identity = described[0]["identity"]
        self.precision = described[0]["precision"]
        self.worker_pids = [d["pid"] for d in described]

    def activate_adapter(self, folder: str, name: str, keep_others: bool = False) -> None:
        adapter = (str(folder), name, keep_others)
        if adapter == self.adapter:
            return
        self.adapter = adapter
        self._fresh.clear()
        self._prefetched.clear()
        self._describe()  # every worker loads it now; the identity follows the adapter

    def _map(self, tasks: list[tuple[str, tuple]], on_result) -> None:
        """Run `tasks` (method name, args) on the workers, at most IN_FLIGHT_PER_WORKER each,
        calling `on_result(task index, result)` as each ends (in completion order)."""
        waiting = deque(range(len(tasks)))
        in_flight: dict[Any, tuple[Any, int]] = {}

        def submit(worker) -> None:
            if waiting:
                index = waiting.popleft()
                method, args = tasks[index]
                in_flight[getattr(worker, method).remote(*args, self.adapter)] = (worker, index)

        for worker in self.workers:
            for _ in range(IN_FLIGHT_PER_WORKER):
                submit(worker)
        while in_flight:
            ready, _ = self.ray.wait(list(in_flight), num_returns=1)
            worker, index = in_flight.pop(ready[0])
            on_result(index, self.ray.get(ready[0]))
            submit(worker)

    def prefetch(self, calls: Sequence[tuple[Sequence[Messages], SamplingParams]]) -> None:
        """Before a stage's loop over small calls (distill, sample and score call `generate`
        chunk by chunk): compute every missing batch of all of them at once, spread over the
        workers; the loop's `generate` calls then find them stored."""
        jobs = []
        for prompts, params in calls:
            for start, chunk in plan_batches(prompts, self.config.batch_size):
                jobs.append((batch_key(self.identity, start, chunk, params), start, chunk, params))
        self._compute(jobs)

    def generate(self, prompts: Sequence[Messages], params: SamplingParams) -> list[Completion]:
        jobs = [(batch_key(self.identity, start, chunk, params), start, chunk, params)
                for start, chunk in plan_batches(prompts, self.config.batch_size)]
        self._compute(jobs)
        results = []
        for job in jobs:
            key = job[0]
            if key in self._prefetched:
                batch = self._prefetched.pop(key)
            else:
                hit = self.cache.get(key) if self.cache is not None else None
                if hit is None:  # taken by an identical earlier call, and there is no cache
                    self._compute([job])
                    batch = self._prefetched.pop(key)
                else:
                    # computed by this process (prefetched) or an earlier one (a cache hit)
                    batch = [Completion(**{**c, "cached": key not in self._fresh}) for c in hit]
                    self._fresh.discard(key)
            results.extend(batch)
        return results

    def _compute(self, jobs: list[tuple[str, int, list[Messages], SamplingParams]]) -> dict[str, list[Completion]]:
        """The batches among `jobs` (key, start, prompts, params) that are neither cached nor
        prefetched, computed on the workers; each stored the moment it arrives."""
        missing, seen = [], set()
        for job in jobs:
            key = job[0]
            if key in seen or key in self._prefetched or (self.cache is not None and self.cache.has(key)):
                continue
            seen.add(key)
            missing.append(job)
        computed: dict[str, list[Completion]] = {}
        if not missing:
            return computed
        log.info("generating %d of %d batches on %d Ray worker(s) (the rest cached)", len(missing), len(jobs),
                 len(self.workers))

        progress = tqdm(total=len(missing), desc=f"generate on {len(self.workers)} Ray workers", unit="batch",
                        mininterval=2)

        def stored(index: int, result) -> None:
            (completions,), _ = result
            progress.update(1)
            key = missing[index][0]
            # its generate call reports it as computed, not cached, as an in-process run would
            computed[key] = store_batch(self.cache, self.usage, key, completions)
            if self.cache is not None:
                self._fresh.add(key)
            else:
                self._prefetched[key] = computed[key]

        with progress:
            self._map([("generate_batches", ([(start, chunk)], params)) for _, start, chunk, params in missing], stored)
        return computed

    def _count(self, usage: dict) -> None:
        for k in self.usage:
            self.usage[k] += usage.get(k, 0)

    def next_token_logprobs(self, prompts: Sequence[Messages], tokens: Sequence[str]) -> list[list[float]]:
        chunks = plan_batches(prompts, self.config.batch_size)
        rows: list[Any] = [None] * len(chunks)

        def kept(index: int, result) -> None:
            rows[index], usage = result
            self._count(usage)

        self._map([("next_token_logprobs", (chunk, list(tokens))) for _, chunk in chunks], kept)
        return [row for chunk_rows in rows for row in chunk_rows]

    def fill_choices(self, prompts: Sequence[Messages], parts: Sequence[str], choices: Sequence[str]) -> list[list[list[float]]]:
        keys = [fill_choices_key(self.identity, m, parts, choices) for m in prompts]
        rows: list[Any] = [None] * len(prompts)
        for i, key in enumerate(keys):
            if self.cache is not None:
                rows[i] = self.cache.get(key)
        missing = [i for i, row in enumerate(rows) if row is None]
        # the in-process path computes each prompt in a pass of its own: grouping changes no number
        groups = [missing[start : start + max(1, self.config.batch_size)]
                  for start in range(0, len(missing), max(1, self.config.batch_size))]

        def stored(group: int, result) -> None:
            slots_per_prompt, usage = result
            for i, slots in zip(groups[group], slots_per_prompt):
                rows[i] = slots
                if self.cache is not None:
                    self.cache.put(keys[i], slots)
            self._count(usage)

        self._map([("fill_choices", ([prompts[i] for i in group], list(parts), list(choices))) for group in groups],
                  stored)
        return rows

    def response_nll(self, prompts: Sequence[str], texts: Sequence[str], max_length: int) -> list[float]:
        size = max(1, self.config.batch_size)
        starts = list(range(0, len(prompts), size))
        values: list[Any] = [None] * len(starts)

        def kept(index: int, result) -> None:
            values[index] = result[0]

        # the caller's batches stay whole (each on one worker), so padding is as in-process
        self._map([("response_nll", (list(prompts[s : s + size]), list(texts[s : s + size]), max_length))
                   for s in starts], kept)
        return [v for chunk in values for v in chunk]

    def close(self) -> None:
        for worker in self.workers:
            self.ray.kill(worker)
        self.workers = []

    def __del__(self):  # actors end with their handles; say so explicitly for long-lived drivers
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: Ray may already be gone
            pass

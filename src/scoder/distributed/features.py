"""Gradient features on Ray: the shards of `compute_features` spread over `ray.workers` tasks,
each loading the reference model and computing the shards k with k mod n = i, exactly as the
processes of a `torchrun` launch do (scoder.bootstrap.feature_stages). Shards are fixed
batches written atomically to the stage's output folder, which every worker must see (one
machine, or a shared filesystem), so the merged features equal one process's bit for bit, and
a task that dies is retried (`ray.max_restarts`) without redoing the shards already written.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from scoder.distributed.runtime import RayConfig, connect

log = logging.getLogger(__name__)


def _feature_shards(checkpoint: str, base_model: str, examples: Sequence[dict], config, out_dir: str,
                    adam_aware: bool, shard: tuple[int, int], threads: int, folder: str) -> dict:
    import os

    import ray
    import torch

    from scoder.bootstrap.influence import compute_features, load_reference

    os.chdir(folder)  # relative paths mean what they mean in the stage (a shared filesystem)
    torch.set_num_threads(threads)
    model, tokenizer, adam = load_reference(checkpoint, base_model)
    if adam_aware and adam is None:
        raise ValueError(f"{checkpoint}: the reference checkpoint has no Adam state")
    if ray.get_gpu_ids():  # only a task given a GPU (ray.num_gpus) computes on one, as a launched process would
        model = model.to("cuda")
    return compute_features(model, tokenizer, examples, config, out_dir, adam=adam if adam_aware else None, shard=shard)


def compute_features_on_ray(settings: RayConfig, checkpoint: str | Path, base_model: str, examples: Sequence[dict],
                            config, out_dir: str | Path, adam_aware: bool) -> dict:
    """Every shard of the features, written under `out_dir` by `settings.workers` Ray tasks;
    the counts of compute_features, with computed_shards summed over the tasks."""
    ray = connect(settings)
    task = ray.remote(_feature_shards).options(num_cpus=settings.num_cpus, num_gpus=settings.num_gpus or None,
                                              max_retries=settings.max_restarts)
    shared = ray.put(list(examples))  # once in the object store, not once per task
    count = settings.workers
    log.info("gradient features on %d Ray task(s), %g CPU / %g GPU each", count, settings.num_cpus, settings.num_gpus)
    results = ray.get([task.remote(str(checkpoint), base_model, shared, config, str(out_dir), adam_aware, (i, count),
                                   settings.actor_threads, os.getcwd()) for i in range(count)])
    counts = dict(results[0])
    counts["computed_shards"] = sum(r["computed_shards"] for r in results)
    return counts

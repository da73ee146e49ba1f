"""The work of the two gradient-feature stages (`dp_features`, `influence@R`): shards of
projected LoRA gradients under the reference model, computed by one or several processes
(`--shard i/n`, or `auto` under `accelerate launch` / `torchrun`), merged by the main one."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from scoder.bootstrap.influence import (
    FeatureConfig, compute_features, features_complete, influence_scores, load_features, load_reference, save_target,
    target_direction,
)
from scoder.bootstrap.manifest import read_synthesizer
from scoder.distributed.runtime import RayConfig
from scoder.bootstrap.synthesizer import synthesis_examples

log = logging.getLogger(__name__)


@dataclass
class InfluenceConfig(FeatureConfig):
    """The `influence` params section: the feature settings plus how many D_p samples build
    the target direction and how the two feature stages' processes are started."""

    max_dp: int = 0  # 0 = all
    # "" = this process; else a command prefix the stage runner re-executes dp_features and
    # influence@R under with `--shard auto`, e.g. "torchrun --nproc_per_node 8" (the merged
    # features are the same bit for bit, so the shards' fingerprint leaves it out)
    launcher: str = ""
    # workers > 0: the shards on Ray tasks instead (scoder.distributed.features); the same bit for bit
    ray: RayConfig = field(default_factory=RayConfig)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise SystemExit(f"--shard must look like 0/4, got {text!r}") from None
    return index, count


def process_shard(text: str):
    """((index, count), distributed state or None) for --shard."""
    if text != "auto":
        return parse_shard(text), None
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    log.info("feature process %d of %d (%s)", state.process_index, state.num_processes, state.device)
    return (state.process_index, state.num_processes), state


def _features(ctx, examples: list[dict], skipped: dict, adam_aware: bool):
    """Compute this process's shards. Once every shard exists: (features, losses, ids, the
    metrics both stages report); None (and `ctx.partial`) while other shards are missing."""
    config = ctx.config
    shard, state = process_shard(ctx.options["shard"])
    reference = read_synthesizer(ctx.path("reference"))
    if config.ray.enabled and state is None and shard == (0, 1):
        from scoder.distributed.features import compute_features_on_ray

        # the shards as a launch's processes would compute them, on Ray tasks; this process merges
        counts = compute_features_on_ray(config.ray, reference["checkpoints"][-1], reference["base_model"], examples,
                                         config, ctx.path("out_dir"), adam_aware)
    else:
        model, tokenizer, adam = load_reference(reference["checkpoints"][-1], reference["base_model"])
        if adam_aware and adam is None:
            raise SystemExit(f"{ctx.path('reference')}: the reference checkpoint has no Adam state")
        if state is not None:
            model = model.to(state.device)
        counts = compute_features(model, tokenizer, examples, config, ctx.path("out_dir"),
                                  adam=adam if adam_aware else None, shard=shard)
    if state is not None:
        state.wait_for_everyone()  # every process's shards exist before the main one merges
    if not features_complete(ctx.path("out_dir"), len(examples), config):
        log.info("shard %s done; scores are written when every shard exists", ctx.options["shard"])
        ctx.partial = True
        return None
    features, losses, ids = load_features(ctx.path("out_dir"), expected=len(examples))
    log.info("%s: %d examples, %d shards (%d computed now)", ctx.name, len(examples), counts["shards"], counts["computed_shards"])
    metrics = {**counts, "examples": len(examples), "skipped": skipped, "proj_dim": config.proj_dim,
               "mean_reference_loss": round(float(np.nanmean(losses)), 6) if len(losses) else None}
    return features, losses, ids, metrics


def dp_features(ctx, require_parse_ok: bool) -> dict | None:
    from scoder.core.io import read_jsonl

    examples, skipped = synthesis_examples(read_jsonl(ctx.path("data")), require_parse_ok, ctx.config.max_dp)
    computed = _features(ctx, examples, skipped, adam_aware=False)
    if computed is None:
        return None
    features, _, _, metrics = computed
    save_target(ctx.path("target"), target_direction(features))
    return metrics


def candidate_influence(ctx) -> dict | None:
    from scoder.core.io import read_jsonl, write_jsonl

    records = read_jsonl(ctx.path("data"))
    # the scorer already chose these; learn what each would teach, raw answer if unparsed
    examples, skipped = synthesis_examples(records, require_parse_ok=False)
    computed = _features(ctx, examples, skipped, adam_aware=True)
    if computed is None:
        return None
    features, losses, ids, metrics = computed
    target = np.load(ctx.path("target"))
    # a sample whose prompt fills max_length has no response token: no loss, no gradient, no influence
    usable = ~np.isnan(losses)
    scores = dict(zip([i for i, u in zip(ids, usable) if u], influence_scores(features[usable], target).tolist()))
    loss_by_id = dict(zip(ids, losses.tolist()))
    out = []
    for record in records:
        value = scores.get(str(record.get("id")))
        out.append({**record, "influence": None if value is None else round(value, 8),
                    "reference_loss": None if value is None else round(loss_by_id[str(record["id"])], 6)})
    write_jsonl(ctx.path("scores"), out)
    if not scores:
        raise SystemExit(f"{ctx.path('data')}: no candidate has a response token within influence.max_length")
    values = np.array(list(scores.values()))
    return {**metrics, "no_response_tokens": int((~usable).sum()), "round": ctx.key,
            "influence_mean": round(float(values.mean()), 6), "influence_min": round(float(values.min()), 6),
            "influence_max": round(float(values.max()), 6)}

"""Multi-checkpoint sampling (SCoder section 3.3): N samples from each of the M checkpoints
of the previous round's synthesizer for every snippet of the round.

Snippets of round R are drawn from the pool without the distillation seeds, in a fixed
seeded order, each round taking the next `snippets` entries in round-key order, so rounds
never share a snippet and a round's draw does not depend on how it is run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Sequence

from scoder.bootstrap.distill import GenerationConfig, synthesize_samples
from scoder.bootstrap.manifest import check_engine_model
from scoder.models.finetuned import finetuned_engine
from scoder.models.llm.base import LLMConfig, SamplingParams, load_llm

log = logging.getLogger(__name__)


@dataclass
class SampleConfig(GenerationConfig):
    """The `sample` section: the synthesizer's generation settings (N samples per checkpoint)."""

    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(n=3, temperature=0.2, top_p=1.0, max_tokens=512))
    # backend settings of the synthesizer; its base model and adapters come from train@K
    engine: LLMConfig = field(default_factory=LLMConfig)
    multi_checkpoint: bool = True  # false: all M*N samples from the last checkpoint (ablation)


def sample_candidates(synthesizer: dict, snippets: Sequence[dict], config: SampleConfig, round_key: str) -> tuple[list[dict], dict]:
    """M x N candidates per snippet (or M*N from the last checkpoint), with the checkpoint
    index and sample index of each; metrics per checkpoint."""
    check_engine_model(config.engine, synthesizer, "sample")
    checkpoints = synthesizer["checkpoints"]
    n = config.sampling.n
    plan = list(enumerate(checkpoints)) if config.multi_checkpoint else [(len(checkpoints) - 1, checkpoints[-1])]
    if not config.multi_checkpoint:
        n = config.sampling.n * len(checkpoints)
    records: list[dict] = []
    per_checkpoint: dict[str, dict] = {}
    usage = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    per_checkpoint_precision: list[str] = []
    method = synthesizer.get("method", "lora")
    llm = None
    for index, adapter in plan:
        if llm is not None and method == "lora" and adapter is not None and hasattr(llm, "activate_adapter"):
            # one engine for the M checkpoints: only the adapter changes (vLLM: a new LoRARequest)
            llm.activate_adapter(adapter, f"checkpoint-{index}")
        else:
            llm = load_llm(finetuned_engine(config.engine, synthesizer["base_model"], method, adapter))
        before = dict(getattr(llm, "usage", {}))
        distill_config = replace(config, sampling=replace(config.sampling, n=n, seed=config.sampling.seed + 1000 * index))
        name = f"round{round_key}/checkpoint-{index}"
        rows, metrics = synthesize_samples(llm, snippets, distill_config, name, desc=f"sample round {round_key} ckpt {index}")
        for row in rows:
            row.update(round=round_key, checkpoint=index)
        records.extend(rows)
        per_checkpoint[str(index)] = {k: metrics[k] for k in ("samples", "parse_ok", "parse_rate", "reasons", "code_compiles", "tokens_out", "cached_samples")}
        for k in usage:
            usage[k] += getattr(llm, "usage", {}).get(k, 0) - before.get(k, 0)
        per_checkpoint_precision.append(metrics["precision"])
        if method != "lora":
            llm = None  # a full fine-tune's checkpoint is a model of its own: free this one first
    ok = sum(r["parse_ok"] for r in records)
    metrics = {
        "precision": per_checkpoint_precision[0] if len(set(per_checkpoint_precision)) == 1 else per_checkpoint_precision,
        "round": round_key,
        "snippets": len(snippets),
        "checkpoints_used": len(plan),
        "samples_per_checkpoint": n,
        "multi_checkpoint": config.multi_checkpoint,
        "generation": config.generation,
        "candidates": len(records),
        "parse_ok": ok,
        "parse_rate": round(ok / len(records), 6) if records else 0.0,
        "per_checkpoint": per_checkpoint,
        "computed_tokens": usage,
    }
    return records, metrics

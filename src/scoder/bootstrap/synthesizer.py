"""Training a synthesizer (train@K) or the influence reference model: LoRA SFT on synthesis
samples with M checkpoints, and the manifest (`synthesizer.json`) later stages read."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from scoder.training.sft import SynthesizerTrainConfig, synthesis_examples, train_sft

log = logging.getLogger(__name__)

__all__ = ["SynthesizerTrainConfig", "train_synthesizer"]


def train_synthesizer(data: Path, config: SynthesizerTrainConfig, out_dir: Path, key: str) -> dict:
    """Train on the samples in `data` into `out_dir`; returns the stage's metrics."""
    from scoder.core.io import read_jsonl
    from scoder.core.stage import is_main_process

    records = read_jsonl(data)
    examples, skipped = synthesis_examples(records, config.require_parse_ok, config.max_examples)
    if not examples:
        raise SystemExit(f"{data}: none of {len(records)} samples is usable for training ({skipped}); "
                         "set require_parse_ok: false to learn raw answers")
    log.info("training %s from %s on %d of %d samples (%s), %d checkpoints", key, config.model, len(examples),
             len(records), skipped or "none skipped", config.num_checkpoints)
    result = train_sft(examples, config, out_dir)
    manifest = {
        "key": key,
        "base_model": config.model,
        "method": config.method,
        "data": str(data),
        "examples": result["examples"],
        "checkpoints": [f"checkpoint-{c['checkpoint']}" for c in result["checkpoints"]],
        "steps": [c["step"] for c in result["checkpoints"]],
    }
    if is_main_process():
        (Path(out_dir) / "synthesizer.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log.info("%s: %d steps, train loss %.4f", key, result["steps"], result["train_loss"])
    return {"samples": len(records), "examples": result["examples"], "dropped_too_long": result["dropped_too_long"],
            "skipped": skipped, "steps": result["steps"], "train_loss": round(result["train_loss"], 6),
            "checkpoint_loss": {str(c["checkpoint"]): c["loss"] for c in result["checkpoints"]},
            "checkpoints": len(result["checkpoints"]),
            "precision": result.get("precision", "fp32"), "gradient_checkpointing": result.get("gradient_checkpointing", False)}

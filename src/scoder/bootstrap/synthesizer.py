"""Training a synthesizer (train@K) or the influence reference model: LoRA SFT on synthesis
samples with M checkpoints, and the manifest (`synthesizer.json`) later stages read."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from scoder.training.sft import TrainConfig, train_sft

log = logging.getLogger(__name__)


@dataclass
class SynthesizerTrainConfig(TrainConfig):
    """The `train` and `reference` params sections: SFT settings plus which synthesis samples
    to learn from and how the stage's processes are started."""

    # false: samples whose answer did not parse are learned as the raw answer (the tiny
    # profile's stand-in teacher never keeps the format); true: parsed pairs only (paper)
    require_parse_ok: bool = True
    max_examples: int = 0  # 0 = all
    # "" = this process; else a command prefix the stage runner re-executes the stage under,
    # e.g. "torchrun --nproc_per_node 8" (batch_size is per process: the global batch grows)
    launcher: str = ""


def synthesis_examples(records: list[dict], require_parse_ok: bool, max_examples: int = 0) -> tuple[list[dict], dict]:
    """Prompt-completion examples: prompt = the synthesis prompt with the snippet, completion
    = problem + solution in the two-section format (or the raw answer, see require_parse_ok).
    Returns the examples and the count of records skipped, by reason."""
    from collections import Counter

    from scoder.bootstrap.prompts import synthesis_prompt
    from scoder.bootstrap.synthesis_format import format_synthesis

    examples, skipped = [], Counter()
    for index, record in enumerate(records, start=1):
        if not record.get("snippet"):
            raise ValueError(f"record {index} ({record.get('id', '?')}) has no 'snippet' field: the synthesis prompt cannot be rebuilt")
        if record.get("parse_ok"):
            completion = format_synthesis(record["problem"], record["solution"])
        elif not require_parse_ok and (record.get("raw") or "").strip():
            completion = record["raw"].strip()
        else:
            skipped[f"unparsed:{record.get('reason')}" if not record.get("parse_ok") else "empty"] += 1
            continue
        examples.append({"id": record.get("id"),
                         "prompt": [{"role": "user", "content": synthesis_prompt(record["snippet"])}],
                         "completion": [{"role": "assistant", "content": completion}]})
        if max_examples and len(examples) >= max_examples:
            break
    return examples, dict(sorted(skipped.items()))


def continued_adapter(init: Path | None, config: SynthesizerTrainConfig) -> str | None:
    """The LoRA adapter a synthesizer continues: the last checkpoint of the train@K folder `init`
    (None: `init` is not a synthesizer folder, e.g. data/synthesizer/base, so a new adapter)."""
    if init is None or not (Path(init) / "synthesizer.json").is_file():
        return None
    manifest = json.loads((Path(init) / "synthesizer.json").read_text(encoding="utf-8"))
    if manifest.get("base_model") != config.model or manifest.get("method") != config.method or config.method != "lora":
        raise SystemExit(f"{init}: synthesizer {manifest.get('key')} is a {manifest.get('method')} adapter of "
                         f"{manifest.get('base_model')}; train ({config.method} on {config.model}) can continue only "
                         "a LoRA adapter of its own model: set its synthesizers item's init to base")
    return str(Path(init) / manifest["checkpoints"][-1])


def train_synthesizer(data: Path, config: SynthesizerTrainConfig, out_dir: Path, key: str,
                      init: Path | None = None) -> dict:
    """Train on the samples in `data` into `out_dir` (continuing synthesizer `init` if it is one);
    returns the stage's metrics."""
    from scoder.core.io import read_jsonl
    from scoder.core.stage import is_main_process

    records = read_jsonl(data)
    examples, skipped = synthesis_examples(records, config.require_parse_ok, config.max_examples)
    if not examples:
        raise SystemExit(f"{data}: none of {len(records)} samples is usable for training ({skipped}); "
                         "set require_parse_ok: false to learn raw answers")
    adapter = continued_adapter(init, config)
    log.info("training %s from %s on %d of %d samples (%s), %d checkpoints", key,
             f"{config.model} + {adapter}" if adapter else config.model, len(examples), len(records),
             skipped or "none skipped", config.num_checkpoints)
    result = train_sft(examples, config, out_dir, init_adapter=adapter)
    manifest = {
        "key": key,
        "base_model": config.model,
        "method": config.method,
        "data": str(data),
        "init": adapter,  # the adapter it continued (None: a new one)
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
            "checkpoints": len(result["checkpoints"]), "continued": adapter,
            "precision": result.get("precision", "fp32"), "gradient_checkpointing": result.get("gradient_checkpointing", False)}

"""The code model SCoder trains on its synthesized data (section 4.1): two-phase SFT, a
general code instruction set first, then the synthesized dataset."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from scoder.core.io import load_records
from scoder.training.sft import TrainConfig, instruction_examples, train_sft

log = logging.getLogger(__name__)


@dataclass
class PhaseConfig:
    data: str = ""  # JSON/JSONL file or hf:<dataset>; "" skips the phase (phase 1 only)
    instruction_fields: list[str] = field(default_factory=lambda: ["instruction"])
    response_fields: list[str] = field(default_factory=lambda: ["response", "output"])
    epochs: float = 1.0
    learning_rate: float = 1e-5
    max_examples: int = 0  # 0 = all


@dataclass
class ScoderTrainConfig:
    """Two-phase SFT of the code model (SCoder section 4.1): phase 1 on a general code
    instruction set (paper: evol-codealpaca-v1, 2 epochs, 5e-5), phase 2 on the synthesized
    data (3 epochs, 1e-5); linear schedule, warmup 0.05. `train` holds the SFT settings of
    both phases; each phase sets its own epochs and learning rate, one checkpoint each."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_length=1024, warmup_ratio=0.05, num_checkpoints=1))
    phase1: PhaseConfig = field(default_factory=lambda: PhaseConfig(epochs=2.0, learning_rate=5e-5))
    phase2: PhaseConfig = field(default_factory=lambda: PhaseConfig(epochs=3.0, learning_rate=1e-5))
    # "" = this process; else a command prefix the stage runner re-executes the stage under,
    # e.g. "accelerate launch --config_file configs/accelerate/ddp.yaml" (batch_size is per process)
    launcher: str = ""

    def phase_train_config(self, phase: PhaseConfig, model: str) -> TrainConfig:
        return replace(self.train, model=model, learning_rate=phase.learning_rate, epochs=phase.epochs, num_checkpoints=1)


def train_two_phase(phase_data: dict[str, list[dict]], config: ScoderTrainConfig, out_dir: str | Path) -> dict:
    """Phase 1 (skipped when it has no data), then phase 2 from its result: the same LoRA
    adapter trained on, or (full FT) the phase-1 model. Writes phase1/ and phase2/
    checkpoint folders and returns per-phase metrics plus what the final model is."""
    out_dir = Path(out_dir)
    metrics: dict = {}
    model, adapter = config.train.model, None
    for name in ("phase1", "phase2"):
        examples = phase_data.get(name) or []
        if not examples:
            if name == "phase2":
                raise ValueError("phase 2 (the synthesized data) has no examples")
            metrics[name] = {"skipped": True}
            continue
        phase = getattr(config, name)
        log.info("%s: %d examples, %s epochs at lr %g from %s%s", name, len(examples), phase.epochs, phase.learning_rate,
                 model, f" + adapter {adapter}" if adapter else "")
        result = train_sft(examples, config.phase_train_config(phase, model), out_dir / name, init_adapter=adapter)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()  # the main process has saved this phase before any rank loads it
        last, final_folder = str(out_dir / name / "checkpoint-0"), f"{name}/checkpoint-0"
        if config.train.method == "full":
            model = last
        else:
            adapter = last
        metrics[name] = {"examples": result["examples"], "dropped_too_long": result["dropped_too_long"],
                         "steps": result["steps"], "train_loss": round(result["train_loss"], 6),
                         "epochs": phase.epochs, "learning_rate": phase.learning_rate, "precision": result["precision"]}
    # paths relative to out_dir (the stage writes into a scratch folder renamed at the end)
    final = {"base_model": config.train.model, "method": config.train.method,
             "model": final_folder if config.train.method == "full" else config.train.model,
             "adapter": final_folder if config.train.method == "lora" else None}
    return {"phases": metrics, "final": final}


def train_code_model(data: Path, config: ScoderTrainConfig, out_dir: Path) -> dict:
    """Phase 1 on `config.phase1.data` (skipped when empty), phase 2 on the synthesized `data`;
    writes out_dir/model.json (what the final model is) and returns the stage's metrics."""
    from scoder.core.io import read_records
    from scoder.core.stage import is_main_process

    phases = {"phase2": instruction_examples(read_records(data), config.phase2.instruction_fields,
                                             config.phase2.response_fields, str(data), config.phase2.max_examples)}
    if config.phase1.data:
        phases["phase1"] = instruction_examples(load_records(config.phase1.data), config.phase1.instruction_fields,
                                                config.phase1.response_fields, config.phase1.data, config.phase1.max_examples)
    log.info("fine-tuning %s (%s): phase 1 %s, phase 2 %d synthesized examples", config.train.model, config.train.method,
             f"{len(phases['phase1'])} examples from {config.phase1.data}" if "phase1" in phases else "skipped (no data)",
             len(phases["phase2"]))
    result = train_two_phase(phases, config, out_dir)
    if is_main_process():
        (Path(out_dir) / "model.json").write_text(json.dumps(result["final"], indent=2) + "\n", encoding="utf-8")
    log.info("fine-tuned model: %s", result["final"])
    trained = [p["precision"] for p in result["phases"].values() if "precision" in p]
    return {"model": config.train.model, "method": config.train.method, "precision": trained[-1],
            "gradient_checkpointing": config.train.gradient_checkpointing, **result["phases"]}

"""The code model SCoder trains on its synthesized data (section 4.1): two-phase SFT, a
general code instruction set first, then the synthesized dataset."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from scoder.training.sft import ScoderTrainConfig, instruction_examples, load_instruction_records, train_two_phase

log = logging.getLogger(__name__)

__all__ = ["ScoderTrainConfig", "train_code_model"]


def train_code_model(data: Path, config: ScoderTrainConfig, out_dir: Path) -> dict:
    """Phase 1 on `config.phase1.data` (skipped when empty), phase 2 on the synthesized `data`;
    writes out_dir/model.json (what the final model is) and returns the stage's metrics."""
    from scoder.core.io import read_records
    from scoder.core.stage import is_main_process

    phases = {"phase2": instruction_examples(read_records(data), config.phase2.instruction_fields,
                                             config.phase2.response_fields, str(data), config.phase2.max_examples)}
    if config.phase1.data:
        phases["phase1"] = instruction_examples(load_instruction_records(config.phase1.data), config.phase1.instruction_fields,
                                                config.phase1.response_fields, config.phase1.data, config.phase1.max_examples)
    log.info("fine-tuning %s (%s): phase 1 %s, phase 2 %d synthesized examples", config.train.model, config.train.method,
             f"{len(phases['phase1'])} examples from {config.phase1.data}" if "phase1" in phases else "skipped (no data)",
             len(phases["phase2"]))
    result = train_two_phase(phases, config, out_dir)
    if is_main_process():
        (Path(out_dir) / "model.json").write_text(json.dumps(result["final"], indent=2) + "\n", encoding="utf-8")
    log.info("fine-tuned model: %s", result["final"])
    return {"model": config.train.model, "method": config.train.method, **result["phases"]}

"""DVC stage `scoder_train`: two-phase SFT of the code model, phase 1 on a general code
instruction set (`scoder_train.phase1.data`, may be empty), phase 2 on the synthesized
dataset. Writes the final model's manifest (`model.json`: base model, adapter or model
folder) that `evaluate` loads."""

from __future__ import annotations

import json
import logging

from scoder.core.stage import is_main_process, load_section, main_process_dir, quiet_threads, setup_logging, stage_parser

quiet_threads()

from scoder.core.io import read_records, write_json  # noqa: E402
from scoder.core.params import from_dict  # noqa: E402
from scoder.core.tracking import stage_run  # noqa: E402
from scoder.training.sft import ScoderTrainConfig, instruction_examples, load_instruction_records, train_two_phase  # noqa: E402

log = logging.getLogger("stage.scoder_train")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--data", required=True, help="the synthesized dataset (phase 2)")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args()
    setup_logging()
    params, section = load_section(args.params, "scoder_train")
    config = from_dict(ScoderTrainConfig, section, "scoder_train")
    with stage_run("scoder_train", {"scoder_train": section}, args.params) as run:
        phases = {"phase2": instruction_examples(read_records(args.data), config.phase2.instruction_fields,
                                                 config.phase2.response_fields, args.data, config.phase2.max_examples)}
        if config.phase1.data:
            phases["phase1"] = instruction_examples(load_instruction_records(config.phase1.data), config.phase1.instruction_fields,
                                                    config.phase1.response_fields, config.phase1.data, config.phase1.max_examples)
        log.info("fine-tuning %s (%s): phase 1 %s, phase 2 %d synthesized examples", config.model, config.method,
                 f"{len(phases['phase1'])} examples from {config.phase1.data}" if "phase1" in phases else "skipped (no data)",
                 len(phases["phase2"]))
        with main_process_dir(args.out_dir) as partial:
            result = train_two_phase(phases, config, partial)
            (partial / "model.json").write_text(json.dumps(result["final"], indent=2) + "\n", encoding="utf-8")
        if not is_main_process():  # a distributed launch: the main process writes the results
            return
        metrics = {"model": config.model, "method": config.method, **result["phases"]}
        write_json(args.metrics, metrics)
        run.log_metrics(metrics)
        run.log_artifact(args.metrics)
        log.info("fine-tuned model in %s (%s)", args.out_dir, result["final"])


if __name__ == "__main__":
    main()

"""DVC stages `train@K` and `reference`: fine-tune a model with LoRA on synthesis samples,
saving M checkpoints with their Adam state. train@K is synthesizer K (K=0: on the teacher's
D_p, the "enhanced synthesizer"; K>=1: on round K's selected samples); `reference` is the
influence reference model trained on D_p (params section `reference`)."""

from __future__ import annotations

import json
import logging

from scoder.core.stage import is_main_process, load_section, main_process_dir, quiet_threads, setup_logging, stage_parser

quiet_threads()

from scoder.core.io import read_jsonl, write_json  # noqa: E402
from scoder.core.params import from_dict  # noqa: E402
from scoder.core.tracking import stage_run  # noqa: E402
from scoder.training.sft import SynthesizerTrainConfig, synthesis_examples, train_sft  # noqa: E402

log = logging.getLogger("stage.train")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--key", required=True, help="the synthesizer's key in params 'synthesizers' (or 'reference')")
    parser.add_argument("--section", default="train", help="params section with the training settings (train | reference)")
    parser.add_argument("--data", required=True, help="synthesis samples (JSONL with snippet, problem, solution)")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args()
    setup_logging()
    params, section = load_section(args.params, args.section)
    config = from_dict(SynthesizerTrainConfig, section, args.section)
    stage_name = "reference" if args.section == "reference" else f"train@{args.key}"
    with stage_run(stage_name, {args.section: section, "seed": params.get("seed")}, args.params) as run:
        records = read_jsonl(args.data)
        examples, skipped = synthesis_examples(records, config.require_parse_ok, config.max_examples)
        if not examples:
            raise SystemExit(f"{args.data}: none of {len(records)} samples is usable for training ({skipped}); "
                             "set train.require_parse_ok: false to learn raw answers")
        log.info("training synthesizer %s from %s on %d of %d samples (%s), %d checkpoints",
                 args.key, config.model, len(examples), len(records), skipped or "none skipped", config.num_checkpoints)
        with main_process_dir(args.out_dir) as partial:
            result = train_sft(examples, config, partial)
            manifest = {
                "key": args.key,
                "base_model": config.model,
                "method": config.method,
                "data": args.data,
                "examples": result["examples"],
                "checkpoints": [f"checkpoint-{c['checkpoint']}" for c in result["checkpoints"]],
                "steps": [c["step"] for c in result["checkpoints"]],
            }
            (partial / "synthesizer.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if not is_main_process():  # a distributed launch: the main process writes the results
            return
        metrics = {"samples": len(records), "examples": result["examples"], "dropped_too_long": result["dropped_too_long"],
                   "skipped": skipped, "steps": result["steps"],
                   "train_loss": round(result["train_loss"], 6),
                   "checkpoint_loss": {str(c["checkpoint"]): c["loss"] for c in result["checkpoints"]},
                   "checkpoints": len(result["checkpoints"])}
        write_json(args.metrics, metrics)
        run.log_metrics(metrics)
        run.log_artifact(args.metrics)
        log.info("synthesizer %s: %d steps, train loss %.4f, checkpoints in %s", args.key, result["steps"], result["train_loss"], args.out_dir)


if __name__ == "__main__":
    main()

"""DVC stage `distill`: the teacher answers the synthesis prompt for every seed snippet (D_p)."""

from __future__ import annotations

import logging

from scoder.core.stage import load_section, quiet_threads, setup_logging, stage_parser

quiet_threads()

from scoder.core.cost import ledger_entry, write_ledger_entry  # noqa: E402
from scoder.bootstrap.distill import DistillConfig, synthesize_samples  # noqa: E402
from scoder.core.io import read_jsonl, write_json, write_jsonl  # noqa: E402
from scoder.models.llm import load_llm  # noqa: E402
from scoder.core.params import from_dict  # noqa: E402
from scoder.core.tracking import stage_run  # noqa: E402

log = logging.getLogger("stage.distill")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--seeds", default="data/categorize/seeds.jsonl")
    parser.add_argument("--out", default="data/distill/samples.jsonl")
    parser.add_argument("--metrics", default="metrics/distill.json")
    parser.add_argument("--ledger", default="metrics/cost/distill.json")
    args = parser.parse_args()
    setup_logging()
    params, section = load_section(args.params, "distill")
    config = from_dict(DistillConfig, section, "distill")

    with stage_run("distill", {"distill": section}, args.params) as run:
        seeds = read_jsonl(args.seeds)
        log.info("teacher %s (%s) answers the synthesis prompt for %d seed snippets", config.teacher.model, config.teacher.backend, len(seeds))
        llm = load_llm(config.teacher)
        records, metrics = synthesize_samples(llm, seeds, config, config.teacher.model, desc="distill (teacher)")
        write_jsonl(args.out, records)
        write_json(args.metrics, metrics)
        write_ledger_entry(args.ledger, ledger_entry("distill", "teacher", config.teacher.model, config.teacher.backend, metrics))
        run.log_metrics(metrics)
        run.log_artifact(args.metrics)
        log.info(
            "%d samples, parse rate %.1f%% (%s), %d tokens in / %d out, est. cost $%.4f",
            metrics["samples"], 100 * metrics["parse_rate"], metrics["reasons"], metrics["tokens_in"], metrics["tokens_out"], metrics["cost_usd"],
        )


if __name__ == "__main__":
    main()

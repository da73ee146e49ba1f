"""Optional DVC stage `distill_scorer`: train a scorer on the teacher's Figure-7 judgements
(SCoder appendix C). Not in the default dvc.yaml (the tiny profile's stand-in teacher cannot
write a parsable judgement); add it with the `dvc stage add` line in the README and point
`score.scorer.adapter` at its output."""

from __future__ import annotations

import json
import logging

from scoder.core.stage import load_section, quiet_threads, setup_logging, stage_parser

quiet_threads()

from scoder.core.io import atomic_dir, read_jsonl, write_json  # noqa: E402
from scoder.core.params import from_dict  # noqa: E402
from scoder.bootstrap.scorer_distill import ScorerDistillConfig, distill_scorer  # noqa: E402
from scoder.core.tracking import stage_run  # noqa: E402

log = logging.getLogger("stage.distill_scorer")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--data", required=True, help="instruction pairs to judge (records with problem, solution, parse_ok)")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args()
    setup_logging()
    _, section = load_section(args.params, "scorer_distill")
    config = from_dict(ScorerDistillConfig, section, "scorer_distill")
    with stage_run("distill_scorer", {"scorer_distill": section}, args.params) as run:
        records = read_jsonl(args.data)
        with atomic_dir(args.out_dir) as partial:
            metrics = distill_scorer(records, config, partial)
            (partial / "scorer.json").write_text(json.dumps({"base_model": config.train.model, "adapter": "checkpoint-0"}, indent=2) + "\n")
        write_json(args.metrics, metrics)
        run.log_metrics(metrics)
        log.info("scorer trained on %d judgements (teacher parse rate %.1f%%); set score.scorer.model: %s and "
                 "score.scorer.adapter: %s", metrics["examples"], 100 * metrics["score_parse_rate"], config.train.model, f"{args.out_dir}/checkpoint-0")


if __name__ == "__main__":
    main()

"""DVC stage `score@R`: multi-aspect scoring (eq. 1) and execution check of round R's
candidates; keeps the best candidate per snippet."""

from __future__ import annotations

import logging

from scoder.core.stage import load_section, quiet_threads, setup_logging, stage_parser

quiet_threads()

from scoder.core.io import read_jsonl, write_json, write_jsonl  # noqa: E402
from scoder.bootstrap.scoring import ScoreConfig, score_candidates  # noqa: E402
from scoder.models.llm import load_llm  # noqa: E402
from scoder.core.params import from_dict  # noqa: E402
from scoder.core.tracking import stage_run  # noqa: E402

log = logging.getLogger("stage.score")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--round", required=True)
    parser.add_argument("--candidates", required=True)
    parser.add_argument("--out-scored", required=True)
    parser.add_argument("--out-best", required=True)
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args()
    setup_logging()
    params, section = load_section(args.params, "score")
    config = from_dict(ScoreConfig, section, "score")
    with stage_run(f"score@{args.round}", {"score": section}, args.params) as run:
        candidates = read_jsonl(args.candidates)
        log.info("scoring %d candidates of round %s with %s (%s, mode %s, aggregate %s, execution %s)", len(candidates), args.round,
                 config.scorer.model, config.scorer.backend, config.mode, config.aggregate, config.execution)
        llm = load_llm(config.scorer)
        scored, best, metrics = score_candidates(llm, candidates, config)
        write_jsonl(args.out_scored, scored)
        write_jsonl(args.out_best, best)
        metrics["round"] = args.round
        write_json(args.metrics, metrics)
        run.log_metrics(metrics)
        run.log_artifact(args.metrics)
        if not best:
            log.warning("no candidate of round %s was kept (score failures %s, execution %s): the round selects nothing",
                        args.round, metrics["score_failures"], metrics.get("exec_reasons", "off"))
        log.info("score parse rate %.1f%%, exec rate %s, best kept for %d of %d snippets", 100 * metrics["score_parse_rate"],
                 metrics.get("exec_rate", "n/a"), metrics["best"], metrics["snippets"])


if __name__ == "__main__":
    main()

"""DVC stage `sample@R`: N samples per snippet from each of the M checkpoints of the
synthesizer named by `rounds.R.previous`, over the round's pool snippets."""

from __future__ import annotations

import logging

from scoder.core.stage import load_section, quiet_threads, setup_logging, stage_parser

quiet_threads()

from scoder.core.io import read_jsonl, write_json, write_jsonl  # noqa: E402
from scoder.core.params import from_dict  # noqa: E402
from scoder.bootstrap.sample import SampleConfig, read_synthesizer, round_snippets, round_specs, sample_candidates  # noqa: E402
from scoder.core.tracking import stage_run  # noqa: E402

log = logging.getLogger("stage.sample")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--round", required=True, help="the round's key in params 'rounds'")
    parser.add_argument("--synthesizer", required=True, help="folder written by train@K")
    parser.add_argument("--pool", default="data/pool/snippets.jsonl")
    parser.add_argument("--exclude", default="data/categorize/seeds.jsonl", help="snippets already used (the distillation seeds)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args()
    setup_logging()
    params, section = load_section(args.params, "sample")
    config = from_dict(SampleConfig, section, "sample")
    rounds = round_specs(params.get("rounds"))
    with stage_run(f"sample@{args.round}", {"sample": section, "rounds": params.get("rounds"), "seed": params.get("seed")}, args.params) as run:
        exclude = {s["id"] for s in read_jsonl(args.exclude)}
        snippets = round_snippets(read_jsonl(args.pool), exclude, rounds, args.round, int(params.get("seed", 0)))
        synthesizer = read_synthesizer(args.synthesizer)
        log.info("round %s: %d snippets x %d checkpoints x %d samples from synthesizer %s (%s)", args.round, len(snippets),
                 len(synthesizer["checkpoints"]) if config.multi_checkpoint else 1, config.sampling.n, rounds[args.round].previous,
                 "multi-checkpoint" if config.multi_checkpoint else "last checkpoint only")
        records, metrics = sample_candidates(synthesizer, snippets, config, args.round)
        write_jsonl(args.out, records)
        write_json(args.metrics, metrics)
        run.log_metrics(metrics)
        run.log_artifact(args.metrics)
        log.info("%d candidates, parse rate %.1f%%", metrics["candidates"], 100 * metrics["parse_rate"])


if __name__ == "__main__":
    main()

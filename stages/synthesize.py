"""DVC stage `synthesize`: the last round's synthesizer writes the final instruction dataset
over `synthesize.size` fresh pool snippets (parsed, and execution-checked when enabled). The
dataset is JSON lines with `instruction` and `response`: `datasets.load_dataset("json",
data_files=...)` reads it."""

from __future__ import annotations

import logging

from scoder.core.stage import load_section, quiet_threads, setup_logging, stage_parser

quiet_threads()

from scoder.core.io import read_jsonl, write_json, write_jsonl  # noqa: E402
from scoder.core.params import from_dict  # noqa: E402
from scoder.bootstrap.sample import read_synthesizer, round_specs  # noqa: E402
from scoder.bootstrap.final_dataset import SynthesizeConfig, final_snippets, synthesize_dataset  # noqa: E402
from scoder.core.tracking import stage_run  # noqa: E402

log = logging.getLogger("stage.synthesize")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--synthesizer", required=True, help="folder written by train@K")
    parser.add_argument("--pool", default="data/pool/snippets.jsonl")
    parser.add_argument("--exclude", default="data/categorize/seeds.jsonl", help="snippets already used (the distillation seeds)")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args()
    setup_logging()
    params, section = load_section(args.params, "synthesize")
    config = from_dict(SynthesizeConfig, section, "synthesize")
    rounds = round_specs(params.get("rounds"))
    with stage_run("synthesize", {"synthesize": section, "rounds": params.get("rounds"), "seed": params.get("seed")}, args.params) as run:
        exclude = {s["id"] for s in read_jsonl(args.exclude)}
        snippets = final_snippets(read_jsonl(args.pool), exclude, rounds, config.size, int(params.get("seed", 0)))
        synthesizer = read_synthesizer(args.synthesizer)
        log.info("final synthesis: %d snippets x %d samples from synthesizer %s (%s), execution %s", len(snippets),
                 config.sampling.n, synthesizer["key"], synthesizer["checkpoints"][-1], config.execution)
        rows, samples, metrics = synthesize_dataset(synthesizer, snippets, config)
        if not rows:
            raise SystemExit(f"the final dataset is empty: {metrics['samples']} samples, rejected {metrics['rejected']}")
        write_jsonl(f"{args.out_dir}/dataset.jsonl", rows)
        write_jsonl(f"{args.out_dir}/samples.jsonl", samples)
        write_json(args.metrics, metrics)
        run.log_metrics(metrics)
        run.log_artifact(args.metrics)
        log.info("dataset: %d of %d samples (parse rate %.1f%%; rejected %s) in %s/dataset.jsonl", len(rows), len(samples),
                 100 * metrics["parse_rate"], metrics["rejected"] or "none", args.out_dir)


if __name__ == "__main__":
    main()

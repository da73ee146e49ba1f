"""DVC stage `dataset_metrics`: diversity (question MTLD, question and code spread) and
complexity (Halstead vocabulary, length, difficulty; average cyclomatic complexity) of each
instruction dataset named in `dataset_metrics.datasets` (seed 002 Tables 1 and 2), as JSON
metrics and a markdown table."""

from __future__ import annotations

import logging

from scoder.core.stage import load_section, quiet_threads, setup_logging, stage_parser

quiet_threads()

from scoder.models.embed import embed_texts, load_embedder  # noqa: E402
from scoder.core.io import read_records, write_json, write_text  # noqa: E402
from scoder.evaluation.dataset_metrics import DatasetMetricsConfig, dataset_metrics, markdown_table  # noqa: E402
from scoder.core.params import from_dict  # noqa: E402
from scoder.core.tracking import stage_run  # noqa: E402

log = logging.getLogger("stage.dataset_metrics")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--table", required=True, help="markdown table to write")
    args = parser.parse_args()
    setup_logging()
    params, section = load_section(args.params, "dataset_metrics")
    config = from_dict(DatasetMetricsConfig, section, "dataset_metrics")
    embedder = load_embedder(config.model)
    embed = lambda texts: embed_texts(embedder, texts, config.prompt, config.batch_size, progress=True)  # noqa: E731
    with stage_run("dataset_metrics", {"dataset_metrics": section}, args.params) as run:
        results = {}
        for name, spec in config.datasets.items():
            records = read_records(spec.path)
            log.info("measuring %s: %d records from %s", name, len(records), spec.path)
            results[name] = dataset_metrics(records, spec, config, embed)
            log.info("%s: %s", name, results[name])
        write_json(args.metrics, {**results, "meta": {"model": config.model, "sample_size": config.sample_size,
                                                      "mtld_threshold": config.mtld_threshold, "seed": config.seed}})
        write_text(args.table, markdown_table(results))
        run.log_metrics(results)
        run.log_artifact(args.metrics)
        run.log_artifact(args.table)


if __name__ == "__main__":
    main()

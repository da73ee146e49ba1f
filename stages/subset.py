"""DVC stage `subset`: choose `subset.size` records of an instruction dataset with the
distribution-consistent, diversity-aware parametric model of seed 003 or a baseline."""

from __future__ import annotations

import logging

from scoder.core.stage import load_section, quiet_threads, setup_logging, stage_parser

quiet_threads()

from scoder.core.io import read_records, write_json, write_jsonl  # noqa: E402
from scoder.core.params import from_dict  # noqa: E402
from scoder.subset.selection import SelectConfig, select_records  # noqa: E402
from scoder.core.tracking import stage_run  # noqa: E402

log = logging.getLogger("stage.subset")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", default="data/subset/selected.jsonl")
    parser.add_argument("--metrics", default="metrics/subset.json")
    args = parser.parse_args()
    setup_logging()
    params, section = load_section(args.params, "subset")
    config = from_dict(SelectConfig, section, "subset")
    with stage_run("subset", {"subset": section}, args.params) as run:
        records = read_records(config.input)
        log.info("selecting %d of %d records from %s with %s", config.size, len(records), config.input, config.method)
        selected, metrics = select_records(records, config)
        write_jsonl(args.out, selected)
        write_json(args.metrics, metrics)
        run.log_metrics(metrics)
        run.log_artifact(args.metrics)
        log.info("coverage %.4f (random %.4f), mean pairwise cosine %.4f, %.1fs",
                 metrics["coverage"], metrics["random_coverage"], metrics["diversity_mean_cosine"], metrics["seconds"])


if __name__ == "__main__":
    main()

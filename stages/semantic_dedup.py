"""DVC stage `semantic_dedup`: keep one of every group of instruction records whose embedding
cosine exceeds `semantic_dedup.threshold` (seed 002: 0.95), greedy in file order."""

from __future__ import annotations

import logging

from scoder.core.stage import load_section, quiet_threads, setup_logging, stage_parser

quiet_threads()

from scoder.core.io import atomic_dir, read_records, write_json, write_jsonl  # noqa: E402
from scoder.core.params import from_dict  # noqa: E402
from scoder.kspecialist.specialists import DedupConfig, dedup_records  # noqa: E402
from scoder.core.tracking import stage_run  # noqa: E402

log = logging.getLogger("stage.semantic_dedup")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--data", required=True, help="instruction dataset (JSON or JSONL)")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args()
    setup_logging()
    params, section = load_section(args.params, "semantic_dedup")
    config = from_dict(DedupConfig, section, "semantic_dedup")
    with stage_run("semantic_dedup", {"semantic_dedup": section}, args.params) as run:
        records = read_records(args.data)
        log.info("deduplicating %d records of %s at cosine > %s (%s)", len(records), args.data, config.threshold, config.model)
        kept, dropped = dedup_records(records, config, args.data)
        with atomic_dir(args.out_dir) as partial:
            write_jsonl(partial / "dataset.jsonl", kept)
            write_jsonl(partial / "duplicates.jsonl", dropped)
        metrics = {"records": len(records), "kept": len(kept), "dropped": len(dropped), "threshold": config.threshold,
                   "model": config.model}
        write_json(args.metrics, metrics)
        run.log_metrics(metrics)
        log.info("kept %d of %d records (%d near-duplicates dropped)", len(kept), len(records), len(dropped))


if __name__ == "__main__":
    main()

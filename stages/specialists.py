"""DVC stage `specialists`: K-means on the question embeddings of the (deduplicated) dataset,
one LoRA adapter per cluster trained on its slice, the fitted centroids saved with them
(seed 002 section 4)."""

from __future__ import annotations

import logging

from scoder.core.stage import load_section, quiet_threads, setup_logging, stage_parser

quiet_threads()

from scoder.core.io import atomic_dir, read_records, write_json  # noqa: E402
from scoder.core.params import from_dict  # noqa: E402
from scoder.kspecialist.specialists import SpecialistsConfig, train_specialists  # noqa: E402
from scoder.core.tracking import stage_run  # noqa: E402

log = logging.getLogger("stage.specialists")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--data", required=True, help="instruction dataset (JSON or JSONL)")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args()
    setup_logging()
    params, section = load_section(args.params, "specialists")
    config = from_dict(SpecialistsConfig, section, "specialists")
    with stage_run("specialists", {"specialists": section}, args.params) as run:
        records = read_records(args.data)
        log.info("K=%d specialists of %s on %d records of %s", config.k, config.model, len(records), args.data)
        with atomic_dir(args.out_dir) as partial:
            manifest = train_specialists(records, config, partial, args.data)
        metrics = {"k": config.k, "records": len(records),
                   "cluster_sizes": [c["size"] for c in manifest["clusters"]],
                   "clusters": {str(c["cluster"]): {"size": c["size"], "steps": c["steps"], "train_loss": c["train_loss"]}
                                for c in manifest["clusters"]}}
        write_json(args.metrics, metrics)
        run.log_metrics({"k": config.k, "records": len(records), "clusters": metrics["clusters"]})
        run.log_artifact(args.metrics)
        log.info("cluster sizes %s", metrics["cluster_sizes"])


if __name__ == "__main__":
    main()

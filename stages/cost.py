"""DVC stage `cost`: sum the per-stage cost ledger entries into metrics/cost.json."""

from __future__ import annotations

import json
import logging

from scoder.core.cost import summarize
from scoder.core.io import write_json
from scoder.core.stage import setup_logging, stage_parser
from scoder.core.tracking import stage_run

log = logging.getLogger("stage.cost")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("entries", nargs="+", help="ledger entry JSON files (metrics/cost/*.json)")
    parser.add_argument("--out", default="metrics/cost.json")
    args = parser.parse_args()
    setup_logging()
    entries = []
    for path in args.entries:
        with open(path, encoding="utf-8") as handle:
            entries.append(json.load(handle))
    summary = summarize(entries)
    with stage_run("cost", {"entries": args.entries}, args.params) as run:
        write_json(args.out, summary)
        run.log_metrics({k: v for k, v in summary.items() if k not in ("stages",)})
        run.log_artifact(args.out)
    log.info("total estimated model cost $%.4f over %d stage(s)", summary["total_cost_usd"], len(entries))


if __name__ == "__main__":
    main()

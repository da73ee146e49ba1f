"""DVC stage `select@R`: keep `rounds.R.select` of round R's best candidates by influence
(or by the ablation in `select.method`); they train synthesizer R."""

from __future__ import annotations

import logging

from scoder.core.stage import load_section, setup_logging, stage_parser
from scoder.core.io import read_jsonl, write_json, write_jsonl
from scoder.core.params import from_dict
from scoder.bootstrap.influence_select import RoundSelectConfig, select_round
from scoder.bootstrap.sample import round_specs
from scoder.core.tracking import stage_run

log = logging.getLogger("stage.select")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--round", required=True)
    parser.add_argument("--influence", required=True, help="round R's best candidates with their influence")
    parser.add_argument("--out", required=True)
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args()
    setup_logging()
    params, section = load_section(args.params, "select")
    config = from_dict(RoundSelectConfig, section, "select")
    size = round_specs(params.get("rounds"))[args.round].select
    with stage_run(f"select@{args.round}", {"select": section, "rounds": params.get("rounds")}, args.params) as run:
        records = read_jsonl(args.influence)
        selected, metrics = select_round(records, size, config)
        metrics["round"] = args.round
        write_jsonl(args.out, selected)
        write_json(args.metrics, metrics)
        run.log_metrics(metrics)
        log.info("round %s: selected %d of %d candidates by %s (influence of the selected: %s)", args.round, metrics["selected"],
                 metrics["available"], config.method, metrics["influence_selected"])


if __name__ == "__main__":
    main()

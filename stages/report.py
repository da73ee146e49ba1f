"""DVC stage `report`: one self-contained HTML page (figures embedded) with the pipeline's key
tables, score and influence distributions by round, and pass@1 / NLL per model; also the CSV
files behind `dvc plots show`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from scoder.core.io import atomic_path
from scoder.evaluation.report import evaluation_rows, render_html, round_values, write_plot_data
from scoder.core.stage import setup_logging, stage_parser

log = logging.getLogger("stage.report")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--metrics-dir", default="metrics")
    parser.add_argument("--rounds-dir", default="data/rounds")
    parser.add_argument("--plots-dir", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    setup_logging()
    scores = round_values(args.rounds_dir, "scored.jsonl", "score")
    influence = round_values(args.rounds_dir, "influence.jsonl", "influence")
    evaluate_file = Path(args.metrics_dir) / "evaluate.json"
    evaluate = json.loads(evaluate_file.read_text(encoding="utf-8")) if evaluate_file.exists() else None
    write_plot_data(args.plots_dir, scores, influence, evaluation_rows(evaluate))
    page = render_html(args.metrics_dir, scores, influence, evaluate)
    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    log.info("report written: %s (open it in a browser)", Path(args.out).resolve())


if __name__ == "__main__":
    main()

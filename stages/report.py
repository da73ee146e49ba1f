"""DVC stage `report`: the HTML report with its figures, the plot data `dvc plots show` draws,
and the summary metrics file that `dvc metrics show` prints."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "report",
    "reports/report.html, plots/ and metrics/summary.json (the figures to compare across experiments)",
    paper="evaluation",
    inputs=(
        Input("rounds", "data/rounds"),
        Input("pool", "metrics/pool.json"),
        Input("categorize", "metrics/categorize.json"),
        Input("distill", "metrics/distill.json"),
        Input("train", "metrics/train"),
        Input("sample", "metrics/sample"),
        Input("score", "metrics/score"),
        Input("select", "metrics/select"),
        Input("synthesize", "metrics/synthesize.json"),
        Input("scoder_train", "metrics/scoder_train.json"),
        Input("evaluate", "metrics/evaluate.json"),
        Input("specialist_evaluate", "metrics/specialist_evaluate.json"),
        Input("subset", "metrics/subset.json"),
        Input("cost", "metrics/cost.json"),
    ),
    outputs=(Output("out", "reports/report.html"), Output("plots_dir", "plots", folder=True, cache=False)),
    metrics="metrics/summary.json",
    dvc_metrics=True,
)


def work(ctx):
    import json
    from pathlib import Path

    from scoder.core.io import atomic_path
    from scoder.evaluation.report import evaluation_rows, render_html, round_values, write_plot_data
    from scoder.evaluation.summary import accepted_cost, summary

    metrics_dir = ctx.metrics_dir("pool", others=("rounds",))  # the report reads its per-stage files from there
    scores = round_values(ctx.path("rounds"), "scored.jsonl", "score")
    influence = round_values(ctx.path("rounds"), "influence.jsonl", "influence")
    evaluate = json.loads(ctx.path("evaluate").read_text(encoding="utf-8"))
    write_plot_data(ctx.path("plots_dir"), scores, influence, evaluation_rows(evaluate), accepted_cost(metrics_dir))
    with atomic_path(ctx.path("out")) as tmp:
        Path(tmp).write_text(render_html(metrics_dir, scores, influence, evaluate), encoding="utf-8")
    ctx.run.log_artifact(ctx.path("out"))
    ctx.log.info("report written: %s (open it in a browser)", Path(ctx.path("out")).resolve())
    return summary(metrics_dir)


if __name__ == "__main__":
    run_stage(STAGE, work)

"""Validity stage `report`: the results table (signals' AUCs with intervals, downstream NLL of
every arm with bootstrap intervals over tasks and paired differences to the base model and to
random) as markdown and JSON, and a plot on axes that start at zero."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "report",
    "results table (AUCs, downstream NLL with intervals, K-Specialist) and plot",
    params=("report", "arms", "kspecialist.ks"),
    inputs=(Input("auc", "metrics/auc.json"), Input("downstream", "data/downstream"),
            Input("finetune_metrics", "metrics/finetune"), Input("kspecialist", "data/kspecialist"),
            Input("kspecialist_metrics", "metrics/kspecialist")),
    outputs=(Output("markdown", "results.md", cache=False), Output("plot", "results.png", cache=False)),
    dvc_metrics=True,
    paper="validity",
)


def work(ctx):
    from scoder.validity.report import write_report

    return write_report(ctx.path("auc"), ctx.path("downstream"), ctx.path("finetune_metrics"), list(ctx.param("arms")),
                        ctx.path("kspecialist"), ctx.path("kspecialist_metrics"), list(ctx.param("kspecialist.ks")),
                        ctx.path("markdown"), ctx.path("plot"), int(ctx.param("report.bootstrap")),
                        int(ctx.param("report.seed")))


if __name__ == "__main__":
    run_stage(STAGE, work)

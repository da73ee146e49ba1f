"""Validity stage `pass_at_1_report` (on demand: `make validity-pass1`): the pass@1 table of the models
in `pass_at_1.table` with bootstrap intervals and paired differences to the first (the base
model), as markdown (results-pass1.md) and JSON."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "pass_at_1_report",
    "pass@1 table of every pass_at_1 model with intervals and paired differences to the base model",
    params=("pass_at_1.table", "report"),
    inputs=(Input("pass_metrics", "metrics/pass_at_1"), Input("pass_data", "data/pass_at_1")),
    outputs=(Output("markdown", "results-pass1.md", cache=False),),
    dvc_metrics=True,
    paper="validity",
)


def work(ctx):
    from scoder.validity.report import write_pass_at_1_report

    return write_pass_at_1_report(ctx.path("pass_metrics"), ctx.path("pass_data"), list(ctx.param("pass_at_1.table")),
                                  ctx.path("markdown"), int(ctx.param("report.bootstrap")), int(ctx.param("report.seed")))


if __name__ == "__main__":
    run_stage(STAGE, work)

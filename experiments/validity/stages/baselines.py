"""Validity stage `baselines`: seed 003's PPL and IFD under the base model, a seeded random
score, and seed 003's parametric selection of k candidates (its selection as a 0/1 signal)."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "baselines",
    "PPL / IFD under the base model, random, and the parametric selector's k",
    config="scoder.validity.experiment:BaselinesConfig",
    params=("select.k",),
    inputs=(Input("candidates_file", "data/candidates.jsonl"),),
    outputs=(Output("signals", "data/signals/baselines.jsonl"),),
    paper="validity",
)


def work(ctx):
    from scoder.core.io import read_jsonl, write_jsonl
    from scoder.validity.experiment import baseline_rows

    candidates = read_jsonl(ctx.path("candidates_file"))
    rows, metrics = baseline_rows(candidates, ctx.config, int(ctx.param("select.k")))
    write_jsonl(ctx.path("signals"), rows)
    return metrics


if __name__ == "__main__":
    run_stage(STAGE, work)

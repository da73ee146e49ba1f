"""DVC stage `select@R`: the `rounds.R.select` best candidates of round R by influence (or a
baseline signal), which synthesizer R learns from (SCoder section 3.4)."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "select",
    "round R's top-k candidates by influence: what synthesizer R learns from",
    foreach="rounds",
    config="scoder.bootstrap.influence_select:RoundSelectConfig",
    params=("rounds.${key}",),
    inputs=(
        Input("influence", "data/rounds/${key}/influence.jsonl", help="round R's best candidates with their influence"),
    ),
    outputs=(Output("selected", "data/rounds/${key}/selected.jsonl"),),
)


def work(ctx):
    from scoder.bootstrap.influence_select import select_round
    from scoder.bootstrap.rounds import round_specs
    from scoder.core.io import read_jsonl, write_jsonl

    size = round_specs({ctx.key: ctx.param(f"rounds.{ctx.key}")})[ctx.key].select
    selected, metrics = select_round(read_jsonl(ctx.path("influence")), size, ctx.config)
    metrics["round"] = ctx.key
    write_jsonl(ctx.path("selected"), selected)
    ctx.log.info(
        "round %s: selected %d of %d candidates by %s (influence of the selected: %s)",
        ctx.key,
        metrics["selected"],
        metrics["available"],
        ctx.config.method,
        metrics["influence_selected"],
    )
    return metrics


if __name__ == "__main__":
    run_stage(STAGE, work)

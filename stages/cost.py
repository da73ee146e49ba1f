"""DVC stage `cost`: the cost ledger of the paid stages, summed by role."""

from scoder.core.stage import Input, Stage, run_stage

STAGE = Stage(
    "cost",
    "model cost by role, and what the synthesizer's samples would have cost from the teacher",
    inputs=(
        Input("pool_ledger", "metrics/cost/pool.json"),
        Input("categorize_ledger", "metrics/cost/categorize.json"),
        Input("distill_ledger", "metrics/cost/distill.json"),
    ),
)


def work(ctx):
    import json
    from scoder.core.cost import summarize

    entries = [json.loads(ctx.path(item.name).read_text(encoding="utf-8")) for item in STAGE.inputs]
    summary = summarize(entries)
    ctx.log.info("total estimated model cost $%.4f over %d stage(s)", summary["total_cost_usd"], len(entries))
    return summary


if __name__ == "__main__":
    run_stage(STAGE, work)

"""DVC stage `cost`: the cost ledger of the paid stages, summed by role."""

from scoder.core.stage import Input, Stage, run_stage

STAGE = Stage(
    "cost",
    "model cost by role, and what the synthesizer's samples would have cost from the teacher",
    inputs=(
        Input("pool_ledger", "metrics/cost/pool.json"),
        Input("categorize_ledger", "metrics/cost/categorize.json"),
        Input("distill_ledger", "metrics/cost/distill.json"),
        Input("sample_ledgers", "metrics/cost/sample", help="one entry per round (sample@R)"),
        Input("score_ledgers", "metrics/cost/score", help="one entry per round (score@R)"),
        Input("synthesize_ledger", "metrics/cost/synthesize.json"),
    ),
)


def work(ctx):
    import json
    from scoder.core.cost import summarize

    files = []
    for item in STAGE.inputs:
        path = ctx.path(item.name)
        files += sorted(path.glob("*.json")) if path.is_dir() else [path]
    entries = [json.loads(path.read_text(encoding="utf-8")) for path in files]
    summary = summarize(entries)
    ctx.log.info("total estimated model cost $%.4f over %d stage(s)", summary["total_cost_usd"], len(entries))
    return summary


if __name__ == "__main__":
    run_stage(STAGE, work)

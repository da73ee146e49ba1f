"""DVC stage `distill`: the teacher answers the synthesis prompt for every seed snippet (D_p)."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "distill",
    "the teacher's problem + solution for every seed snippet (D_p), with its cost",
    config="scoder.bootstrap.distill:DistillConfig",
    inputs=(
        Input("seeds", "data/categorize/seeds.jsonl"),
        # the shipped recorded-teacher slices (teacher.backend: dataset reads teacher.recorded.source)
        Input("recorded", "data/teacher", help="recorded teacher answers (backend dataset)"),
    ),
    outputs=(
        Output("samples", "data/distill/samples.jsonl"),
        Output("ledger", "metrics/cost/distill.json", cache=False, help="cost ledger entry"),
    ),
)


def work(ctx):
    from scoder.bootstrap.distill import synthesize_samples
    from scoder.core.cost import ledger_entry
    from scoder.core.io import read_jsonl, write_json, write_jsonl
    from scoder.core.prices import price_for
    from scoder.models.llm import load_llm

    config, log = ctx.config, ctx.log
    seeds = read_jsonl(ctx.path("seeds"))
    price = price_for(config.teacher)
    llm = load_llm(config.teacher)
    if config.teacher.backend == "dataset":
        # a recorded teacher answers its own seeds: as many as categorize chose, drawn from the set
        seeds = llm.seeds(len(seeds), config.sampling.seed)
        log.info("recorded teacher: %d seeds drawn from %s (%s)", len(seeds), config.teacher.recorded.source,
                 llm.recorded.summary())
    log.info(
        "teacher %s (%s) answers the synthesis prompt for %d seed snippets",
        config.teacher.model,
        config.teacher.backend,
        len(seeds),
    )
    records, metrics = synthesize_samples(
        llm,
        seeds,
        config,
        config.teacher.model,
        desc="distill (teacher)",
        prices=(price.input_per_1m, price.output_per_1m),
    )
    metrics["price"] = {"row": price.row, "tier": price.tier, "input_per_1m": price.input_per_1m,
                        "output_per_1m": price.output_per_1m}
    if getattr(llm, "budget", None) is not None:
        metrics["budget"] = llm.budget.summary()
    if getattr(llm, "recorded", None) is not None:
        metrics["recorded"] = {**llm.recorded.summary(), "tokenizer": llm.tokenizer}
    write_jsonl(ctx.path("samples"), records)
    write_json(
        ctx.path("ledger"), ledger_entry("distill", "teacher", config.teacher.model, config.teacher.backend, metrics)
    )
    log.info(
        "%d samples, parse rate %.1f%% (%s), %d tokens in / %d out, est. cost $%.4f",
        metrics["samples"],
        100 * metrics["parse_rate"],
        metrics["reasons"],
        metrics["tokens_in"],
        metrics["tokens_out"],
        metrics["cost_usd"],
    )
    return metrics


if __name__ == "__main__":
    run_stage(STAGE, work)

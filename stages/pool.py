"""DVC stage `pool`: build the clean snippet pool (SCoder appendix A)."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "pool",
    "documented functions extracted, filtered, MinHash near-deduplicated and decontaminated against the evaluated benchmarks",
    config="scoder.bootstrap.pool.config:PoolConfig",
    # decontaminated against what the evaluate stage scores (pool.decontaminate.benchmarks: evaluated)
    params=("evaluate.datasets",),
    inputs=(
        Input("humaneval_slice", "data/benchmarks/humaneval-decontam.jsonl.gz",
              help="HumanEval(+) prompts and solutions to decontaminate against"),
        Input("mbpp_slice", "data/benchmarks/mbpp-decontam.jsonl.gz",
              help="MBPP(+) prompts and solutions to decontaminate against"),
    ),
    outputs=(
        Output("out_dir", "data/pool", folder=True),
        Output("ledger", "metrics/cost/pool.json", cache=False, help="cost ledger entry"),
    ),
)


def work(ctx):
    from scoder.bootstrap.pool.build import build_pool
    from scoder.core.cost import usage_entry
    from scoder.core.io import write_json, write_jsonl

    config, out = ctx.config, ctx.path("out_dir")
    scorer = llm = None
    if config.quality.method == "lm":
        from scoder.bootstrap.pool.quality import quality_scores
        from scoder.models.llm import LLMConfig, load_llm

        llm = load_llm(
            LLMConfig(
                model=config.quality.model, batch_size=config.quality.batch_size, precision=config.quality.precision
            )
        )
        scorer = lambda snippets: quality_scores(  # noqa: E731
            llm, snippets, config.quality.max_code_chars, config.quality.batch_size
        )
    ctx.log.info("building the snippet pool from %s", config.source)
    # read whatever pool.decontaminate.benchmarks says: with an explicit list, build_pool warns
    # about an evaluated dataset the pool is not decontaminated against
    evaluated = ctx.param("evaluate.datasets")
    slices = {"humaneval": ctx.path("humaneval_slice"), "mbpp": ctx.path("mbpp_slice")}
    result = build_pool(config, scorer, evaluated=evaluated, slices=slices)
    write_jsonl(out / "snippets.jsonl", result.snippets)
    write_jsonl(out / "skipped_files.jsonl", result.skipped_files)
    write_jsonl(out / "removed.jsonl", result.removed)
    write_json(
        ctx.path("ledger"),
        usage_entry("pool", "quality_classifier", config.quality.model, "transformers", llm.usage if llm else None),
    )
    m = result.metrics
    ctx.log.info(
        "%d files, %d documented functions -> %d after filters -> %d after near-dedup -> %d snippets (%.1fs)",
        m["files_seen"],
        m["functions_found"],
        m["after_filter"],
        m["after_near_dedup"],
        m["snippets"],
        m["seconds"]["total"],
    )
    for name, stats in m["decontamination"]["benchmarks"].items():
        ctx.log.info("decontamination against %s (%d tasks): %d snippets removed, %d tasks hit",
                     name, stats["tasks"], stats["hits_snippets"], len(stats["hit_tasks"]))
    return m


if __name__ == "__main__":
    run_stage(STAGE, work)

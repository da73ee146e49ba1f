"""DVC stage `categorize`: label snippets with task categories by embedding and sample seeds."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "categorize",
    "task category of every snippet by embedding; quality-checked distillation seeds per category",
    config="scoder.bootstrap.categorize:CategorizeConfig",
    params=("seed",),
    inputs=(Input("snippets", "data/pool/snippets.jsonl"),),
    outputs=(
        Output("out_dir", "data/categorize", folder=True),
        Output("ledger", "metrics/cost/categorize.json", cache=False, help="cost ledger entry"),
    ),
)


def work(ctx):
    from scoder.bootstrap.categorize import categorize_snippets
    from scoder.core.cost import usage_entry
    from scoder.core.io import read_jsonl, write_json, write_jsonl, write_npy

    config, out = ctx.config, ctx.path("out_dir")
    snippets = read_jsonl(ctx.path("snippets"))
    ctx.log.info("embedding %d snippets and %d categories with %s", len(snippets), len(config.categories), config.model)
    result = categorize_snippets(snippets, config, int(ctx.param("seed")))
    write_jsonl(out / "snippets.jsonl", result.snippets)
    write_jsonl(out / "seeds.jsonl", result.seeds)
    write_npy(out / "embeddings.npy", result.snippet_vectors)
    write_npy(out / "category_embeddings.npy", result.category_vectors)
    write_json(
        ctx.path("ledger"),
        usage_entry("categorize", "quality_classifier", config.quality.model, "transformers", result.llm_usage),
    )
    ctx.log.info(
        "labelled %d snippets; sampled %d seeds: %s",
        len(result.snippets),
        len(result.seeds),
        result.metrics["seeds_per_category"],
    )
    return result.metrics


if __name__ == "__main__":
    run_stage(STAGE, work)

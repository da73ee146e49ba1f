"""DVC stage `dataset_metrics`: diversity and complexity of each dataset in params (seed 002
Tables 1 and 2): embedding spread, lexical diversity, code complexity, lengths."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "dataset_metrics",
    "diversity and complexity of the distilled, synthesized and deduplicated datasets",
    config="scoder.evaluation.dataset_metrics:DatasetMetricsConfig",
    inputs=(
        Input("distilled", "${dataset_metrics.datasets.distilled.path}"),
        Input("synthesized", "${dataset_metrics.datasets.synthesized.path}"),
        Input("deduplicated", "${dataset_metrics.datasets.deduplicated.path}"),
    ),
    outputs=(Output("table", "reports/dataset_metrics.md", cache=False, help="markdown table"),),
)


def work(ctx):
    from scoder.core.io import read_records, write_text
    from scoder.evaluation.dataset_metrics import dataset_metrics, markdown_table
    from scoder.models.embed import embed_texts, load_embedder

    config, log = ctx.config, ctx.log
    unknown = sorted(set(config.datasets) - {i.name for i in STAGE.inputs})
    if unknown:  # each dataset must be a declared input, or DVC would not rerun when it changes
        raise SystemExit(f"dataset_metrics.datasets {unknown}: add them to the stage's inputs in {__file__}")
    embedder = load_embedder(config.model)

    def embed(texts):
        return embed_texts(embedder, texts, config.prompt, config.batch_size, progress=True)

    results = {}
    for name, spec in config.datasets.items():
        records = read_records(ctx.path(name))
        log.info("measuring %s: %d records from %s", name, len(records), spec.path)
        results[name] = dataset_metrics(records, spec, config, embed)
        log.info("%s: %s", name, results[name])
    write_text(ctx.path("table"), markdown_table(results))
    ctx.run.log_artifact(ctx.path("table"))
    return {
        **results,
        "meta": {
            "model": config.model,
            "sample_size": config.sample_size,
            "mtld_threshold": config.mtld_threshold,
            "seed": config.seed,
        },
    }


if __name__ == "__main__":
    run_stage(STAGE, work)

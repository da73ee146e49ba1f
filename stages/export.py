"""DVC stage `export`: the final dataset as a Hugging Face dataset folder (parquet shards and a
dataset card generated from the run's metrics); `scoder export` runs the same code and can
push the folder to the Hub (docs/export.md)."""

from scoder.bootstrap.export import PARAMS_READ
from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "export",
    "the final dataset as a Hugging Face dataset folder: parquet shards and a dataset card built from the metrics",
    config="scoder.bootstrap.export:ExportConfig",
    params=PARAMS_READ,  # what the card says about the source and the models
    inputs=(
        Input("dataset", "data/synthesize/dataset.jsonl", help="the final dataset (synthesize)"),
        Input("pool", "metrics/pool.json"),
        Input("categorize", "metrics/categorize.json"),
        Input("distill", "metrics/distill.json"),
        Input("train", "metrics/train"),
        Input("sample", "metrics/sample"),
        Input("score", "metrics/score"),
        Input("select", "metrics/select"),
        Input("synthesize", "metrics/synthesize.json"),
        Input("cost", "metrics/cost.json"),
    ),
    outputs=(Output("out_dir", "data/export", folder=True),),
)


def work(ctx):
    from scoder.bootstrap.export import ExportError, export_dataset, read_params

    metrics_dir = ctx.metrics_dir("pool", others=("dataset",))  # the card reads its metrics files from there
    try:
        result = export_dataset(ctx.path("dataset"), metrics_dir, ctx.path("out_dir"), ctx.config,
                                read_params(ctx.param), ctx.params_file)  # the params hash goes on the card
    except ExportError as exc:
        raise SystemExit(f"export: {exc}") from None
    ctx.log.info("exported %d rows in %d shard(s) (%d bytes of parquet) at commit %s%s", result["rows"],
                 result["shards"], result["parquet_bytes"], result["git_commit"][:12],
                 " (dirty tree)" if result["git_dirty"] else "")
    return result


if __name__ == "__main__":
    run_stage(STAGE, work)

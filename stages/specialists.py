"""DVC stage `specialists`: K-means clusters of the instruction embeddings and one LoRA
adapter per cluster, with the router's centroids (seed 002 section 4)."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "specialists",
    "K-means clusters and one LoRA specialist per cluster, with the router's centroids",
    config="scoder.kspecialist.specialists:SpecialistsConfig",
    inputs=(Input("data", "data/semantic_dedup/dataset.jsonl", help="instruction dataset (JSON or JSONL)"),),
    outputs=(Output("out_dir", "data/specialists", folder=True),),
)


def work(ctx):
    from scoder.core.io import read_records
    from scoder.kspecialist.specialists import train_specialists

    config = ctx.config
    records = read_records(ctx.path("data"))
    ctx.log.info("K=%d specialists of %s on %d records", config.k, config.train.model, len(records))
    manifest = train_specialists(records, config, ctx.path("out_dir"), str(ctx.path("data")))
    sizes = [c["size"] for c in manifest["clusters"]]
    ctx.log.info("cluster sizes %s", sizes)
    return {
        "k": config.k,
        "records": len(records),
        "cluster_sizes": sizes,
        "clusters": {
            str(c["cluster"]): {"size": c["size"], "steps": c["steps"], "train_loss": c["train_loss"]}
            for c in manifest["clusters"]
        },
    }


if __name__ == "__main__":
    run_stage(STAGE, work)

"""DVC stage `semantic_dedup`: one record of every group of near-identical instructions
(cosine above the threshold; seed 002 section 2.3)."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "semantic_dedup",
    "the synthesized dataset without semantic near-duplicates",
    config="scoder.kspecialist.dedup:SemanticDedupConfig",
    inputs=(Input("data", "data/synthesize/dataset.jsonl", help="instruction dataset (JSON or JSONL)"),),
    outputs=(Output("out_dir", "data/semantic_dedup", folder=True),),
)


def work(ctx):
    from scoder.core.io import read_records, write_jsonl
    from scoder.kspecialist.dedup import dedup_records

    config = ctx.config
    records = read_records(ctx.path("data"))
    ctx.log.info("deduplicating %d records at cosine > %s (%s)", len(records), config.threshold, config.model)
    kept, dropped = dedup_records(records, config, str(ctx.path("data")))
    write_jsonl(ctx.path("out_dir") / "dataset.jsonl", kept)
    write_jsonl(ctx.path("out_dir") / "duplicates.jsonl", dropped)
    ctx.log.info("kept %d of %d records (%d near-duplicates dropped)", len(kept), len(records), len(dropped))
    return {
        "records": len(records),
        "kept": len(kept),
        "dropped": len(dropped),
        "threshold": config.threshold,
        "model": config.model,
    }


if __name__ == "__main__":
    run_stage(STAGE, work)

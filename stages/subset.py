"""DVC stage `subset`: choose `subset.size` records of an instruction dataset with the
distribution-consistent, diversity-aware parametric model of seed 003 or a baseline."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "subset",
    "seed 003's parametric selection (or a baseline) of an instruction dataset, with coverage against random",
    config="scoder.subset.selection:SelectConfig",
    inputs=(Input("data", "${subset.input}", help="the instruction dataset (JSON/JSONL)"),),
    outputs=(Output("selected", "data/subset/selected.jsonl"),),
)


def work(ctx):
    from scoder.core.io import read_records, write_jsonl
    from scoder.subset.selection import select_records

    config = ctx.config
    records = read_records(ctx.path("data"))
    ctx.log.info(
        "selecting %d of %d records from %s with %s", config.size, len(records), ctx.path("data"), config.method
    )
    selected, metrics = select_records(records, config)
    write_jsonl(ctx.path("selected"), selected)
    ctx.log.info(
        "coverage %.4f (random %.4f), mean pairwise cosine %.4f, %.1fs",
        metrics["coverage"],
        metrics["random_coverage"],
        metrics["diversity_mean_cosine"],
        metrics["seconds"],
    )
    return metrics


if __name__ == "__main__":
    run_stage(STAGE, work)

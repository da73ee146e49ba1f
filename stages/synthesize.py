"""DVC stage `synthesize`: the final dataset, sampled by the last synthesizer from snippets no
round used, parsed and (optionally) execution-checked (SCoder section 4)."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "synthesize",
    "the final instruction dataset from the last synthesizer",
    config="scoder.bootstrap.final_dataset:SynthesizeConfig",
    params=("rounds", "seed"),
    inputs=(
        Input("synthesizer", "data/synthesizer/${synthesize.synthesizer}", help="folder written by train@K"),
        Input("pool", "data/pool/snippets.jsonl"),
        Input("exclude", "data/categorize/seeds.jsonl", help="snippets already used (the distillation seeds)"),
    ),
    outputs=(
        Output("out_dir", "data/synthesize", folder=True),
        Output("ledger", "metrics/cost/synthesize.json", cache=False, help="cost ledger entry"),
    ),
)


def work(ctx):
    from scoder.bootstrap.final_dataset import final_snippets, synthesize_dataset
    from scoder.bootstrap.manifest import read_synthesizer
    from scoder.bootstrap.rounds import round_specs
    from scoder.core.cost import priced_entry
    from scoder.core.io import read_jsonl, write_json, write_jsonl

    config, out = ctx.config, ctx.path("out_dir")
    exclude = {s["id"] for s in read_jsonl(ctx.path("exclude"))}
    snippets = final_snippets(
        read_jsonl(ctx.path("pool")), exclude, round_specs(ctx.param("rounds")), config.size, int(ctx.param("seed"))
    )
    synthesizer = read_synthesizer(ctx.path("synthesizer"))
    ctx.log.info(
        "final synthesis: %d snippets x %d samples from synthesizer %s (%s), execution %s",
        len(snippets),
        config.sampling.n,
        synthesizer["key"],
        synthesizer["checkpoints"][-1],
        config.execution,
    )
    rows, samples, metrics = synthesize_dataset(synthesizer, snippets, config)
    if not rows:
        raise SystemExit(f"the final dataset is empty: {metrics['samples']} samples, rejected {metrics['rejected']}")
    write_jsonl(out / "dataset.jsonl", rows)
    write_jsonl(out / "samples.jsonl", samples)
    write_json(ctx.path("ledger"), priced_entry("synthesize", "synthesizer", synthesizer["base_model"], config.engine,
                                                metrics["samples"], metrics["tokens_in"], metrics["tokens_out"]))
    ctx.log.info(
        "dataset: %d of %d samples (parse rate %.1f%%; rejected %s)",
        len(rows),
        len(samples),
        100 * metrics["parse_rate"],
        metrics["rejected"] or "none",
    )
    return metrics


if __name__ == "__main__":
    run_stage(STAGE, work)

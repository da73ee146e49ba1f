"""DVC stage `sample@R`: round R's candidates, N samples from each of the M checkpoints of
the previous synthesizer per pool snippet (SCoder section 3.3)."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "sample",
    "round R's candidates: N samples from each of M checkpoints per snippet",
    foreach="rounds",
    config="scoder.bootstrap.sample:SampleConfig",
    params=("rounds", "seed"),
    inputs=(
        Input("synthesizer", "data/synthesizer/${item.previous}", help="folder written by train@K"),
        Input("pool", "data/pool/snippets.jsonl"),
        Input("exclude", "data/categorize/seeds.jsonl", help="snippets already used (the distillation seeds)"),
    ),
    outputs=(
        Output("candidates", "data/rounds/${key}/candidates.jsonl"),
        Output("ledger", "metrics/cost/sample/${key}.json", cache=False, help="cost ledger entry"),
    ),
)


def work(ctx):
    from scoder.bootstrap.manifest import read_synthesizer
    from scoder.bootstrap.rounds import round_snippets, round_specs
    from scoder.bootstrap.sample import sample_candidates
    from scoder.core.cost import priced_entry
    from scoder.core.io import read_jsonl, write_json, write_jsonl

    config = ctx.config
    rounds = round_specs(ctx.param("rounds"))
    exclude = {s["id"] for s in read_jsonl(ctx.path("exclude"))}
    snippets = round_snippets(read_jsonl(ctx.path("pool")), exclude, rounds, ctx.key, int(ctx.param("seed")))
    synthesizer = read_synthesizer(ctx.path("synthesizer"))
    ctx.log.info(
        "round %s: %d snippets x %d checkpoints x %d samples from synthesizer %s (%s)",
        ctx.key,
        len(snippets),
        len(synthesizer["checkpoints"]) if config.multi_checkpoint else 1,
        config.sampling.n,
        rounds[ctx.key].previous,
        "multi-checkpoint" if config.multi_checkpoint else "last checkpoint only",
    )
    records, metrics = sample_candidates(synthesizer, snippets, config, ctx.key)
    write_jsonl(ctx.path("candidates"), records)
    tokens = metrics["computed_tokens"]
    write_json(ctx.path("ledger"), priced_entry(ctx.name, "synthesizer", synthesizer["base_model"], config.engine,
                                                metrics["candidates"], tokens["prompt_tokens"], tokens["completion_tokens"]))
    ctx.log.info("%d candidates, parse rate %.1f%%", metrics["candidates"], 100 * metrics["parse_rate"])
    return metrics


if __name__ == "__main__":
    run_stage(STAGE, work)

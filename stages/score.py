"""DVC stage `score@R`: the 10-aspect scorer judges round R's candidates, optionally with the
execution check; the best candidate per snippet is kept (SCoder section 3.3)."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "score",
    "10-aspect scores (weighted aggregate, execution check) and the best candidate per snippet",
    foreach="rounds",
    config="scoder.bootstrap.scoring:ScoreConfig",
    inputs=(
        Input("candidates", "data/rounds/${key}/candidates.jsonl"),
        Input("weights", "${score.weights_file}", help="aspect weights of eq. 1"),
    ),
    outputs=(
        Output("scored", "data/rounds/${key}/scored.jsonl"),
        Output("best", "data/rounds/${key}/best.jsonl"),
        Output("ledger", "metrics/cost/score/${key}.json", cache=False, help="cost ledger entry"),
    ),
)


def work(ctx):
    from scoder.bootstrap.scoring import score_candidates
    from scoder.core.cost import priced_entry
    from scoder.core.io import read_jsonl, write_json, write_jsonl
    from scoder.models.llm import load_llm

    from dataclasses import replace

    config, log = replace(ctx.config, weights_file=str(ctx.path("weights"))), ctx.log
    candidates = read_jsonl(ctx.path("candidates"))
    log.info(
        "scoring %d candidates of round %s with %s (%s, mode %s, aggregate %s, execution %s)",
        len(candidates),
        ctx.key,
        config.scorer.model,
        config.scorer.backend,
        config.mode,
        config.aggregate,
        config.execution,
    )
    llm = load_llm(config.scorer)
    scored, best, metrics = score_candidates(llm, candidates, config)
    write_jsonl(ctx.path("scored"), scored)
    write_jsonl(ctx.path("best"), best)
    usage = getattr(llm, "usage", None) or {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    write_json(ctx.path("ledger"), priced_entry(ctx.name, "scorer", config.scorer.model, config.scorer, usage["calls"],
                                                usage["prompt_tokens"], usage["completion_tokens"]))
    metrics["round"] = ctx.key
    if not best:
        log.warning(
            "no candidate of round %s was kept (score failures %s, execution %s): the round selects nothing",
            ctx.key,
            metrics["score_failures"],
            metrics.get("exec_reasons", "off"),
        )
    log.info(
        "score parse rate %.1f%%, exec rate %s, best kept for %d of %d snippets",
        100 * metrics["score_parse_rate"],
        metrics.get("exec_rate", "n/a"),
        metrics["best"],
        metrics["snippets"],
    )
    return metrics


if __name__ == "__main__":
    run_stage(STAGE, work)

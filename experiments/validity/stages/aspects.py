"""Validity stage `aspects`: the 10-aspect scorer and the execution check of `score@R`, run on
the labelled candidates (the weighted, composite and mean aggregates; the code with its tests)."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "aspects",
    "10-aspect scores (weighted / composite / mean) and the execution check of every candidate",
    section="score",
    config="scoder.bootstrap.scoring:ScoreConfig",
    inputs=(Input("candidates_file", "data/candidates.jsonl"),
            Input("weights", "${score.weights_file}", help="aspect weights of eq. 1")),
    outputs=(Output("signals", "data/signals/aspects.jsonl"),),
    paper="validity",
)


def work(ctx):
    from dataclasses import replace

    from scoder.bootstrap.aspects import read_weights
    from scoder.bootstrap.scoring import score_candidates
    from scoder.core.io import read_jsonl, write_jsonl
    from scoder.models.llm import load_llm
    from scoder.validity.experiment import aspect_rows

    config = replace(ctx.config, weights_file=str(ctx.path("weights")))
    candidates = read_jsonl(ctx.path("candidates_file"))
    ctx.log.info("scoring %d candidates with %s (mode %s), execution %s", len(candidates), config.scorer.model,
                 config.mode, config.execution)
    scored, _, metrics = score_candidates(load_llm(config.scorer), candidates, config)
    write_jsonl(ctx.path("signals"), aspect_rows(scored, read_weights(config.weights_file)))
    keep = ("candidates", "score_parse_ok", "score_parse_rate", "score_failures", "exec_ok", "exec_rate", "exec_reasons",
            "isolation", "precision")
    return {k: metrics[k] for k in keep if k in metrics}


if __name__ == "__main__":
    run_stage(STAGE, work)

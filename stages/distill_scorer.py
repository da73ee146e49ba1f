"""Optional stage `distill_scorer` (run by hand, not part of dvc.yaml): the teacher judges
instruction pairs with the 10-aspect prompt and a small scorer is fine-tuned on its
judgements (SCoder's distilled scorer). Use it with score.scorer.model / adapter."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "distill_scorer",
    "a small scorer fine-tuned on the teacher's 10-aspect judgements",
    in_pipeline=False,
    section="scorer_distill",
    config="scoder.bootstrap.scorer_distill:ScorerDistillConfig",
    inputs=(
        Input("data", "data/distill/samples.jsonl", help="instruction pairs to judge (problem, solution, parse_ok)"),
    ),
    outputs=(Output("out_dir", "data/scorer", folder=True),),
)


def work(ctx):
    import json
    from scoder.bootstrap.scorer_distill import distill_scorer
    from scoder.core.io import read_jsonl

    config, out = ctx.config, ctx.path("out_dir")
    metrics = distill_scorer(read_jsonl(ctx.path("data")), config, out)
    (out / "scorer.json").write_text(
        json.dumps({"base_model": config.train.model, "adapter": "checkpoint-0"}, indent=2) + "\n"
    )
    ctx.log.info(
        "scorer trained on %d judgements (teacher parse rate %.1f%%); set score.scorer.model: %s and "
        "score.scorer.adapter: %s",
        metrics["examples"],
        100 * metrics["score_parse_rate"],
        config.train.model,
        f"{STAGE.outputs[0].path}/checkpoint-0",
    )
    return metrics


if __name__ == "__main__":
    run_stage(STAGE, work)

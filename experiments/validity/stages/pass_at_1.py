"""Validity stage `pass_at_1@<model>` (on demand: `make validity-pass1`): greedy pass@1 on every
HumanEval+ task, through the evaluate stage's path (evalplus prompt, sandboxed tests), for one
model of `pass_at_1.models`: an arm's fine-tune (`arm`) or routed K-Specialist models
(`kspecialist`); the best signal arm is `pass_at_1_best`. One stage per model, so each one's
~15 minutes of answers is kept when another fails; bootstrap 95% intervals over tasks."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "pass_at_1",
    "greedy pass@1 on all HumanEval+ tasks of one model: an arm's fine-tune or routed specialists",
    foreach="pass_at_1.models",
    params=("evaluate", "pass_at_1.datasets", "pass_at_1.engine", "pass_at_1.models.${key}", "report.bootstrap",
            "report.seed"),
    inputs=(Input("model", "${item.path}", help="an arm's folder (data/downstream/<arm>) or a K-Specialist folder"),),
    outputs=(Output("out_dir", "data/pass_at_1/${key}", folder=True),),
    metrics="metrics/pass_at_1/${key}.json",
    paper="validity",
)


def work(ctx):
    from dataclasses import replace

    from scoder.kspecialist.specialists import SpecialistLLM
    from scoder.validity.experiment import arm_llm, greedy_pass_at_1, pass_at_1_evaluation

    # engine settings over evaluate.engine for the answers only (the fine-tunes' NLL generates nothing)
    evaluation = pass_at_1_evaluation(ctx.param("evaluate"), ctx.param("pass_at_1.datasets"), ctx.param("pass_at_1.engine"))
    kind = ctx.param(f"pass_at_1.models.{ctx.key}").get("kind")
    metrics = {"model": ctx.key, "kind": kind}
    if kind == "kspecialist":  # routed specialists, as seed 002 serves them
        llm = SpecialistLLM(str(ctx.path("model") / "specialists"), replace(evaluation.engine, adapter=None), "batched")
        metrics["k"] = llm.manifest["k"]
    elif kind == "arm":
        llm, manifest = arm_llm(ctx.path("model"), evaluation.engine)
        metrics["arm"] = manifest.get("arm")
    else:
        raise SystemExit(f"pass_at_1.models.{ctx.key}.kind is {kind!r}: expected arm or kspecialist")
    return metrics | greedy_pass_at_1(llm, ctx.key, evaluation, ctx.path("out_dir"), int(ctx.param("report.bootstrap")),
                                      int(ctx.param("report.seed")), ctx.log)


if __name__ == "__main__":
    run_stage(STAGE, work)

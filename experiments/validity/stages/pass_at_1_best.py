"""Validity stage `pass_at_1_best` (on demand: `make validity-pass1`): greedy pass@1 on every
HumanEval+ task of the signal arm with the lowest canonical NLL on `pass_at_1.choose_by`
(MBPP+: chosen on other tasks than it is scored on), among the arms of `arms`; the same path and
intervals as `pass_at_1@<model>`."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "pass_at_1_best",
    "greedy pass@1 on all HumanEval+ tasks of the signal arm with the lowest MBPP+ canonical NLL",
    params=("evaluate", "pass_at_1.datasets", "pass_at_1.engine", "pass_at_1.choose_by", "arms", "report.bootstrap",
            "report.seed"),
    inputs=(Input("downstream", "data/downstream", help="every arm's folder (the finetune stages)"),),
    outputs=(Output("out_dir", "data/pass_at_1/best", folder=True),),
    metrics="metrics/pass_at_1/best.json",
    paper="validity",
)


def work(ctx):
    from scoder.validity.experiment import arm_llm, best_arm, greedy_pass_at_1, pass_at_1_evaluation

    evaluation = pass_at_1_evaluation(ctx.param("evaluate"), ctx.param("pass_at_1.datasets"), ctx.param("pass_at_1.engine"))
    choose_by = ctx.param("pass_at_1.choose_by")
    if choose_by in evaluation.datasets:
        raise SystemExit(f"pass_at_1.choose_by '{choose_by}' is the scored benchmark: best must be chosen on other tasks")
    arm, chosen_nll = best_arm(ctx.path("downstream"), choose_by, list(ctx.param("arms")))
    ctx.log.info("best signal arm by %s canonical NLL: %s (%.4f)", choose_by, arm, chosen_nll)
    llm, _ = arm_llm(ctx.path("downstream") / arm, evaluation.engine)
    metrics = {"model": "best", "kind": "best", "arm": arm, "chosen_by": f"{choose_by} canonical NLL",
               "chosen_nll": round(chosen_nll, 6)}
    return metrics | greedy_pass_at_1(llm, "best", evaluation, ctx.path("out_dir"), int(ctx.param("report.bootstrap")),
                                      int(ctx.param("report.seed")), ctx.log)


if __name__ == "__main__":
    run_stage(STAGE, work)

"""Validity stage `pass_at_1@<model>` (on demand: `make validity-pass1`): greedy pass@1 on every
HumanEval+ task, through the evaluate stage's path (evalplus prompt, sandboxed tests), for one
model of `pass_at_1.models`: an arm's fine-tune (`arm`), the signal arm with the lowest canonical
NLL on `pass_at_1.choose_by` (`best`: chosen on other tasks than it is scored on), or routed
K-Specialist models (`kspecialist`). One stage per model, so each one's ~15 minutes of answers
is kept when another fails; bootstrap 95% intervals over tasks."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "pass_at_1",
    "greedy pass@1 on all HumanEval+ tasks of one model: an arm, the best-NLL signal arm, or routed specialists",
    foreach="pass_at_1.models",
    params=("evaluate", "pass_at_1.datasets", "pass_at_1.choose_by", "pass_at_1.engine", "pass_at_1.models.${key}",
            "arms", "report.bootstrap", "report.seed"),
    inputs=(Input("model", "${item.path}", help="an arm's folder, the folder of all arms (best), or a K-Specialist folder"),),
    outputs=(Output("out_dir", "data/pass_at_1/${key}", folder=True),),
    metrics="metrics/pass_at_1/${key}.json",
    paper="validity",
)


def work(ctx):
    import json
    from dataclasses import replace

    from scoder.core.io import read_jsonl, write_jsonl
    from scoder.core.params import from_dict
    from scoder.evaluation.benchmarks import EvaluateConfig, evaluate_llm, prepare_benchmarks
    from scoder.kspecialist.specialists import SpecialistLLM
    from scoder.models.finetuned import finetuned_engine
    from scoder.models.llm import load_llm
    from scoder.validity.experiment import best_arm
    from scoder.validity.signals import bootstrap_mean

    evaluation = from_dict(EvaluateConfig, ctx.param("evaluate"), "evaluate")
    # engine settings over evaluate.engine for the answers only (the fine-tunes' NLL generates nothing)
    engine = from_dict(type(evaluation.engine), {**ctx.param("evaluate.engine"), **(ctx.param("pass_at_1.engine") or {})},
                       "pass_at_1.engine")
    evaluation = replace(evaluation, datasets=list(ctx.param("pass_at_1.datasets")), nll=False, engine=engine)
    if len(evaluation.datasets) != 1:
        raise SystemExit(f"pass_at_1.datasets is {evaluation.datasets}: one benchmark per run")
    if evaluation.sampling.n != 1 or evaluation.sampling.temperature != 0:
        raise SystemExit(f"evaluate.sampling is n={evaluation.sampling.n}, temperature={evaluation.sampling.temperature}: "
                         "pass@1 here is greedy (n: 1, temperature: 0)")
    spec = ctx.param(f"pass_at_1.models.{ctx.key}")
    kind, folder = spec.get("kind"), ctx.path("model")
    metrics = {"model": ctx.key, "kind": kind}
    if kind == "kspecialist":  # routed specialists, as seed 002 serves them
        llm = SpecialistLLM(str(folder / "specialists"), replace(evaluation.engine, adapter=None), "batched")
        metrics["k"] = llm.manifest["k"]
    elif kind in ("arm", "best"):
        if kind == "best":
            choose_by = ctx.param("pass_at_1.choose_by")
            if choose_by in evaluation.datasets:
                raise SystemExit(f"pass_at_1.choose_by '{choose_by}' is the scored benchmark: best must be chosen on other tasks")
            arm, chosen_nll = best_arm(folder, choose_by, list(ctx.param("arms")))
            metrics.update(arm=arm, chosen_by=f"{choose_by} canonical NLL", chosen_nll=round(chosen_nll, 6))
            folder = folder / arm
            ctx.log.info("best signal arm by %s canonical NLL: %s (%.4f)", choose_by, arm, chosen_nll)
        manifest = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        metrics.setdefault("arm", manifest.get("arm"))
        adapter = str(folder / manifest["adapter"]) if manifest["adapter"] else None
        llm = load_llm(finetuned_engine(evaluation.engine, manifest["base_model"], manifest["method"], adapter))
    else:
        raise SystemExit(f"pass_at_1.models.{ctx.key}.kind is {kind!r}: expected arm, best or kspecialist")
    prepared, sources = prepare_benchmarks(evaluation, ctx.path("out_dir"))
    dataset = evaluation.datasets[0]
    if dataset not in prepared:
        raise SystemExit(f"no problem file for {dataset} ({sources}): set {dataset.upper()}_OVERRIDE_PATH")
    metrics.update(dataset=dataset, tasks=len(prepared[dataset].problems), decoder=engine.decoder)
    ctx.log.info("%s: greedy answers to %d %s tasks (%s decoder)", ctx.key, metrics["tasks"], dataset, engine.decoder)
    metrics.update(evaluate_llm(llm, ctx.key, prepared[dataset], evaluation))
    rows = read_jsonl(prepared[dataset].folder / f"{ctx.key}-samples.jsonl")
    unjudged = [r["task_id"] for r in rows if r.get("plus_status") is None]
    if unjudged:  # a plus verdict missing would read as a failure
        raise SystemExit(f"{len(unjudged)} answers have no plus-test verdict (first {unjudged[0]}): evalplus' problem file "
                         f"is needed ({sources})")
    passed = [{"task_id": r["task_id"], "base": r["base_status"] == "pass",
               "plus": r["base_status"] == r.get("plus_status") == "pass"} for r in rows]
    write_jsonl(ctx.path("out_dir") / "passed.jsonl", passed)
    samples, seed = int(ctx.param("report.bootstrap")), int(ctx.param("report.seed"))
    for name in ("base", "plus"):
        mean, low, high = bootstrap_mean([float(p[name]) for p in passed], samples, seed)
        metrics[f"{name}_pass@1"] = round(mean, 4)
        metrics[f"{name}_pass@1_low"], metrics[f"{name}_pass@1_high"] = round(low, 4), round(high, 4)
    ctx.log.info("%s: pass@1 %.3f (plus %.3f)", ctx.key, metrics["base_pass@1"], metrics["plus_pass@1"])
    return metrics


if __name__ == "__main__":
    run_stage(STAGE, work)

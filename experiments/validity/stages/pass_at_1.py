"""Validity stage `pass_at_1` (on demand: `make validity-pass1`): greedy pass@1 on every
HumanEval+ task, through the evaluate stage's path (evalplus prompt, sandboxed tests), for the
base model, the random arm and the signal arm with the lowest MBPP+ canonical NLL (chosen on other tasks than it is scored on), and the
routed K-Specialist models named in `pass_at_1.kspecialist`; bootstrap 95% intervals over tasks."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "pass_at_1",
    "greedy pass@1 on all HumanEval+ tasks: base, random and the best-NLL signal arm",
    params=("evaluate", "pass_at_1", "report.bootstrap", "report.seed"),
    inputs=(Input("report_metrics", "metrics/report.json"), Input("downstream", "data/downstream"),
            Input("kspecialist", "data/kspecialist")),
    outputs=(Output("out_dir", "data/pass_at_1", folder=True),),
    paper="validity",
)


def work(ctx):
    import json
    from dataclasses import replace

    from scoder.core.io import read_jsonl
    from scoder.core.params import from_dict
    from scoder.evaluation.benchmarks import EvaluateConfig, evaluate_llm, prepare_benchmarks
    from scoder.kspecialist.specialists import SpecialistLLM
    from scoder.models.finetuned import finetuned_engine
    from scoder.models.llm import load_llm
    from scoder.validity.signals import bootstrap_mean

    evaluation = from_dict(EvaluateConfig, ctx.param("evaluate"), "evaluate")
    evaluation = replace(evaluation, datasets=list(ctx.param("pass_at_1.datasets")), nll=False)
    report = json.loads(ctx.path("report_metrics").read_text(encoding="utf-8"))
    dataset = evaluation.datasets[0]
    # "best" is chosen on another benchmark's NLL (pass_at_1.choose_by), not on the tasks it is then scored on
    choose_by = ctx.param("pass_at_1.choose_by")
    signal_arms = {arm: entry[choose_by]["nll"] for arm, entry in report["downstream"].items()
                   if arm not in ("base", "random") and choose_by in entry}
    best = min(signal_arms, key=lambda arm: (signal_arms[arm], arm))
    arms = [a if a != "best" else best for a in ctx.param("pass_at_1.arms")]
    prepared, sources = prepare_benchmarks(evaluation, ctx.path("out_dir"))
    if dataset not in prepared:
        raise SystemExit(f"no problem file for {dataset} ({sources}): set HUMANEVAL_OVERRIDE_PATH")
    metrics = {"best_arm": best, "best_chosen_by": f"{choose_by} canonical NLL", "dataset": dataset, "tasks": len(prepared[dataset].problems), "arms": {}}
    samples, seed = int(ctx.param("report.bootstrap")), int(ctx.param("report.seed"))
    models = {arm: None for arm in arms} | {f"kspecialist_{k}": str(k) for k in ctx.param("pass_at_1.kspecialist")}
    for arm, k in models.items():
        if k is not None:  # routed specialists, as seed 002 serves them
            llm = SpecialistLLM(str(ctx.path("kspecialist") / k / "specialists"), replace(evaluation.engine, adapter=None),
                                "batched")
        else:
            manifest = json.loads((ctx.path("downstream") / arm / "model.json").read_text(encoding="utf-8"))
            adapter = str(ctx.path("downstream") / arm / manifest["adapter"]) if manifest["adapter"] else None
            llm = load_llm(finetuned_engine(evaluation.engine, manifest["base_model"], manifest["method"], adapter))
        ctx.log.info("%s: greedy answers to %d %s tasks", arm, metrics["tasks"], dataset)
        summary = evaluate_llm(llm, arm, prepared[dataset], evaluation)
        rows = read_jsonl(prepared[dataset].folder / f"{arm}-samples.jsonl")
        entry = {**summary}
        for name, passed in (("base", [r["base_status"] == "pass" for r in rows]),
                             ("plus", [r["base_status"] == r.get("plus_status") == "pass" for r in rows])):
            mean, low, high = bootstrap_mean([float(p) for p in passed], samples, seed)
            entry[f"{name}_pass@1"] = round(mean, 4)
            entry[f"{name}_pass@1_low"], entry[f"{name}_pass@1_high"] = round(low, 4), round(high, 4)
        metrics["arms"][arm] = entry
        ctx.log.info("%s: pass@1 %.3f (plus %.3f)", arm, entry["base_pass@1"], entry["plus_pass@1"])
        del llm
    return metrics


if __name__ == "__main__":
    run_stage(STAGE, work)

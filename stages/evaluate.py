"""DVC stage `evaluate`: EvalPlus pass@k (HumanEval+, MBPP+) and canonical-solution NLL of the
base model and the SCoder-trained model."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "evaluate",
    "EvalPlus pass@k and canonical-solution NLL of the base and the trained code model",
    config="scoder.evaluation.benchmarks:EvaluateConfig",
    inputs=(Input("model_dir", "data/scoder", help="folder written by scoder_train (model.json)"),),
    outputs=(Output("out_dir", "data/evaluate", folder=True),),
)


def work(ctx):
    from scoder.evaluation.benchmarks import evaluate_llm, evaluation_meta, model_engines, prepare_benchmarks
    from scoder.models.llm import load_llm

    config, log = ctx.config, ctx.log
    engines = model_engines(config, str(ctx.path("model_dir") / "model.json"))
    meta = {
        **evaluation_meta(config),
        "models": {name: {"model": e.model, "adapter": e.adapter} for name, e in engines.items()},
    }
    prepared, metrics = prepare_benchmarks(config, ctx.path("out_dir"))
    for dataset, entry in metrics.items():
        log.info("%s: %s", dataset, entry.get("skipped") or f"{entry['tasks']} tasks ({entry['source']})")
    for name, engine in engines.items():
        llm = load_llm(engine)
        meta["models"][name]["precision"] = getattr(llm, "precision", "n/a")
        for dataset, bench in prepared.items():
            log.info("%s model on %s: generating %d x %d", name, dataset, len(bench.problems), config.sampling.n)
            metrics[dataset][name] = evaluate_llm(llm, name, bench, config)
            log.info("%s on %s: %s", name, dataset, metrics[dataset][name])
        del llm
    precisions = {m["precision"] for m in meta["models"].values()}
    return {**metrics, "meta": meta, "precision": precisions.pop() if len(precisions) == 1 else sorted(precisions)}


if __name__ == "__main__":
    run_stage(STAGE, work)

"""DVC stage `specialist_evaluate`: the K specialists through the evaluate code path, each
query routed to the specialist of its nearest centroid (seed 002 Table 3)."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "specialist_evaluate",
    "pass@k of the routed K specialists on the evaluate benchmarks",
    config="scoder.kspecialist.specialists:SpecialistEvaluateConfig",
    inputs=(Input("specialists", "data/specialists", help="folder written by the specialists stage"),),
    outputs=(Output("out_dir", "data/specialist_evaluate", folder=True),),
)


def work(ctx):
    from dataclasses import replace

    from scoder.evaluation.benchmarks import evaluate_llm, evaluation_meta, prepare_benchmarks
    from scoder.kspecialist.specialists import SpecialistLLM

    config, log = ctx.config, ctx.log
    llm = SpecialistLLM(str(ctx.path("specialists")), config.engine, config.mode)
    k = llm.manifest["k"]
    prepared, metrics = prepare_benchmarks(config, ctx.path("out_dir"))
    for dataset, bench in prepared.items():
        for setting in config.passes:
            name = f"pass{setting.k}"
            sampling = replace(config.sampling, n=setting.n, temperature=setting.temperature)
            log.info(
                "K=%d (%s) on %s, %s: %d tasks x %d samples at temperature %s",
                k,
                config.mode,
                dataset,
                name,
                len(bench.problems),
                setting.n,
                setting.temperature,
            )
            llm.routed = [0] * k
            summary = evaluate_llm(llm, name, bench, replace(config, sampling=sampling, ks=[setting.k]))
            metrics[dataset][name] = {
                **summary,
                "n": setting.n,
                "temperature": setting.temperature,
                "routed": {str(c): count for c, count in enumerate(llm.routed)},
            }
            log.info("%s %s: %s", dataset, name, summary)
    metrics["k"] = k
    return {**metrics, "meta": {**evaluation_meta(config), "mode": config.mode, "specialists": llm.manifest}}


if __name__ == "__main__":
    run_stage(STAGE, work)

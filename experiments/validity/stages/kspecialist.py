"""Validity stage `kspecialist@<K>` (seed 002 Table 3 at small scale): K-means clusters of a real
instruction set, one LoRA specialist per cluster, and the canonical-solution NLL of every
HumanEval+ / MBPP+ task under the specialist its query is routed to (K=1: plain fine-tuning on
the whole set, the same epochs)."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "kspecialist",
    "K LoRA specialists on a real instruction set, routed canonical NLL on all HumanEval+ / MBPP+ tasks",
    foreach="kspecialist.ks",
    section="kspecialist",
    config="scoder.validity.kspecialist:KSpecialistConfig",
    params=("evaluate",),
    inputs=(Input("data", "${kspecialist.data}", help="instruction dataset (JSON / JSONL)"),),
    outputs=(Output("out_dir", "data/kspecialist/${key}", folder=True),),
    metrics="metrics/kspecialist/${key}.json",
    paper="validity",
)


def work(ctx):
    from dataclasses import replace

    from scoder.core.io import read_records, write_jsonl
    from scoder.core.params import from_dict
    from scoder.evaluation.benchmarks import EvaluateConfig, chat_prompts, prepare_benchmarks
    from scoder.kspecialist.specialists import SpecialistLLM, train_specialists

    config = ctx.config.specialists_for(ctx.key)
    records = read_records(ctx.path("data"))
    ctx.log.info("K=%d specialists of %s on %d records of %s", config.k, config.train.model, len(records), ctx.path("data"))
    manifest = train_specialists(records, config, ctx.path("out_dir") / "specialists", str(ctx.path("data")))
    evaluation = from_dict(EvaluateConfig, ctx.param("evaluate"), "evaluate")
    prepared, sources = prepare_benchmarks(evaluation, ctx.path("out_dir") / "benchmarks")
    missing = sorted(set(evaluation.datasets) - set(prepared))
    if missing:
        raise SystemExit(f"no problem file for {missing} ({sources}): set HUMANEVAL_OVERRIDE_PATH / MBPP_OVERRIDE_PATH")
    llm = SpecialistLLM(str(ctx.path("out_dir") / "specialists"), replace(evaluation.engine, adapter=None), "batched")
    metrics = {"k": config.k, "records": len(records), "cluster_sizes": [c["size"] for c in manifest["clusters"]],
               "steps": sum(c["steps"] for c in manifest["clusters"])}
    for dataset, bench in prepared.items():
        problems = bench.problems
        # routed by the user message a generation request carries (evalplus' chat prompt)
        queries = [messages[0]["content"] for messages in chat_prompts(problems, evaluation)]
        values, routes = llm.routed_response_nll([p["prompt"] for p in problems],
                                                 [p["prompt"] + p["canonical_solution"] for p in problems],
                                                 evaluation.nll_max_length, queries, evaluation.nll_batch_size)
        write_jsonl(ctx.path("out_dir") / f"nll-{dataset}.jsonl",
                    [{"task_id": p["task_id"], "nll": round(float(v), 6), "cluster": int(c)}
                     for p, v, c in zip(problems, values, routes)])
        metrics[f"{dataset}_canonical_nll"] = round(sum(values) / len(values), 6)
        metrics[f"{dataset}_routed"] = [routes.count(c) for c in range(config.k)]
        ctx.log.info("K=%d on %s: canonical NLL %.4f, routed %s", config.k, dataset, metrics[f"{dataset}_canonical_nll"],
                     metrics[f"{dataset}_routed"])
    return metrics


if __name__ == "__main__":
    run_stage(STAGE, work)

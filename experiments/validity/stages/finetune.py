"""Validity stage `finetune@<arm>`: the base model fine-tuned on the top k candidates of one
signal (same k, same steps for every arm; the `base` arm trains nothing), then the mean NLL of
every canonical solution of HumanEval+ and MBPP+ given its prompt, per task."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "finetune",
    "LoRA SFT on one signal's top k, then canonical-solution NLL on all HumanEval+ / MBPP+ tasks",
    foreach="arms",
    config="scoder.training.sft:TrainConfig",
    params=("arms.${key}", "evaluate"),
    inputs=(Input("selections", "data/signals/top_k.json", help="each signal's top k (the auc stage)"),
            Input("candidates_file", "data/candidates.jsonl")),
    outputs=(Output("out_dir", "data/downstream/${key}", folder=True),),
    metrics="metrics/finetune/${key}.json",
    paper="validity",
)


def work(ctx):
    from scoder.core.io import read_jsonl, write_jsonl
    from scoder.evaluation.benchmarks import EvaluateConfig, prepare_benchmarks
    from scoder.core.params import from_dict
    from scoder.training.sft import train_sft
    from scoder.validity.experiment import arm_llm, problems_nll, training_examples, write_manifest
    import json
    from collections import Counter

    config, out_dir = ctx.config, ctx.path("out_dir")
    signal = ctx.param(f"arms.{ctx.key}.signal")
    metrics = {"arm": ctx.key, "signal": signal or None}
    checkpoint = None
    if signal:
        selections = json.loads(ctx.path("selections").read_text(encoding="utf-8"))
        if signal not in selections:
            raise SystemExit(f"arms.{ctx.key}.signal '{signal}' is not among the measured signals ({', '.join(selections)})")
        by_id = {c["id"]: c for c in read_jsonl(ctx.path("candidates_file"))}
        picked = [by_id[i] for i in selections[signal]]
        write_jsonl(out_dir / "selected.jsonl", [{"id": c["id"], "label": c["label"], "corruption": c["corruption"]}
                                                 for c in picked])
        ctx.log.info("%s: fine-tuning %s on the top %d by %s (%d degraded)", ctx.key, config.model, len(picked), signal,
                     sum(c["label"] == 0 for c in picked))
        result = train_sft(training_examples(picked), config, out_dir)
        checkpoint = f"checkpoint-{result['checkpoints'][-1]['checkpoint']}"
        # what the arm learned from besides its labels: its source mix and size shape the NLL too
        metrics.update(selected=len(picked), selected_degraded=sum(c["label"] == 0 for c in picked),
                       selected_by_corruption=dict(sorted(Counter(c["corruption"] for c in picked).items())),
                       selected_by_source=dict(sorted(Counter(c["source"] for c in picked).items())),
                       selected_response_chars=sum(len(c["response"]) for c in picked),
                       dropped_too_long=result["dropped_too_long"], steps=result["steps"],
                       train_loss=round(result["train_loss"], 6), precision=result["precision"])
    write_manifest(out_dir, config.model, config.method, checkpoint, {"arm": ctx.key, "signal": signal or None})
    evaluation = from_dict(EvaluateConfig, ctx.param("evaluate"), "evaluate")
    prepared, sources = prepare_benchmarks(evaluation, out_dir / "benchmarks")
    llm, _ = arm_llm(out_dir, evaluation.engine)  # the model its manifest names, as pass@1 loads it
    for dataset, bench in prepared.items():
        values = problems_nll(llm, bench.problems, evaluation.nll_batch_size, evaluation.nll_max_length)
        write_jsonl(out_dir / f"nll-{dataset}.jsonl", values)
        metrics[f"{dataset}_canonical_nll"] = round(sum(v["nll"] for v in values) / len(values), 6)
        metrics[f"{dataset}_tasks"] = len(values)
        ctx.log.info("%s on %s: mean canonical NLL %.4f over %d tasks", ctx.key, dataset,
                     metrics[f"{dataset}_canonical_nll"], len(values))
    missing = sorted(set(evaluation.datasets) - set(prepared))
    if missing:
        raise SystemExit(f"no problem file for {missing} ({sources}): set HUMANEVAL_OVERRIDE_PATH / MBPP_OVERRIDE_PATH "
                         "(make validity does, from ../shared/data/benchmarks)")
    return metrics


if __name__ == "__main__":
    run_stage(STAGE, work)

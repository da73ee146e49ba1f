"""The work of experiments/validity's stages: each selection signal computed with the project's
own code on labelled candidates (the 10-aspect scorer and execution check of `score@R`, the
gradient features of `dp_features` / `influence@R`, seed 003's PPL / IFD baselines and its
parametric selector), then the top k of every signal fine-tuned and measured downstream."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from scoder.subset.parametric import ParametricConfig

log = logging.getLogger(__name__)


@dataclass
class BaselinesConfig:
    """The `baselines` params section: seed 003's PPL / IFD under the base model, random, and
    the parametric selector on sentence features of the instructions."""

    lm: str = "smollm2"
    lm_batch_size: int = 4
    max_length: int = 768
    embed_model: str = "minilm"
    feature_cache: str = ".cache/scoder/features"
    seed: int = 1234
    parametric: ParametricConfig = field(default_factory=ParametricConfig)


def training_examples(rows: Sequence[dict]) -> list[dict]:
    """Chat prompt-completion examples (instruction -> response) of candidates or D_p pairs."""
    return [{"id": r["id"], "prompt": [{"role": "user", "content": r["instruction"]}],
             "completion": [{"role": "assistant", "content": r["response"]}]} for r in rows]


def aspect_rows(scored: Sequence[dict], weights: Sequence[float] | None) -> list[dict]:
    """The three aggregates of the ten aspects (eq. 1 with the weights file, composite, mean)
    and the execution verdict, per candidate; None where the scorer gave no aspects."""
    from scoder.bootstrap.aspects import aggregate

    rows = []
    for record in scored:
        aspects = record.get("aspects")
        row = {"id": record["id"], "exec_ok": None if "exec_ok" not in record else int(bool(record["exec_ok"])),
               "exec_reason": record.get("exec_reason")}
        for name in ("weighted", "composite", "mean"):
            row[f"score_{name}"] = None if aspects is None else round(aggregate(aspects, name, weights if name == "weighted" else None), 6)
        rows.append(row)
    return rows


def baseline_rows(candidates: Sequence[dict], config: BaselinesConfig, k: int) -> tuple[list[dict], dict]:
    from scoder.models.features import encode_cached
    from scoder.models.llm import LLMConfig, load_llm
    from scoder.subset.baselines import ifd_scores, response_losses
    from scoder.subset.parametric import select_parametric

    llm = load_llm(LLMConfig(model=config.lm, use_cache=False))
    instructions = [c["instruction"] for c in candidates]
    conditioned, unconditioned = response_losses(llm, instructions, [c["response"] for c in candidates],
                                                 config.lm_batch_size, config.max_length)
    ifd = ifd_scores(conditioned, unconditioned)
    random_scores = np.random.default_rng(config.seed).random(len(candidates))
    features = encode_cached(instructions, config.embed_model, config.feature_cache)
    chosen = set(select_parametric(features, k, ParametricConfig(**{**config.parametric.__dict__, "seed": config.seed})).tolist())

    def value(x: float):
        return None if not np.isfinite(x) else round(float(x), 6)

    rows = [{"id": c["id"], "nll": value(conditioned[i]), "nll_unconditioned": value(unconditioned[i]),
             "ifd": value(ifd[i]), "random": round(float(random_scores[i]), 8), "parametric": int(i in chosen)}
            for i, c in enumerate(candidates)]
    return rows, {"candidates": len(rows), "parametric_selected": len(chosen), "lm": config.lm,
                  "nll_unscored": int(sum(r["nll"] is None for r in rows))}


def merge_signals(candidates: Sequence[dict], *tables: Sequence[dict]) -> list[dict]:
    """One row per candidate: its label and every signal column; a table missing a candidate is an error."""
    merged = {c["id"]: {"id": c["id"], "label": c["label"], "corruption": c["corruption"], "source": c["source"],
                        "response_chars": len(c["response"]), "source_is_mbpp": int(c["source"] == "mbpp")}
              for c in candidates}
    for number, table in enumerate(tables, start=1):
        seen = set()
        for index, row in enumerate(table, start=1):
            if "id" not in row:
                raise ValueError(f"signal table {number}, row {index}: no 'id'")
            if row["id"] not in merged:
                raise ValueError(f"signal row for unknown candidate {row['id']}")
            merged[row["id"]].update({k: v for k, v in row.items() if k != "id"})
            seen.add(row["id"])
        missing = sorted(set(merged) - seen)
        if missing:
            raise ValueError(f"a signal table lacks {len(missing)} candidates, e.g. {missing[:3]}")
    return list(merged.values())


def problems_nll(llm, problems: Sequence[dict], batch_size: int, max_length: int) -> list[dict]:
    from scoder.evaluation.benchmarks import solution_nll

    values = solution_nll(llm, list(problems), batch_size, max_length)
    return [{"task_id": p["task_id"], "nll": round(float(v), 6)} for p, v in zip(problems, values)]


def write_manifest(out_dir: Path, base_model: str, method: str, checkpoint: str | None, extra: dict) -> None:
    import json

    (out_dir / "model.json").write_text(json.dumps({"base_model": base_model, "method": method, "adapter": checkpoint,
                                                    **extra}, indent=2) + "\n", encoding="utf-8")



def best_arm(downstream: Path, dataset: str, arms: Sequence[str]) -> tuple[str, float]:
    """(arm, mean canonical NLL on `dataset`) of the signal arm with the lowest such NLL among
    `arms`' folders under `downstream` (the base model and random are not signals; folders of
    arms no longer in `arms` are ignored); ties go to the first name. Every signal arm must have
    a finite NLL on `dataset`: choosing among some of them would be another choice."""
    import json
    import math

    from scoder.core.io import read_jsonl

    scored, missing = [], []
    for name in sorted(arms):
        manifest = Path(downstream) / name / "model.json"
        if not manifest.exists():
            missing.append(name)
            continue
        arm = json.loads(manifest.read_text(encoding="utf-8"))
        if arm.get("signal") in (None, "", "random"):
            continue
        nll_file = manifest.parent / f"nll-{dataset}.jsonl"
        if not nll_file.exists():
            present = sorted(f.stem[len("nll-"):] for f in manifest.parent.glob("nll-*.jsonl"))
            raise SystemExit(f"arm {name} has no canonical NLL on '{dataset}' ({nll_file}); pass_at_1.choose_by must be "
                             f"one of {present}")
        values = [row["nll"] for row in read_jsonl(nll_file)]
        mean = sum(values) / len(values) if values else math.nan
        if not math.isfinite(mean):
            raise SystemExit(f"arm {name}: mean canonical NLL on {dataset} is {mean} ({nll_file}): a task without "
                             "solution tokens, or an empty file")
        scored.append((mean, name))
    if missing:
        raise SystemExit(f"arms {missing} have no model under {downstream}: run their finetune stages first")
    if not scored:
        raise SystemExit(f"no signal arm among {sorted(arms)} under {downstream}: nothing to choose the best from")
    nll, arm = min(scored)
    return arm, nll


def pass_at_1_evaluation(evaluate: dict, datasets: Sequence[str], engine: dict | None):
    """The evaluate settings for pass@1 answers: `evaluate` with `engine` over its engine, one
    benchmark, no NLL; greedy and one answer per task, or a clear error."""
    from dataclasses import replace

    from scoder.core.params import from_dict
    from scoder.evaluation.benchmarks import EvaluateConfig

    evaluation = from_dict(EvaluateConfig, evaluate, "evaluate")
    merged = from_dict(type(evaluation.engine), {**evaluate.get("engine", {}), **(engine or {})}, "pass_at_1.engine")
    evaluation = replace(evaluation, datasets=list(datasets), nll=False, engine=merged)
    if len(evaluation.datasets) != 1:
        raise SystemExit(f"pass_at_1.datasets is {evaluation.datasets}: one benchmark per run")
    if evaluation.sampling.n != 1 or evaluation.sampling.temperature != 0:
        raise SystemExit(f"evaluate.sampling is n={evaluation.sampling.n}, temperature={evaluation.sampling.temperature}: "
                         "pass@1 here is greedy (n: 1, temperature: 0)")
    return evaluation


def arm_llm(folder: Path, engine):
    """The model of one arm's folder (its model.json): the base model, or it with its adapter."""
    import json

    from scoder.models.finetuned import finetuned_engine
    from scoder.models.llm import load_llm

    manifest = json.loads((Path(folder) / "model.json").read_text(encoding="utf-8"))
    adapter = str(Path(folder) / manifest["adapter"]) if manifest["adapter"] else None
    return load_llm(finetuned_engine(engine, manifest["base_model"], manifest["method"], adapter)), manifest


def greedy_pass_at_1(llm, name: str, evaluation, out_dir: Path, samples: int, seed: int, log=logging.getLogger(__name__)) -> dict:
    """Greedy answers of `llm` to every task of the one benchmark, judged by the evaluate path
    (evalplus prompt, sanitizer, sandboxed base and plus tests); per task passed.jsonl, and
    pass@1 with bootstrap 95% intervals over tasks."""
    from scoder.core.io import read_jsonl, write_jsonl
    from scoder.evaluation.benchmarks import evaluate_llm, prepare_benchmarks
    from scoder.validity.signals import bootstrap_mean

    prepared, sources = prepare_benchmarks(evaluation, out_dir)
    dataset = evaluation.datasets[0]
    if dataset not in prepared:
        raise SystemExit(f"no problem file for {dataset} ({sources}): set {dataset.upper()}_OVERRIDE_PATH")
    metrics = {"dataset": dataset, "tasks": len(prepared[dataset].problems), "decoder": evaluation.engine.decoder}
    log.info("%s: greedy answers to %d %s tasks (%s decoder)", name, metrics["tasks"], dataset, evaluation.engine.decoder)
    metrics.update(evaluate_llm(llm, name, prepared[dataset], evaluation))
    rows = read_jsonl(prepared[dataset].folder / f"{name}-samples.jsonl")
    unjudged = [r["task_id"] for r in rows if r.get("plus_status") is None]
    if unjudged:  # a plus verdict missing would read as a failure
        raise SystemExit(f"{len(unjudged)} answers have no plus-test verdict (first {unjudged[0]}): evalplus' problem file "
                         f"is needed ({sources})")
    passed = [{"task_id": r["task_id"], "base": r["base_status"] == "pass",
               "plus": r["base_status"] == r["plus_status"] == "pass"} for r in rows]
    write_jsonl(Path(out_dir) / "passed.jsonl", passed)
    for which in ("base", "plus"):
        mean, low, high = bootstrap_mean([float(p[which]) for p in passed], samples, seed)
        metrics[f"{which}_pass@1"] = round(mean, 4)
        metrics[f"{which}_pass@1_low"], metrics[f"{which}_pass@1_high"] = round(low, 4), round(high, 4)
    log.info("%s: pass@1 %.3f (plus %.3f)", name, metrics["base_pass@1"], metrics["plus_pass@1"])
    return metrics

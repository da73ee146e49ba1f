"""DVC stage `specialist_evaluate`: HumanEval(+) through the evaluate code path with routed
generation: each problem is embedded, sent to the nearest cluster's adapter, and pass@k is
measured per pass (seed 002 Table 3: pass@1 at temperature 0.2, pass@10 at 0.8, unbiased
estimator). Compare K=1 with K>1 as DVC experiments (`dvc exp run -S specialists.k=1`)."""

from __future__ import annotations

import logging
from dataclasses import replace

from scoder.core.stage import load_section, quiet_threads, setup_logging, stage_parser

quiet_threads()

from scoder.evaluation.benchmarks import evaluate_llm, evaluation_meta, prepare_benchmarks  # noqa: E402
from scoder.core.io import atomic_dir, write_json  # noqa: E402
from scoder.core.params import from_dict  # noqa: E402
from scoder.kspecialist.specialists import SpecialistEvaluateConfig, SpecialistLLM  # noqa: E402
from scoder.core.tracking import stage_run  # noqa: E402

log = logging.getLogger("stage.specialist_evaluate")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--specialists", required=True, help="folder written by the specialists stage")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args()
    setup_logging()
    params, section = load_section(args.params, "specialist_evaluate")
    config = from_dict(SpecialistEvaluateConfig, section, "specialist_evaluate")
    with stage_run("specialist_evaluate", {"specialist_evaluate": section}, args.params) as run, \
            atomic_dir(args.out_dir) as work:
        llm = SpecialistLLM(args.specialists, config.engine, config.mode)
        k = llm.manifest["k"]
        prepared, metrics = prepare_benchmarks(config, work)
        for dataset, bench in prepared.items():
            for setting in config.passes:
                name = f"pass{setting.k}"
                sampling = replace(config.sampling, n=setting.n, temperature=setting.temperature)
                log.info("K=%d (%s) on %s, %s: %d tasks x %d samples at temperature %s", k, config.mode, dataset, name,
                         len(bench.problems), setting.n, setting.temperature)
                llm.routed = [0] * k
                summary = evaluate_llm(llm, name, bench, replace(config, sampling=sampling, ks=[setting.k]))
                metrics[dataset][name] = {**summary, "n": setting.n, "temperature": setting.temperature,
                                          "routed": {str(c): count for c, count in enumerate(llm.routed)}}
                log.info("%s %s: %s", dataset, name, summary)
        metrics["k"] = k
        write_json(args.metrics, {**metrics, "meta": {**evaluation_meta(config), "mode": config.mode,
                                                       "specialists": llm.manifest}})
        run.log_metrics(metrics)
        run.log_artifact(args.metrics)


if __name__ == "__main__":
    main()

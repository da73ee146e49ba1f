"""DVC stage `pool`: build the clean snippet pool (SCoder appendix A)."""

from __future__ import annotations

import logging
from pathlib import Path

from scoder.core.stage import quiet_threads, setup_logging, stage_parser, load_section

quiet_threads()

from scoder.core.cost import usage_entry, write_ledger_entry  # noqa: E402
from scoder.core.io import write_json, write_jsonl  # noqa: E402
from scoder.core.params import from_dict  # noqa: E402
from scoder.bootstrap.pool.build import build_pool  # noqa: E402
from scoder.bootstrap.pool.config import PoolConfig  # noqa: E402
from scoder.core.tracking import stage_run  # noqa: E402

log = logging.getLogger("stage.pool")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--out-dir", default="data/pool")
    parser.add_argument("--metrics", default="metrics/pool.json")
    parser.add_argument("--ledger", default="metrics/cost/pool.json")
    args = parser.parse_args()
    setup_logging()
    params, section = load_section(args.params, "pool")
    config = from_dict(PoolConfig, section, "pool")
    out = Path(args.out_dir)

    with stage_run("pool", {"seed": params.get("seed"), "pool": section}, args.params) as run:
        scorer = None
        llm = None
        if config.quality.method == "lm":
            from scoder.models.llm import LLMConfig, load_llm
            from scoder.bootstrap.pool.quality import quality_scores

            llm = load_llm(LLMConfig(model=config.quality.model, batch_size=config.quality.batch_size))
            scorer = lambda snippets: quality_scores(  # noqa: E731
                llm, snippets, config.quality.max_code_chars, config.quality.batch_size
            )
        log.info("building the snippet pool from %s", config.source)
        result = build_pool(config, scorer)
        write_jsonl(out / "snippets.jsonl", result.snippets)
        write_jsonl(out / "skipped_files.jsonl", result.skipped_files)
        write_jsonl(out / "removed.jsonl", result.removed)
        write_json(args.metrics, result.metrics)
        write_ledger_entry(args.ledger, usage_entry("pool", "quality_classifier", config.quality.model, "transformers", llm.usage if llm else None))
        run.log_metrics(result.metrics)
        run.log_artifact(args.metrics)
        m = result.metrics
        log.info(
            "%d files, %d documented functions -> %d after filters -> %d after near-dedup -> %d snippets (%.1fs)",
            m["files_seen"], m["functions_found"], m["after_filter"], m["after_near_dedup"], m["snippets"], m["seconds"]["total"],
        )


if __name__ == "__main__":
    main()

"""DVC stage `categorize`: label snippets with task categories by embedding and sample seeds."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from scoder.core.stage import quiet_threads, setup_logging, stage_parser, load_section

quiet_threads()

import numpy as np  # noqa: E402

from scoder.core.cost import usage_entry, write_ledger_entry  # noqa: E402
from scoder.bootstrap.categorize import CategorizeConfig, assign_categories, sample_per_category  # noqa: E402
from scoder.models.embed import embed_texts, load_embedder  # noqa: E402
from scoder.core.io import read_jsonl, write_json, write_jsonl, write_npy  # noqa: E402
from scoder.core.params import from_dict  # noqa: E402
from scoder.core.tracking import stage_run  # noqa: E402

log = logging.getLogger("stage.categorize")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--snippets", default="data/pool/snippets.jsonl")
    parser.add_argument("--out-dir", default="data/categorize")
    parser.add_argument("--metrics", default="metrics/categorize.json")
    parser.add_argument("--ledger", default="metrics/cost/categorize.json")
    args = parser.parse_args()
    setup_logging()
    params, section = load_section(args.params, "categorize")
    config = from_dict(CategorizeConfig, section, "categorize")
    seed = int(params.get("seed", 0))
    out = Path(args.out_dir)

    with stage_run("categorize", {"seed": seed, "categorize": section}, args.params) as run:
        snippets = read_jsonl(args.snippets)
        log.info("embedding %d snippets and %d categories with %s", len(snippets), len(config.categories), config.model)
        model = load_embedder(config.model, config.pool_without_prompt)
        snippet_vectors = embed_texts(
            model, [s["code"][: config.max_chars] for s in snippets], config.snippet_prompt, config.batch_size, progress=True
        )
        category_vectors = embed_texts(model, config.categories, config.category_prompt, config.batch_size)
        best, cosine = assign_categories(snippet_vectors, category_vectors)
        for snippet, index, score in zip(snippets, best, cosine):
            snippet["category"] = config.categories[int(index)]
            snippet["meta"]["category_cosine"] = round(float(score), 6)
        labels = [s["category"] for s in snippets]

        accept = None
        llm = None
        if config.quality.method == "lm":
            from scoder.models.llm import LLMConfig, load_llm
            from scoder.bootstrap.pool.quality import quality_scores

            llm = load_llm(LLMConfig(model=config.quality.model, batch_size=config.quality.batch_size))

            def accept(indices: list[int]) -> list[bool]:
                batch = [snippets[i] for i in indices]
                scores = quality_scores(llm, batch, config.quality.max_code_chars, config.quality.batch_size)
                for snippet, score in zip(batch, scores):
                    snippet["meta"]["quality"] = round(float(score), 6)
                return [score >= config.quality.threshold for score in scores]

        elif config.quality.method != "none":
            raise ValueError(f"unknown categorize.quality.method '{config.quality.method}' (expected none or lm)")

        chosen, stats = sample_per_category(labels, config.categories, config.per_category, seed, accept, config.quality.batch_size)
        seeds = [snippets[i] for i in chosen]

        write_jsonl(out / "snippets.jsonl", snippets)
        write_jsonl(out / "seeds.jsonl", seeds)
        write_npy(out / "embeddings.npy", snippet_vectors)
        write_npy(out / "category_embeddings.npy", category_vectors)
        counts = Counter(labels)
        metrics = {
            "snippets": len(snippets),
            "seeds": len(seeds),
            "model": config.model,
            "quality_method": config.quality.method,
            "quality_evaluated": sum(s["evaluated"] for s in stats.values()),
            "quality_rejected": sum(s["rejected"] for s in stats.values()),
            "per_category": {c: counts.get(c, 0) for c in config.categories},
            "seeds_per_category": {c: stats[c]["chosen"] for c in config.categories},
            "mean_category_cosine": round(float(np.mean(cosine)) if len(cosine) else 0.0, 6),
        }
        write_json(args.metrics, metrics)
        write_ledger_entry(args.ledger, usage_entry("categorize", "quality_classifier", config.quality.model, "transformers", llm.usage if llm else None))
        run.log_metrics(metrics)
        run.log_artifact(args.metrics)
        log.info("labelled %d snippets; sampled %d seeds: %s", len(snippets), len(seeds), metrics["seeds_per_category"])


if __name__ == "__main__":
    main()

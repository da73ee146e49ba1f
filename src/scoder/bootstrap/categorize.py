"""Task categories by embedding (SCoder 3.2 and appendix B) and diversified seed sampling.

Each snippet goes to the category whose description is most similar (cosine) to it; then up
to `per_category` snippets are drawn per category in a seeded random order. When the LM
quality classifier is enabled here, candidates are classified lazily in that order until a
category's quota is filled, so only the sampled snippets (and the rejected ones met on the
way) pay for the model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from scoder.bootstrap.pool.config import QualityConfig

# Magicoder's ten task categories, used verbatim by SCoder (appendix B).
TASK_CATEGORIES = [
    "Algorithmic and Data Structure Problems",
    "Mathematical and Computational Problems",
    "Database and SQL Problems",
    "System Design and Architecture Problems",
    "Security and Cryptography Problems",
    "Performance Optimization Problems",
    "Web Problems",
    "Domain Specific Problems",
    "User Interface and Application Design Problems",
    "Data Science and Machine Learning Problems",
]


@dataclass
class CategorizeConfig:
    model: str = "minilm"
    categories: list[str] = field(default_factory=lambda: list(TASK_CATEGORIES))
    snippet_prompt: str = ""  # INSTRUCTOR: e.g. "Represent the Python code for classification: "
    category_prompt: str = ""
    pool_without_prompt: bool = False  # True for INSTRUCTOR checkpoints
    max_chars: int = 2000  # the embedding model truncates anyway; this bounds tokenisation
    per_category: int = 5
    batch_size: int = 64
    quality: QualityConfig = field(default_factory=QualityConfig)


def assign_categories(snippet_vectors: np.ndarray, category_vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(argmax category index, its cosine) for L2-normalised inputs."""
    similarity = snippet_vectors @ category_vectors.T
    best = similarity.argmax(axis=1)
    return best, similarity[np.arange(len(best)), best]


def sample_per_category(
    labels: Sequence[str],
    categories: Sequence[str],
    per_category: int,
    seed: int,
    accept: Callable[[list[int]], list[bool]] | None = None,
    batch_size: int = 8,
) -> tuple[list[int], dict[str, dict[str, int]]]:
    """Indices of up to `per_category` items per category, in a seeded order.

    `accept(indices) -> flags` is an optional lazy filter (the LM classifier) applied in
    batches to candidates in sampling order. Returns (sorted chosen indices, per-category
    stats: available, evaluated, rejected, chosen)."""
    chosen: list[int] = []
    stats: dict[str, dict[str, int]] = {}
    for category in categories:
        members = [i for i, label in enumerate(labels) if label == category]
        # one RNG per category, seeded from (seed, category), so quotas are independent
        random.Random(f"{seed}:{category}").shuffle(members)
        picked: list[int] = []
        evaluated = rejected = 0
        position = 0
        while len(picked) < per_category and position < len(members):
            if accept is None:
                take = members[position : position + per_category - len(picked)]
                picked.extend(take)
                position += len(take)
                continue
            batch = members[position : position + batch_size]
            position += len(batch)
            flags = accept(batch)
            evaluated += len(batch)
            for index, ok in zip(batch, flags):
                if not ok:
                    rejected += 1
                elif len(picked) < per_category:
                    picked.append(index)
        stats[category] = {"available": len(members), "evaluated": evaluated, "rejected": rejected, "chosen": len(picked)}
        chosen.extend(picked)
    return sorted(chosen), stats


@dataclass
class Categorized:
    snippets: list[dict]  # every snippet, with its category (and quality where classified)
    seeds: list[dict]  # the sampled distillation seeds
    snippet_vectors: np.ndarray
    category_vectors: np.ndarray
    metrics: dict
    llm_usage: dict | None  # the quality classifier's usage counters (None: no model called)


def categorize_snippets(snippets: list[dict], config: CategorizeConfig, seed: int) -> Categorized:
    """Label every snippet with its nearest category, then sample `per_category` seeds per
    category, classifying quality lazily in the sampled order when `quality.method` is lm."""
    from collections import Counter

    from scoder.models.embed import embed_texts, load_embedder

    model = load_embedder(config.model, config.pool_without_prompt)
    snippet_vectors = embed_texts(model, [s["code"][: config.max_chars] for s in snippets], config.snippet_prompt,
                                  config.batch_size, progress=True)
    category_vectors = embed_texts(model, config.categories, config.category_prompt, config.batch_size)
    best, cosine = assign_categories(snippet_vectors, category_vectors)
    for snippet, index, score in zip(snippets, best, cosine):
        snippet["category"] = config.categories[int(index)]
        snippet["meta"]["category_cosine"] = round(float(score), 6)
    labels = [s["category"] for s in snippets]

    accept = None  # no quality check: every sampled snippet is a seed
    llm = None
    if config.quality.method == "lm":
        from scoder.bootstrap.pool.quality import quality_scores
        from scoder.models.llm import LLMConfig, load_llm

        llm = load_llm(LLMConfig(model=config.quality.model, batch_size=config.quality.batch_size,
                                   precision=config.quality.precision))

        def accept(indices: list[int]) -> list[bool]:
            batch = [snippets[i] for i in indices]
            scores = quality_scores(llm, batch, config.quality.max_code_chars, config.quality.batch_size)
            for snippet, score in zip(batch, scores):
                snippet["meta"]["quality"] = round(float(score), 6)
            return [score >= config.quality.threshold for score in scores]

    elif config.quality.method != "none":
        raise ValueError(f"unknown categorize.quality.method '{config.quality.method}' (expected none or lm)")

    chosen, stats = sample_per_category(labels, config.categories, config.per_category, seed, accept, config.quality.batch_size)
    counts = Counter(labels)
    metrics = {
        "snippets": len(snippets),
        "seeds": len(chosen),
        "model": config.model,
        "quality_method": config.quality.method,
        "quality_evaluated": sum(s["evaluated"] for s in stats.values()),
        "quality_rejected": sum(s["rejected"] for s in stats.values()),
        "per_category": {c: counts.get(c, 0) for c in config.categories},
        "seeds_per_category": {c: stats[c]["chosen"] for c in config.categories},
        "mean_category_cosine": round(float(np.mean(cosine)) if len(cosine) else 0.0, 6),
    }
    return Categorized(snippets, [snippets[i] for i in chosen], snippet_vectors, category_vectors, metrics,
                       llm.usage if llm else None)

"""Select m records of an instruction dataset with one method, and measure the subset."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field


from scoder.subset.baselines import ifd_scores, response_losses, select_by_score, select_kcenter, select_random
from scoder.models.features import encode_cached, instruction_text
from scoder.subset.parametric import ParametricConfig, select_parametric
from scoder.subset.quality import coverage, diversity

log = logging.getLogger(__name__)

METHODS = ("parametric", "random", "kcenter", "ppl_low", "ppl_high", "ifd")


@dataclass
class SelectConfig:
    input: str = "data/distill/samples.jsonl"  # JSON / JSONL file
    text_fields: list[str] = field(default_factory=lambda: ["instruction"])  # first non-empty is the instruction
    response_fields: list[str] = field(default_factory=lambda: ["output"])  # for ppl / ifd
    method: str = "parametric"
    size: int = 1000
    model: str = "minilm"  # sentence-transformers model for features (paper: all-mpnet-base-v2)
    lm: str = "smollm2"  # language model for ppl / ifd
    lm_batch_size: int = 4
    lm_precision: str = "fp32"  # of the ppl / ifd model's weights: fp32 | bf16 | auto
    seed: int = 0
    feature_cache: str = ".cache/scoder/features"
    parametric: ParametricConfig = field(default_factory=ParametricConfig)


def select_records(records: list[dict], config: SelectConfig) -> tuple[list[dict], dict]:
    if config.method not in METHODS:
        raise ValueError(f"unknown subset.method '{config.method}' (expected one of {', '.join(METHODS)})")
    n = len(records)
    if n == 0:
        raise ValueError(f"select: the input {config.input} holds no records")
    if config.size < 1:
        raise ValueError(f"subset.size must be at least 1, got {config.size}")
    # the size is an upper bound: upstream stages decide how many records arrive
    m = min(config.size, n)
    if m < config.size:
        log.warning("subset.size is %d but the dataset has %d records: keeping all of them", config.size, n)
    texts = [instruction_text(r, config.text_fields) for r in records]
    features = encode_cached(texts, config.model, config.feature_cache)
    start = time.perf_counter()
    if config.method == "parametric":
        chosen = select_parametric(features, m, ParametricConfig(**{**config.parametric.__dict__, "seed": config.seed}))
    elif config.method == "random":
        chosen = select_random(n, m, config.seed)
    elif config.method == "kcenter":
        chosen = select_kcenter(features, m, config.seed)
    else:
        from scoder.models.llm import LLMConfig, load_llm

        llm = load_llm(LLMConfig(model=config.lm, use_cache=False, precision=config.lm_precision))
        responses = [instruction_text(r, config.response_fields) for r in records]
        conditioned, unconditioned = response_losses(llm, texts, responses, config.lm_batch_size)
        if config.method == "ifd":
            chosen = select_by_score(ifd_scores(conditioned, unconditioned), m, highest=True)
        else:
            chosen = select_by_score(conditioned, m, highest=config.method == "ppl_high")
    seconds = time.perf_counter() - start
    selected = [{**records[i], "selection_rank": rank} for rank, i in enumerate(chosen.tolist())]
    metrics = {
        "method": config.method,
        "dataset_size": n,
        "requested": config.size,
        "selected": len(selected),
        "coverage": round(coverage(features, chosen), 6),
        "diversity_mean_cosine": round(diversity(features, chosen), 6),
        "random_coverage": round(coverage(features, select_random(n, len(chosen), config.seed)), 6),
        "seconds": round(seconds, 3),
        "feature_model": config.model,
    }
    return selected, metrics

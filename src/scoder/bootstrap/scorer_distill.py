"""Scorer distillation (SCoder appendix C): the teacher judges instruction pairs with the
Figure-7 prompt, and a smaller model is fine-tuned on the judge outputs that parse, so
`score.scorer` can be the trained scorer (base model + `adapter`) instead of the teacher.

Judge outputs that do not parse are counted and not trained on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Sequence

from scoder.bootstrap.scoring import ScoreConfig, score_candidates, scoring_pair
from scoder.models.llm.base import LLMConfig, SamplingParams, load_llm
from scoder.bootstrap.prompts import scoring_prompt
from scoder.training.sft import TrainConfig, train_sft

log = logging.getLogger(__name__)


@dataclass
class ScorerDistillConfig:
    teacher: LLMConfig = field(default_factory=LLMConfig)  # paper: GPT-4o through the openai backend
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=0.0, max_tokens=512))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(num_checkpoints=1))  # paper: Llama3.1-8B, 3 epochs, 1e-5
    include_unparsed: bool = False
    max_chars: int = 3000
    chunk_size: int = 8


def judged_examples(llm, records: Sequence[dict], config: ScorerDistillConfig) -> tuple[list[dict], dict]:
    """Prompt-completion examples from the teacher's parsable judge outputs, and metrics."""
    judge = ScoreConfig(scorer=config.teacher, mode="generate", sampling=config.sampling, aggregate="mean",
                        execution="off", include_unparsed=config.include_unparsed, max_chars=config.max_chars,
                        chunk_size=config.chunk_size)
    scored, _, metrics = score_candidates(llm, records, judge)
    examples = []
    for record in scored:
        if not record["score_parse_ok"]:
            continue
        pair = scoring_pair(record, config.include_unparsed, config.max_chars)
        examples.append({"id": record.get("id"),
                         "prompt": [{"role": "user", "content": scoring_prompt(*pair)}],
                         "completion": [{"role": "assistant", "content": record["judge_raw"].strip()}]})
    keep = ("candidates", "scored", "score_parse_ok", "score_parse_rate", "score_failures")
    return examples, {k: metrics[k] for k in keep}


def distill_scorer(records: Sequence[dict], config: ScorerDistillConfig, out_dir) -> dict:
    teacher = load_llm(config.teacher)
    examples, metrics = judged_examples(teacher, records, config)
    if not examples:
        raise ValueError(f"the teacher's judge outputs parsed for none of {metrics['scored']} pairs "
                         f"({metrics['score_failures']}): nothing to distill")
    log.info("training the scorer %s on %d teacher judgements", config.train.model, len(examples))
    result = train_sft(examples, replace(config.train, num_checkpoints=1), out_dir)
    metrics.update(examples=len(examples), steps=result["steps"], train_loss=round(result["train_loss"], 6))
    return metrics

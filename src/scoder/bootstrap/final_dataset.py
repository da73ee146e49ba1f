"""Final synthesis (SCoder section 4.1): the last round's synthesizer turns a fresh set of
pool snippets into the instruction dataset the code model is fine-tuned on.

The snippets follow those of every bootstrap round in the same seeded pool order, so the
final dataset never reuses a snippet a round (or the distillation) has seen. Only parsed
samples enter the dataset and, with `execution: filter`, only those whose code runs in the
sandbox; every rejected sample is counted by reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from scoder.bootstrap.distill import GenerationConfig, synthesize_samples
from scoder.bootstrap.manifest import check_engine_model
from scoder.models.finetuned import finetuned_engine
from scoder.models.llm.base import LLMConfig, SamplingParams, load_llm
from scoder.bootstrap.rounds import RoundSpec, seeded_order
from scoder.execution.sandbox import SandboxConfig, isolation_level

log = logging.getLogger(__name__)


@dataclass
class SynthesizeConfig(GenerationConfig):
    """The `synthesize` section: the last synthesizer's generation settings and the execution check."""

    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(n=1, temperature=0.0, max_tokens=1024))
    synthesizer: str = "2"  # train@K key; its last checkpoint writes the dataset
    size: int = 60000  # snippets (paper: 60K)
    engine: LLMConfig = field(default_factory=LLMConfig)  # backend settings; model and adapter come from train@K
    execution: str = "filter"  # off | filter (keep samples whose code runs) | annotate (record, keep all)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    exec_workers: int = 2


def final_snippets(pool: Sequence[dict], exclude_ids: set[str], rounds: dict[str, RoundSpec], size: int, seed: int) -> list[dict]:
    """`size` snippets after those of every round in the seeded pool order."""
    order = seeded_order(pool, exclude_ids, seed)
    offset = sum(spec.snippets for spec in rounds.values())
    chosen = order[offset : offset + size]
    if len(chosen) < size:
        raise ValueError(f"synthesize.size is {size} but the pool has {max(0, len(order) - offset)} snippets left "
                         f"after the distillation seeds and the rounds' {offset}")
    return chosen


def synthesize_dataset(synthesizer: dict, snippets: Sequence[dict], config: SynthesizeConfig) -> tuple[list[dict], list[dict], dict]:
    """(dataset rows, every generated sample with its verdict, metrics). A dataset row is
    {id, instruction, response, code, snippet_id, category} (plus exec fields when checked)."""
    from scoder.bootstrap.scoring import execution_check

    if config.execution not in ("off", "filter", "annotate"):
        raise ValueError(f"unknown synthesize.execution '{config.execution}' (expected off, filter or annotate)")
    check_engine_model(config.engine, synthesizer, "synthesize")
    last = synthesizer["checkpoints"][-1]
    engine = finetuned_engine(config.engine, synthesizer["base_model"], synthesizer.get("method", "lora"), last)
    samples, gen_metrics = synthesize_samples(load_llm(engine), snippets, config, f"synthesizer-{synthesizer['key']}",
                                              desc="synthesize")
    rejected: Counter = Counter()
    parsed = [s for s in samples if s["parse_ok"]]
    for sample in samples:
        if not sample["parse_ok"]:
            rejected[f"unparsed:{sample['reason']}"] += 1
    if config.execution != "off" and parsed:
        checks = execution_check(parsed, config.sandbox, config.exec_workers)
        for sample, check in zip(parsed, checks):
            sample.update(check)
    rows = []
    for sample in parsed:
        if config.execution == "filter" and not sample.get("exec_ok"):
            rejected[f"execution:{sample.get('exec_reason')}"] += 1
            continue
        row = {"id": sample["id"], "instruction": sample["problem"], "response": sample["solution"], "code": sample["code"],
               "snippet_id": sample["snippet_id"], "category": sample["category"]}
        if config.execution != "off":
            row.update(exec_ok=sample.get("exec_ok"), exec_reason=sample.get("exec_reason"))
        rows.append(row)
    exec_ok = sum(bool(s.get("exec_ok")) for s in parsed)
    metrics = {
        "precision": gen_metrics["precision"],
        "synthesizer": synthesizer["key"],
        "checkpoint": last.rsplit("/", 1)[-1],
        "snippets": len(snippets),
        "samples": len(samples),
        "parse_ok": gen_metrics["parse_ok"],
        "parse_rate": gen_metrics["parse_rate"],
        "generation": gen_metrics["generation"],
        "code_compiles": gen_metrics["code_compiles"],
        "execution": config.execution,
        "exec_ok": exec_ok if config.execution != "off" else None,
        "isolation": isolation_level(config.sandbox) if config.execution != "off" else None,
        "dataset_size": len(rows),
        "rejected": dict(sorted(rejected.items())),
        "tokens_in": gen_metrics["tokens_in"],
        "tokens_out": gen_metrics["tokens_out"],
        "seconds": gen_metrics["seconds"],
    }
    return rows, samples, metrics

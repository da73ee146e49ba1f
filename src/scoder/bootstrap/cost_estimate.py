"""`scoder cost estimate`: the bill of a params profile before anything is paid (no model is
called).

For every paid model role (an API backend, or a local stand-in priced with `price_as`) it
counts the requests the profile implies, measures their prompt tokens on real prompts (the
synthesis and scoring templates filled with snippets from the pool, or from this Python's
standard library when there is no pool yet) and assumes their answer tokens (`--answer-tokens`,
capped at the stage's `max_tokens`), then prices both at the list and the batch rate of the
price table. What is measured and what is assumed is printed with the table.

Prompt tokens are counted with the shipped SmolLM2 tokenizer (a 49K-vocabulary byte-level
BPE) as a stand-in for the API model's own (GPT-4o's o200k is not available offline); on code
both give counts within a few tens of percent of each other.
"""

from __future__ import annotations

import random
import sysconfig
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from scoder.core.prices import LOCAL_BACKENDS, price_for, token_counter

# assumed answer lengths (tokens) when --answer-tokens does not say: a synthesis answer is a
# problem description and a solution with code; a judgement is a short reason and 10 scores
ASSUMED_ANSWER_TOKENS = {"teacher": 600, "scorer": 250}
SCORER_DISTILL_RECORDS = 10_000  # SCoder appendix C: 2.5K samples from each of 4 sources


@dataclass
class Row:
    stage: str
    role: str
    model: str
    backend: str
    requests: int
    prompt_tokens: int  # measured (mean per request x requests)
    answer_tokens: int  # assumed
    price_row: str
    list_usd: float
    batch_usd: float
    notes: list[str] = field(default_factory=list)

    @property
    def billed_usd(self) -> float:
        """At the rate the profile's backend is billed (batch for openai-batch)."""
        return self.batch_usd if self.backend == "openai-batch" else self.list_usd


def sample_snippets(pool_file: str | Path | None, limit: int = 400, seed: int = 0) -> tuple[list[dict], str]:
    """Snippets to measure prompts on, and where they came from."""
    from scoder.core.io import read_jsonl

    if pool_file and Path(pool_file).exists():
        snippets = read_jsonl(pool_file)
        where = f"{len(snippets)} pool snippets ({pool_file})"
    else:
        from scoder.bootstrap.pool.extract import extract_functions

        files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
        snippets = []
        for path in files:
            try:
                source = path.read_text(encoding="utf-8")
                functions = extract_functions(source, str(path))
            except (SyntaxError, UnicodeDecodeError):
                continue
            imports_of = lambda f: "\n".join(f.imports)  # noqa: E731
            snippets += [{"code": f.code, "imports": imports_of(f)} for f in functions if 4 <= f.code.count("\n") <= 120]
        where = f"{len(snippets)} documented stdlib functions (no pool file at {pool_file})"
    rng = random.Random(seed)
    if len(snippets) > limit:
        snippets = rng.sample(snippets, limit)
    return snippets, where


def _mean(values: Sequence[int]) -> float:
    return sum(values) / len(values) if values else 0.0


def _row(stage: str, role: str, llm, requests: int, prompt_mean: float, answer: int, max_tokens: int,
         notes: list[str]) -> Row | None:
    if llm.backend in LOCAL_BACKENDS and not llm.price_as:
        return None  # a local model is not billed per token
    answer = min(answer, max_tokens) if max_tokens else answer
    prompt_total = round(prompt_mean * requests)
    answer_total = answer * requests
    sync, batch = price_for(llm, "sync"), price_for(llm, "batch")
    if llm.backend in LOCAL_BACKENDS:
        notes = notes + [f"local stand-in, priced as {llm.price_as}"]
    if llm.backend == "dataset":
        notes = notes + ["recorded teacher: nothing is paid; what the same requests would cost"]
    return Row(stage, role, llm.model, llm.backend, requests, prompt_total, answer_total, sync.row,
               round(sync.cost(prompt_total, answer_total), 2), round(batch.cost(prompt_total, answer_total), 2), notes)


def estimate(params: dict, pool_file: str | Path | None = "data/pool/snippets.jsonl",
             answer_tokens: dict[str, int] | None = None) -> tuple[list[Row], dict]:
    """Rows of the paid stages of `params` (a merged params mapping) and what was measured."""
    from scoder.bootstrap.categorize import CategorizeConfig
    from scoder.bootstrap.distill import DistillConfig, snippet_text
    from scoder.bootstrap.prompts import scoring_prompt, synthesis_prompt
    from scoder.bootstrap.rounds import round_specs
    from scoder.bootstrap.scorer_distill import ScorerDistillConfig
    from scoder.bootstrap.scoring import ScoreConfig
    from scoder.bootstrap.sample import SampleConfig
    from scoder.bootstrap.synthesizer import SynthesizerTrainConfig
    from scoder.core.params import from_dict

    assumed = {**ASSUMED_ANSWER_TOKENS, **(answer_tokens or {})}
    count, tokenizer = token_counter()
    snippets, source = sample_snippets(pool_file, seed=int(params.get("seed", 0)))
    if not snippets:
        raise ValueError("no snippets to measure prompt lengths on")
    distill = from_dict(DistillConfig, params.get("distill"), "distill")
    categorize = from_dict(CategorizeConfig, params.get("categorize"), "categorize")
    synthesis = [count(synthesis_prompt(snippet_text(s, distill.include_imports))) for s in snippets]
    # a judged pair is about as long as a teacher answer: the scoring template + the assumed answer
    scoring_template = count(scoring_prompt("", ""))
    measured = {"snippets": source, "tokenizer": tokenizer, "synthesis_prompt_tokens_mean": round(_mean(synthesis), 1),
                "scoring_template_tokens": scoring_template, "assumed_answer_tokens": assumed}
    rows: list[Row] = []
    seeds = categorize.per_category * len(categorize.categories)
    row = _row("distill", "teacher", distill.teacher, seeds * distill.sampling.n, _mean(synthesis), assumed["teacher"],
               distill.sampling.max_tokens, [f"{categorize.per_category} seeds x {len(categorize.categories)} categories"])
    rows += [row] if row else []

    score = from_dict(ScoreConfig, params.get("score"), "score")
    sample = from_dict(SampleConfig, params.get("sample"), "sample")
    train = from_dict(SynthesizerTrainConfig, params.get("train"), "train")
    per_snippet = (train.num_checkpoints if sample.multi_checkpoint else 1) * sample.sampling.n
    for key, spec in round_specs(params.get("rounds") or {}).items():
        row = _row(f"score@{key}", "scorer", score.scorer, spec.snippets * per_snippet,
                   scoring_template + assumed["teacher"], assumed["scorer"], score.sampling.max_tokens,
                   [f"{spec.snippets} snippets x {per_snippet} candidates"])
        rows += [row] if row else []
    scorer_distill = from_dict(ScorerDistillConfig, params.get("scorer_distill"), "scorer_distill")
    row = _row("distill_scorer (optional)", "teacher as judge", scorer_distill.teacher, SCORER_DISTILL_RECORDS,
               scoring_template + assumed["teacher"], assumed["scorer"], scorer_distill.sampling.max_tokens,
               [f"{SCORER_DISTILL_RECORDS} judged pairs assumed (paper: 2.5K x 4 sources)"])
    rows += [row] if row else []
    return rows, measured


def render(rows: Sequence[Row], measured: dict) -> str:
    header = ["stage", "role", "model (backend)", "requests", "prompt tok (measured)", "answer tok (assumed)",
              "list USD", "batch USD", "price row"]
    body = [[r.stage, r.role, f"{r.model} ({r.backend})", f"{r.requests:,}", f"{r.prompt_tokens:,}",
             f"{r.answer_tokens:,}", f"{r.list_usd:,.2f}", f"{r.batch_usd:,.2f}", r.price_row] for r in rows]
    in_pipeline = [r for r in rows if "optional" not in r.stage]
    body.append(["total (pipeline stages)", "", "", f"{sum(r.requests for r in in_pipeline):,}",
                 f"{sum(r.prompt_tokens for r in in_pipeline):,}", f"{sum(r.answer_tokens for r in in_pipeline):,}",
                 f"{sum(r.list_usd for r in in_pipeline):,.2f}", f"{sum(r.batch_usd for r in in_pipeline):,.2f}", ""])
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r.stage}: {'; '.join(r.notes)}" for r in rows if r.notes]
    return "\n".join([
        *lines, "",
        f"prompt tokens: measured on {measured['snippets']} with the {measured['tokenizer']}; synthesis prompt "
        f"mean {measured['synthesis_prompt_tokens_mean']} tokens, scoring template {measured['scoring_template_tokens']} "
        "tokens plus an assumed teacher-length pair",
        f"answer tokens: assumed {measured['assumed_answer_tokens']} per request (capped at each stage's max_tokens); "
        "change with --answer-tokens role=N",
        "no model was called; prices: scoder/core/prices.py (list = synchronous API, batch = Batch API)",
        *(["notes:", *notes] if notes else []),
    ])

"""Score candidates with the multi-aspect scorer (SCoder eq. 1, Figure 7), check their code
in the sandbox, and keep the best candidate per snippet.

Two ways to get the ten aspect scores:
- `generate`: the scorer writes `[Reason] ... [Score] {...} [End]` (the paper); the block is
  parsed, and a candidate whose block does not parse is counted and left unscored, never
  given a default. With `expected: true` each aspect becomes the expectation over the
  scorer's 0-9 probabilities at that slot, given its own reason (finer than the integer).
- `forced`: no free text; the answer template is filled slot by slot with the scorer's
  0-9 distribution (teacher forcing, argmax written into the template as greedy decoding
  would). For judges too small to keep the format, such as the tiny profile's 135M model;
  the reason is skipped, and scores are expectations (or argmax with `expected: false`).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from scoder.core.stats import distribution
from tqdm import tqdm

from scoder.models.llm.base import LLM, LLMConfig, SamplingParams
from scoder.bootstrap.prompts import SCORING_ASPECTS, scoring_prompt
from scoder.execution.sandbox import SandboxConfig, isolation_level, run_untrusted
from scoder.bootstrap.aspects import aggregate, parse_scores

log = logging.getLogger(__name__)
DIGITS = [str(d) for d in range(10)]


@dataclass
class ScoreConfig:
    scorer: LLMConfig = field(default_factory=LLMConfig)  # teacher (any backend) or a trained scorer (adapter)
    mode: str = "generate"  # generate | forced
    expected: bool = False  # expectation over the 0-9 probabilities instead of the integer
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=0.0, max_tokens=512))
    aggregate: str = "weighted"  # weighted (eq. 1) | composite | mean
    weights_file: str = "configs/score_weights.json"  # written by `scoder fit-weights`
    execution: str = "filter"  # off | filter | aspect
    execution_weight: float = 1.0  # aspect mode: adds execution_weight * 9 when the code runs
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    exec_workers: int = 2
    include_unparsed: bool = False  # also score candidates whose synthesis did not parse (raw text)
    max_chars: int = 4000  # of the instruction and of the response shown to the scorer
    chunk_size: int = 8


def template_parts(reason: str = "") -> list[str]:
    """The Figure-7 answer template, cut at each aspect's score slot."""
    first = f"[Reason]\n{reason.strip()}\n[Score]\n{{\n  \"{SCORING_ASPECTS[0]}\": "
    return [first] + [f",\n  \"{aspect}\": " for aspect in SCORING_ASPECTS[1:]]


def scoring_pair(candidate: dict, include_unparsed: bool, max_chars: int) -> tuple[str, str] | None:
    """(instruction, response) shown to the scorer, or None when the candidate is not scored."""
    if candidate.get("parse_ok"):
        return candidate["problem"][:max_chars], candidate["solution"][:max_chars]
    if not include_unparsed:
        return None
    return (candidate.get("problem") or "(no problem section)")[:max_chars], (candidate.get("solution") or candidate.get("raw") or "")[:max_chars]


def _expected(probabilities: Sequence[float]) -> float:
    return float(np.dot(np.asarray(probabilities, dtype=float), np.arange(10)))


def forced_aspects(llm: LLM, prompts: list, reasons: Sequence[str], expected: bool) -> list[dict]:
    # one call per distinct reason (all prompts at once when there is none), so a backend that
    # spreads prompts over workers gets them together; each prompt is still computed alone
    by_reason: dict[str, list[int]] = {}
    for index, reason in enumerate(reasons):
        by_reason.setdefault(reason, []).append(index)
    filled: list = [None] * len(prompts)
    for reason, members in by_reason.items():
        for index, slots in zip(members, llm.fill_choices([prompts[i] for i in members], template_parts(reason), DIGITS)):
            filled[index] = slots
    rows = []
    for slots in filled:
        values = {a: (_expected(p) if expected else float(int(np.argmax(p)))) for a, p in zip(SCORING_ASPECTS, slots)}
        rows.append({"aspects": {a: round(v, 6) for a, v in values.items()},
                     "digit_probabilities": {a: p for a, p in zip(SCORING_ASPECTS, slots)}})
    return rows


def execution_check(candidates: Sequence[dict], sandbox: SandboxConfig, workers: int = 2) -> list[dict]:
    """Run each candidate's code in the sandbox; code-less candidates are not run."""

    def check(candidate: dict) -> dict:
        code = candidate.get("code") or ""
        if not code.strip():
            return {"exec_ok": False, "exec_reason": "no_code"}
        result = run_untrusted(code, sandbox)
        # no wall time here: the records are DVC outputs and must be the same on every run; the
        # verdict is the parent's (the code's own exit status means nothing)
        return {"exec_ok": result.exec_ok, "exec_reason": result.reason,
                "exec_stderr_tail": result.stderr[-300:], "exec_isolation": result.isolation}

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(tqdm(pool.map(check, candidates), total=len(candidates), desc="execution check", unit="candidate"))


def _weights(config: ScoreConfig) -> list[float] | None:
    if config.aggregate != "weighted":
        return None
    from scoder.bootstrap.aspects import read_weights

    return read_weights(config.weights_file)


def score_candidates(llm: LLM, candidates: Sequence[dict], config: ScoreConfig) -> tuple[list[dict], list[dict], dict]:
    """(every candidate with its scores, the best candidate per snippet, metrics)."""
    if config.mode not in ("generate", "forced"):
        raise ValueError(f"unknown score.mode '{config.mode}' (expected generate or forced)")
    if config.execution not in ("off", "filter", "aspect"):
        raise ValueError(f"unknown score.execution '{config.execution}' (expected off, filter or aspect)")
    weights = _weights(config)
    scored = [dict(c) for c in candidates]
    todo = []
    for record in scored:
        pair = scoring_pair(record, config.include_unparsed, config.max_chars)
        record.update(aspects=None, score=None, score_parse_ok=False, score_reason=None, judge_raw=None)
        if pair is None:
            record["score_reason"] = "not_scored:synthesis_unparsed"
        else:
            todo.append((record, [{"role": "user", "content": scoring_prompt(*pair)}]))

    size = max(1, config.chunk_size)
    chunk_params = {start: SamplingParams(**{**config.sampling.__dict__, "n": 1, "seed": config.sampling.seed + start})
                    for start in range(0, len(todo), size)}
    if config.mode == "generate" and getattr(llm, "prefetch", None) is not None:
        # API backends: the batch one judges every chunk in one batch run (the loop below reads
        # the cache); the synchronous one counts the cached answers into its budget cap first
        llm.prefetch([([m for _, m in todo[start : start + size]], params) for start, params in chunk_params.items()])
    with tqdm(total=len(todo), desc=f"score ({config.mode})", unit="candidate") as progress:
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            prompts = [messages for _, messages in chunk]
            if config.mode == "generate":
                params = chunk_params[start]
                completions = llm.generate(prompts, params)
                for (record, messages), completion in zip(chunk, completions):
                    parsed = parse_scores(completion.texts[0])
                    record.update(judge_raw=completion.texts[0], score_parse_ok=parsed.parse_ok, score_reason=parsed.reason)
                    if parsed.parse_ok:
                        record["aspects"] = {a: float(v) for a, v in parsed.aspects.items()}
                        if config.expected:
                            forced = forced_aspects(llm, [messages], [parsed.judge_reason], True)[0]
                            record.update(aspects=forced["aspects"], digit_probabilities=forced["digit_probabilities"])
            else:
                for (record, _), forced in zip(chunk, forced_aspects(llm, prompts, [""] * len(chunk), config.expected)):
                    record.update(score_parse_ok=True, aspects=forced["aspects"], digit_probabilities=forced["digit_probabilities"])
            progress.update(len(chunk))

    if config.execution != "off":
        for record, result in zip(scored, execution_check(scored, config.sandbox, config.exec_workers)):
            record.update(result)
    for record in scored:
        if record["aspects"] is None:
            continue
        value = aggregate(record["aspects"], config.aggregate, weights)
        if config.execution == "aspect" and record.get("exec_ok"):
            value += config.execution_weight * 9
        record["score"] = round(value, 6)

    best = pick_best(scored, config.execution == "filter")
    # the scorer's weights as resolved (n/a: an API)
    return scored, best, {"precision": getattr(llm, "precision", "n/a"), **score_metrics(scored, best, config)}


def pick_best(scored: Sequence[dict], require_exec_ok: bool) -> list[dict]:
    """Highest score per snippet; ties go to the earlier checkpoint, then sample index."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for record in scored:
        if record["score"] is None or (require_exec_ok and not record.get("exec_ok")):
            continue
        groups[record["snippet_id"]].append(record)
    best = [max(group, key=lambda r: (r["score"], -r.get("checkpoint", 0), -r["sample_idx"])) for group in groups.values()]
    return sorted(best, key=lambda r: r["snippet_id"])


def score_metrics(scored: Sequence[dict], best: Sequence[dict], config: ScoreConfig) -> dict:
    attempted = [r for r in scored if not (r["score_reason"] or "").startswith("not_scored")]
    parse_ok = sum(r["score_parse_ok"] for r in attempted)
    by_checkpoint: dict[str, list[float]] = defaultdict(list)
    for record in scored:
        if record["score"] is not None:
            by_checkpoint[str(record.get("checkpoint", 0))].append(record["score"])
    best_by_checkpoint = Counter(str(r.get("checkpoint", 0)) for r in best)
    snippets = {r["snippet_id"] for r in scored}
    metrics = {
        "mode": config.mode,
        "expected": config.expected,
        "aggregate": config.aggregate,
        "execution": config.execution,
        "candidates": len(scored),
        "scored": len(attempted),
        "not_scored_unparsed": len(scored) - len(attempted),
        "score_parse_ok": parse_ok,
        "score_parse_rate": round(parse_ok / len(attempted), 6) if attempted else 0.0,
        "score_failures": dict(sorted(Counter(r["score_reason"] for r in attempted if not r["score_parse_ok"]).items())),
        "score_by_checkpoint": {k: distribution(v) for k, v in sorted(by_checkpoint.items())},
        "snippets": len(snippets),
        "best": len(best),
        "best_share_by_checkpoint": {k: round(v / len(best), 4) for k, v in sorted(best_by_checkpoint.items())} if best else {},
        "best_score": distribution([r["score"] for r in best]),
        "best_unparsed": sum(not r["parse_ok"] for r in best),
        # the mean aspect vector of the kept data: x-bar of eq. 2 for fitting the weights
        "best_mean_aspects": {a: round(float(np.mean([r["aspects"][a] for r in best])), 4) for a in SCORING_ASPECTS} if best else {},
    }
    if config.execution != "off":
        runs = [r for r in scored if "exec_ok" in r]
        ok = sum(bool(r["exec_ok"]) for r in runs)
        metrics.update(exec_ok=ok, exec_rate=round(ok / len(runs), 6) if runs else 0.0,
                       exec_reasons=dict(sorted(Counter(r["exec_reason"] for r in runs).items())),
                       isolation=isolation_level(config.sandbox))
    return metrics

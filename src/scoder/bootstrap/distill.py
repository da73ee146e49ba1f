"""Answer the synthesis prompt for seed snippets with a model (the teacher for D_p).

The same code serves any model role that turns snippets into (problem, solution) samples;
the `distill` stage uses it with the teacher. Resumability comes from the response cache
under the backend: a rerun after a crash gets every finished chunk back from the cache.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Sequence

from tqdm import tqdm

from scoder.core.cost import cost_usd
from scoder.core.io import content_id
from scoder.models.llm.base import LLM, Completion, LLMConfig, SamplingParams
from scoder.bootstrap.prompts import synthesis_prompt
from scoder.bootstrap.synthesis_format import SOLUTION_HEADER, find_header, parse_synthesis


@dataclass
class GenerationConfig:
    """How any model turns snippets into (problem, solution) samples with the synthesis
    prompt: the one generation config of the teacher (distill), the synthesizer's rounds
    (sample) and the final dataset (synthesize), which extend it."""

    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_tokens=512))
    chunk_size: int = 8  # prompts per call to the backend (fixed boundaries keep resumes exact)
    include_imports: bool = True  # show the snippet's imports above its code
    # 0: free generation. >0: template-guided generation for models too small to keep the
    # two-section format: the answer is prefilled with the problem header, the problem gets up
    # to this many tokens, then the solution header and a python fence are appended and the
    # code is generated (sampling.max_tokens) until the fence closes. Local backends only.
    guided_problem_tokens: int = 0
    # the problem's first words, prefilled too: without them a very small model jumps straight
    # to the solution header (docs/methods.md)
    guided_problem_lead: str = "Write a Python function"

    @property
    def generation(self) -> str:
        """"guided" or "free", as the metrics report it."""
        return "guided" if self.guided_problem_tokens > 0 else "free"


@dataclass
class DistillConfig(GenerationConfig):
    """The `distill` section: the teacher and its generation settings. Its price and budget cap
    are the teacher's (`teacher.price_as`, `teacher.max_budget_usd`: scoder.core.prices)."""

    teacher: LLMConfig = field(default_factory=LLMConfig)


PROBLEM_PREFILL = "[Problem Description]\n"
SOLUTION_PREFILL = "\n\n[Solution]\n```python\n"


def _whole_sentences(text: str, finish: str) -> str:
    """A problem cut by its token budget ends at its last full sentence, if it has one."""
    if finish != "length":
        return text
    end = max(text.rfind(". "), text.rfind(".\n"), text.rfind("? "), text.rfind("?\n"))
    return text[: end + 1] if end > 0 else text


def guided_generate(llm: LLM, prompts: Sequence[list[dict]], params: SamplingParams, problem_tokens: int,
                    lead: str = "") -> list[Completion]:
    """Template-guided answers to synthesis prompts: the problem is written after a prefilled
    problem header and stops at a solution header or a fence; the code is written after a
    prefilled solution header and python fence and stops where the fence closes. Each
    completion text is the whole answer in the two-section format (prefills included), so
    the parser sees what a compliant model would have written."""
    opening = PROBLEM_PREFILL + lead
    first = llm.generate([[*p, {"role": "assistant", "content": opening}] for p in prompts],
                         replace(params, max_tokens=problem_tokens, stop=["[Solution]", "```"]))
    heads, owners = [], []
    for index, completion in enumerate(first):
        for text, finish in zip(completion.texts, completion.finish_reasons or ["stop"] * len(completion.texts)):
            header = find_header(SOLUTION_HEADER, text)  # "**Solution**", "Solution:" ... end the problem too
            problem = _whole_sentences(text[: header.start()] if header else text, "stop" if header else finish)
            heads.append((opening + problem).rstrip() + SOLUTION_PREFILL)
            owners.append(index)
    second = llm.generate([[*prompts[i], {"role": "assistant", "content": head}] for i, head in zip(owners, heads)],
                          replace(params, n=1, stop=["```"]))
    results = []
    cursor = 0
    for completion in first:
        texts, counts, reasons = [], [], []
        for sample in range(len(completion.texts)):
            code = second[cursor]
            finish = code.finish_reasons[0] if code.finish_reasons else "stop"
            texts.append(heads[cursor] + code.texts[0].rstrip() + ("\n```" if finish == "stop" else ""))
            counts.append(completion.completion_tokens[sample] + code.completion_tokens[0])
            reasons.append(finish)
            cursor += 1
        prompt_tokens = completion.prompt_tokens + sum(second[c].prompt_tokens for c in range(cursor - len(texts), cursor))
        results.append(Completion(texts=texts, prompt_tokens=prompt_tokens, completion_tokens=counts,
                                  finish_reasons=reasons, cached=completion.cached and all(
                                      second[c].cached for c in range(cursor - len(texts), cursor))))
    return results


def snippet_text(snippet: dict, include_imports: bool) -> str:
    imports = snippet.get("imports") or ""
    return f"{imports}\n\n\n{snippet['code']}" if include_imports and imports else snippet["code"]


def synthesize_samples(
    llm: LLM, snippets: Sequence[dict], config: GenerationConfig, model_name: str, desc: str = "distill",
    prices: tuple[float, float] = (0.0, 0.0),
) -> tuple[list[dict], dict]:
    """One record per (snippet, sample) with the parsed problem/solution, and metrics;
    `prices` (USD per 1M prompt / completion tokens) price the tokens for the cost ledger."""
    start = time.perf_counter()
    from scoder.core.prices import API_BACKENDS

    paid = getattr(getattr(llm, "config", None), "backend", "") in API_BACKENDS
    shown = [snippet_text(s, config.include_imports) for s in snippets]
    prompts = [[{"role": "user", "content": synthesis_prompt(text)}] for text in shown]
    records: list[dict] = []
    reasons: Counter = Counter()
    notes: Counter = Counter()
    tokens_in = tokens_out = paid_in = paid_out = cached = 0
    size = max(1, config.chunk_size)
    chunk_params = {start: SamplingParams(**{**config.sampling.__dict__, "seed": config.sampling.seed + start})
                    for start in range(0, len(prompts), size)}
    if getattr(llm, "prefetch", None) is not None and config.guided_problem_tokens <= 0:
        # API backends: the batch one answers every chunk in one batch run (the loop below reads
        # the cache); the synchronous one counts the cached answers into its budget cap first
        llm.prefetch([(prompts[start : start + size], params) for start, params in chunk_params.items()])
    with tqdm(total=len(prompts), desc=desc, unit="prompt") as progress:
        for chunk_start in range(0, len(prompts), size):
            chunk = prompts[chunk_start : chunk_start + size]
            params = chunk_params[chunk_start]
            if config.guided_problem_tokens > 0:
                completions = guided_generate(llm, chunk, params, config.guided_problem_tokens, config.guided_problem_lead)
            else:
                completions = llm.generate(chunk, params)
            for offset, completion in enumerate(completions):
                snippet = snippets[chunk_start + offset]
                for sample_idx, text in enumerate(completion.texts):
                    finish = completion.finish_reasons[sample_idx] if completion.finish_reasons else "stop"
                    parsed = parse_synthesis(text, finish)
                    out_tokens = completion.completion_tokens[sample_idx]
                    in_tokens = completion.prompt_tokens if sample_idx == 0 else 0
                    tokens_in += in_tokens
                    tokens_out += out_tokens
                    if completion.cached:
                        cached += 1
                    else:
                        paid_in += in_tokens
                        paid_out += out_tokens
                    reasons[parsed.reason or "ok"] += 1
                    notes.update(parsed.notes)
                    records.append(
                        {
                            "id": content_id(snippet["id"], model_name, str(sample_idx)),
                            "snippet_id": snippet["id"],
                            "category": snippet.get("category"),
                            "snippet": shown[chunk_start + offset],  # as the prompt showed it
                            "sample_idx": sample_idx,
                            "model": model_name,
                            "problem": parsed.problem,
                            "solution": parsed.solution,
                            "code": parsed.code,
                            "raw": text,
                            "parse_ok": parsed.parse_ok,
                            "reason": parsed.reason,
                            "notes": parsed.notes,
                            "code_compiles": parsed.code_compiles,
                            "finish_reason": finish,
                            "tokens": {"prompt": in_tokens, "completion": out_tokens},
                        }
                    )
            progress.update(len(chunk))
    seconds = time.perf_counter() - start
    n = len(records)
    ok = sum(r["parse_ok"] for r in records)
    metrics = {
        "samples": n,
        # free: the model wrote both sections itself; guided: headers and fence were prefilled
        "generation": config.generation,
        "precision": getattr(llm, "precision", "n/a"),  # the model's weights as resolved (n/a: an API)
        "parse_ok": ok,
        "parse_rate": round(ok / n, 6) if n else 0.0,
        "reasons": dict(sorted(reasons.items())),
        "notes": dict(sorted(notes.items())),
        "code_compiles": sum(bool(r["code_compiles"]) for r in records),
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cost_usd": round(cost_usd(tokens_in, tokens_out, *prices), 6),
        # what these samples cost at `prices` (for a local stand-in or a recorded teacher: would
        # have cost), and what was paid for this run: only an API backend's uncached answers
        "cost_usd_paid_this_run": round(cost_usd(paid_in, paid_out, *prices), 6) if paid else 0.0,
        "cached_samples": cached,
        "seconds": round(seconds, 3),
        "generated_tokens_per_second": (round(paid_out / seconds, 2) if seconds and paid_out
                                        and getattr(llm, "generates", True) else 0.0),
    }
    return records, metrics

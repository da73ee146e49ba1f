"""The recorded teacher (`backend: dataset`): answers a strong model already wrote, replayed.

Public teacher-made datasets (Magicoder's OSS-Instruct-75K: seed snippet, problem and solution
from gpt-3.5-turbo) hold exactly what `distill` would pay a teacher for. This backend loads one
(a JSON/JSONL file or `hf:<dataset>`, with a field mapping), draws the distillation seeds from
it, and answers the synthesis prompt of each seed with the recorded answer, formatted as the
two-section answer of the prompt ([Problem Description] / [Solution]) or taken raw. The distill
stage parses and prices these answers exactly as a live teacher's: nothing is paid, and the
ledger prices the tokens (counted with `scoder.core.prices.token_counter`) at the recorded
model's rate, i.e. what the same samples would have cost.

Records that cannot serve are counted, never silently used: no seed, no answer, a field that is
not text, or a seed already seen (two answers for one prompt would make the replay ambiguous;
the first is kept). A malformed file (bad JSON, not objects) is an error naming file and line,
and so is a field mapping that names a field no record has.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from scoder.bootstrap.prompts import synthesis_prompt
from scoder.bootstrap.synthesis_format import format_synthesis
from scoder.core.io import content_id, load_records
from scoder.models.llm.base import Completion, LLMConfig, Messages, RecordedConfig, SamplingParams

log = logging.getLogger(__name__)


@dataclass
class RecordedSet:
    """The usable records of a recorded source, and what was skipped and why."""

    source: str
    records: list[dict]  # {id, seed, answer, category, index}
    skipped: dict[str, int]
    total: int

    def summary(self) -> dict:
        return {"source": self.source, "records": self.total, "usable": len(self.records),
                "skipped": dict(sorted(self.skipped.items()))}


def _text(record: dict, name: str) -> str | None:
    """The field's text; None when absent or empty; TypeError when it is not a string."""
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): no tokenizer or file can hold it
        raise TypeError(name) from None
    return value if value.strip() else None


def _record_id(record: dict, name: str) -> str | None:
    """The id field as text: a string or an integer (common in datasets); anything else is not an id."""
    value = record.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(record, name)


def load_recorded(config: RecordedConfig) -> RecordedSet:
    if not config.source:
        raise ValueError("backend 'dataset' needs recorded.source: a JSON/JSONL file or hf:<dataset> of "
                         "teacher answers (see docs/configuration.md, 'Recorded teacher')")
    raw = load_records(config.source, config.split)
    wanted = [config.seed_field] + ([config.answer_field] if config.answer_field
                                    else [config.problem_field, config.solution_field])
    wanted += [f for f in (config.id_field, config.category_field) if f] + list(config.where)
    seen_fields = set().union(*(r.keys() for r in raw)) if raw else set()
    for name in wanted:
        if raw and name not in seen_fields:
            raise ValueError(f"{config.source}: the field mapping names '{name}', which no record has "
                             f"(fields: {', '.join(sorted(seen_fields))})")
    skipped: Counter = Counter()
    records, seeds, ids = [], {}, set()
    for index, record in enumerate(raw):
        label = f"{config.source}: record {index + 1}"
        # exact, typed equality (YAML gives `1`, `true`, `python` their types); a field the
        # record lacks never matches
        if any(k not in record or record[k] != v or type(record[k]) is not type(v) for k, v in config.where.items()):
            skipped["filtered_by_where"] += 1
            continue
        try:
            seed = _text(record, config.seed_field)
            if config.answer_field:
                answer = _text(record, config.answer_field)
            else:
                problem, solution = _text(record, config.problem_field), _text(record, config.solution_field)
                answer = format_synthesis(problem, solution) if problem and solution else None
            category = _text(record, config.category_field) if config.category_field else None
            rid = _record_id(record, config.id_field) if config.id_field else None
        except TypeError as exc:
            log.warning("%s: field '%s' is not text; skipped", label, exc)
            skipped["field_not_text"] += 1
            continue
        if seed is None:
            skipped["missing_seed"] += 1
            continue
        if answer is None:
            skipped["missing_answer"] += 1
            continue
        key = seed.strip("\n")
        if key in seeds:
            skipped["duplicate_record" if seeds[key] == answer else "duplicate_seed"] += 1
            continue
        rid = rid or content_id("recorded", key)
        if rid in ids:  # sample ids derive from it: two records may not share one
            skipped["duplicate_id"] += 1
            continue
        seeds[key] = answer
        ids.add(rid)
        records.append({"id": rid, "seed": key, "answer": answer, "category": category, "index": index})
    if not records:
        raise ValueError(f"{config.source}: none of its {len(raw)} records can serve as a recorded answer "
                         f"(skipped: {dict(skipped) or 'no records'})")
    if skipped:
        log.info("recorded teacher %s: %d of %d records usable, skipped %s", config.source, len(records), len(raw),
                 dict(sorted(skipped.items())))
    return RecordedSet(config.source, records, dict(skipped), len(raw))


class RecordedTeacher:
    """An LLM whose answers to synthesis prompts come from a recorded set."""

    precision = "n/a"  # no weights: the answers were written elsewhere
    generates = False  # no tokens/s to report

    def __init__(self, config: LLMConfig, cache=None):  # noqa: ARG002 - nothing to cache: replay is free
        from scoder.core.prices import token_counter

        self.config = config
        self.recorded = load_recorded(config.recorded)
        self._answers = {synthesis_prompt(r["seed"]): r["answer"] for r in self.recorded.records}
        self._count, self.tokenizer = token_counter()

    def seeds(self, count: int, seed: int) -> list[dict]:
        """`count` distillation seeds drawn from the recorded set (seeded; in the set's order)."""
        usable = self.recorded.records
        if count > len(usable):
            raise ValueError(f"distill asks for {count} seeds, but the recorded set {self.recorded.source} has "
                             f"{len(usable)} usable records ({self.recorded.summary()['skipped']} skipped)")
        chosen = sorted(random.Random(seed).sample(range(len(usable)), count))
        return [{"id": usable[i]["id"], "code": usable[i]["seed"], "imports": "", "category": usable[i]["category"],
                 "meta": {"recorded_source": self.recorded.source, "recorded_index": usable[i]["index"]}}
                for i in chosen]

    def generate(self, prompts: Sequence[Messages], params: SamplingParams) -> list[Completion]:
        if params.n != 1:
            raise ValueError(f"a recorded teacher has one answer per seed; sampling.n is {params.n} (set it to 1)")
        results = []
        for messages in prompts:
            user = [m for m in messages if m.get("role") == "user"]
            if len(user) != 1 or len(messages) != 1:
                raise ValueError("a recorded teacher replays single-turn synthesis prompts only "
                                 f"(got roles {[m.get('role') for m in messages]})")
            prompt = user[0]["content"]
            if prompt not in self._answers:
                head = prompt.split("```\n", 1)[-1][:80]
                raise KeyError(f"the recorded set {self.recorded.source} has no answer for this synthesis prompt "
                               f"(seed snippet starting {head!r}); draw the seeds with RecordedTeacher.seeds")
            answer = self._answers[prompt]
            results.append(Completion(texts=[answer], prompt_tokens=self._count(prompt),
                                      completion_tokens=[self._count(answer)], finish_reasons=["stop"]))
        return results

    def next_token_logprobs(self, prompts, tokens):
        raise NotImplementedError("a recorded teacher has no probabilities: it only replays answers")

    def fill_choices(self, prompts, parts, choices):
        raise NotImplementedError("a recorded teacher has no probabilities: it only replays answers")

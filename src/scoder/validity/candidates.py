"""Labelled candidates for measuring selection signals against known answers (SCoder Table 4,
seed 003's comparison): real instruction pairs mixed with pairs degraded by known corruptions.

- real: a pair as its dataset wrote it (evol-codealpaca's GPT-3.5 answers; MBPP's human code,
  shown with its tests' first assert as the example, as MBPP prompts do);
- swapped: the response of another instruction;
- planted_bug: an MBPP solution with one seeded mutation (a comparison, arithmetic or boolean
  operator flipped, a constant moved by one, a returned value replaced) that the sandbox shows
  failing the task's own tests or not running; mutants that still pass are not used;
- truncated: the response cut at 25-60% of its length, at the last line break when one lies past
  the first eighth (an answer stopped by a token limit, often inside its code block);
- boilerplate: a non-answer (a refusal, a placeholder function, generic advice).

Every candidate is drawn from its own source record (a record never appears both real and
corrupted), D_p (the influence target set) is a further disjoint slice of real pairs, and every
choice comes from one seeded RNG.
"""

from __future__ import annotations

import ast
import logging
import random
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from scoder.bootstrap.synthesis_format import extract_code_blocks
from scoder.execution.sandbox import SandboxConfig, run_untrusted

log = logging.getLogger(__name__)

CORRUPTIONS = ("swapped", "planted_bug", "truncated", "boilerplate")
BOILERPLATE = (
    "I'm sorry, but I can't help with that request.",
    "Sure! Here is the solution:\n\n```python\ndef solution(*args):\n    # TODO: implement\n    pass\n```",
    "This is a great question. The best approach depends on your requirements; please consult the documentation "
    "of the language and the libraries you use, and test your code carefully.",
    "```python\n# Your code here\n```",
    "Here is the code you asked for. It handles all the cases described in the problem and is efficient.",
    "As an AI language model, I cannot run code, but you can solve this problem by writing a function that "
    "processes the input and returns the expected output.",
)


@dataclass
class CandidatesConfig:
    """The `candidates` params section of experiments/validity."""

    evol: str = "../../data/teacher/evol-codealpaca-python.jsonl.gz"  # problem / solution pairs
    mbpp: str = "data/mbpp-not-plus.jsonl.gz"  # text / code / test_list tasks
    real_per_source: int = 60  # real candidates from each source
    per_corruption: int = 30  # degraded candidates of each kind
    corruptions: list[str] = field(default_factory=lambda: list(CORRUPTIONS))
    dp_per_source: int = 16  # D_p: real pairs from each source, disjoint from the candidates
    seed: int = 1234
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)

    def __post_init__(self):
        unknown = sorted(set(self.corruptions) - set(CORRUPTIONS))
        if unknown:
            raise ValueError(f"candidates.corruptions: unknown {unknown} (known: {', '.join(CORRUPTIONS)})")


def _require(record: dict, fields: Sequence[str], source: str, index: int) -> None:
    for name in fields:
        value = record.get(name)
        if not isinstance(value, (str, list)) or not value:
            raise ValueError(f"{source}: record {index} ({record.get('id', '?')}) has no '{name}'")


def evol_pairs(records: Sequence[dict], source: str) -> list[dict]:
    pairs = []
    for index, record in enumerate(records, start=1):
        _require(record, ("problem", "solution"), source, index)
        pairs.append({"id": str(record.get("id", f"{source}:{index}")), "source": "evol", "instruction": record["problem"],
                      "response": record["solution"], "tests": []})
    return pairs


def mbpp_instruction(text: str, tests: Sequence[str]) -> str:
    return f"{text}\nYour code should pass this test:\n{tests[0]}"


def mbpp_response(code: str) -> str:
    return f"```python\n{code}\n```"


def mbpp_pairs(records: Sequence[dict], source: str) -> list[dict]:
    pairs = []
    for index, record in enumerate(records, start=1):
        _require(record, ("text", "code", "test_list"), source, index)
        tests = [record.get("test_setup_code") or ""] * bool(record.get("test_setup_code")) + list(record["test_list"])
        try:  # as a mutant is written (ast.unparse), so layout tells real from planted-bug code apart
            with warnings.catch_warnings():  # MBPP code has old-style escapes ("\d" in plain strings)
                warnings.simplefilter("ignore", SyntaxWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                code = ast.unparse(ast.parse(record["code"]))
        except SyntaxError:
            raise ValueError(f"{source}: record {index} ({record.get('id', '?')}): its code does not parse") from None
        pairs.append({"id": str(record.get("id", f"{source}:{index}")), "source": "mbpp",
                      "instruction": mbpp_instruction(record["text"], record["test_list"]),
                      "response": mbpp_response(code), "tests": tests, "code": code})
    return pairs


def response_code(response: str) -> str:
    blocks, _ = extract_code_blocks(response)
    return "\n\n".join(blocks)


def _check_program(code: str, tests: Sequence[str]) -> str:
    return "\n".join([code, *tests]) if tests else code


class _Mutator(ast.NodeTransformer):
    """Applies the `target`-th applicable mutation (a stable preorder count), once."""

    SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
             ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult, ast.And: ast.Or,
             ast.Or: ast.And, ast.Mod: ast.FloorDiv}

    def __init__(self, target: int):
        self.target, self.seen, self.done = target, 0, ""

    def _hit(self) -> bool:
        self.seen += 1
        return not self.done and self.seen - 1 == self.target

    def visit_Compare(self, node):
        self.generic_visit(node)
        if type(node.ops[0]) in self.SWAPS and self._hit():
            node.ops[0] = self.SWAPS[type(node.ops[0])]()
            self.done = "comparison"
        return node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        if type(node.op) in self.SWAPS and self._hit():
            node.op = self.SWAPS[type(node.op)]()
            self.done = "arithmetic"
        return node

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        if type(node.op) in self.SWAPS and self._hit():
            node.op = self.SWAPS[type(node.op)]()
            self.done = "boolean"
        return node

    def visit_Constant(self, node):
        if type(node.value) is int and self._hit():
            self.done = "constant"
            return ast.copy_location(ast.Constant(node.value + 1), node)
        return node

    def visit_Return(self, node):
        self.generic_visit(node)
        if node.value is not None and self._hit():
            self.done = "return"
            return ast.copy_location(ast.Return(ast.Constant(None)), node)
        return node


def mutants(code: str, rng: random.Random, limit: int = 8) -> list[tuple[str, str]]:
    """Up to `limit` single-mutation variants of `code` as (kind, source), in seeded order."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    counter = _Mutator(-1)
    counter.visit(ast.parse(code))
    order = list(range(counter.seen))
    rng.shuffle(order)
    out = []
    for target in order[:limit]:
        mutator = _Mutator(target)
        mutated = ast.unparse(ast.fix_missing_locations(mutator.visit(ast.parse(code))))
        if mutator.done and mutated != ast.unparse(tree):
            out.append((mutator.done, mutated))
    return out


def truncate(response: str, rng: random.Random) -> str:
    cut = int(len(response) * rng.uniform(0.25, 0.6))
    newline = response.rfind("\n", 0, cut)
    return response[: newline if newline > len(response) // 8 else cut].rstrip()


def _candidate(pair: dict, response: str, corruption: str, code: str | None = None, **extra) -> dict:
    code = response_code(response) if code is None else code
    return {"id": f"{corruption}:{pair['id']}", "source_id": pair["id"], "source": pair["source"],
            "label": int(corruption == "none"), "corruption": corruption, "instruction": pair["instruction"],
            "response": response, "tests": pair["tests"], "code": _check_program(code, pair["tests"]) if code else "",
            # the shape the project's scorer reads (a parsed synthesis)
            "parse_ok": True, "problem": pair["instruction"], "solution": response, "snippet_id": f"{corruption}:{pair['id']}",
            "sample_idx": 0, **extra}


def build_candidates(evol: Sequence[dict], mbpp: Sequence[dict], config: CandidatesConfig) -> tuple[list[dict], list[dict], dict]:
    """(candidates, D_p pairs, metrics). MBPP tasks whose own solution fails its tests in the
    sandbox are left out (counted): a planted bug must be the only reason a test fails."""
    rng = random.Random(config.seed)
    evol, mbpp = list(evol), list(mbpp)
    rng.shuffle(evol)
    rng.shuffle(mbpp)
    counts: Counter = Counter()

    def passing_mbpp():
        for pair in mbpp:
            result = run_untrusted(_check_program(pair["code"], pair["tests"]), config.sandbox)
            if result.exec_ok:
                yield pair
            else:
                counts[f"mbpp_reference_fails:{result.reason.split(':')[0]}"] += 1

    mbpp_ok = passing_mbpp()
    pools = {"evol": iter(evol), "mbpp": mbpp_ok}

    def take(source: str, n: int) -> list[dict]:
        got = [pair for _, pair in zip(range(n), pools[source])]
        if len(got) < n:
            raise ValueError(f"candidates: {source} has too few usable records for {n} more (have {len(got)}); "
                             "lower real_per_source / per_corruption / dp_per_source")
        return got

    dp = take("evol", config.dp_per_source) + take("mbpp", config.dp_per_source)
    candidates = [_candidate(p, p["response"], "none") for s in ("evol", "mbpp") for p in take(s, config.real_per_source)]
    # the evol / MBPP mix of the degraded candidates equals the real ones' (half and half), so a
    # signal that merely prefers one source's style cannot score above chance; planted bugs are
    # MBPP-only (they need tests), so the other kinds take more evol pairs
    others = [c for c in config.corruptions if c != "planted_bug"]
    evol_left = config.per_corruption * len(config.corruptions) // 2
    evol_share = {}
    for number, corruption in enumerate(others):
        evol_share[corruption] = min(config.per_corruption, evol_left // (len(others) - number))
        evol_left -= evol_share[corruption]
    for corruption in config.corruptions:
        half = evol_share.get(corruption, 0)
        if corruption == "planted_bug":
            made = 0
            while made < config.per_corruption:
                pair = take("mbpp", 1)[0]
                for kind, code in mutants(pair["code"], rng):
                    result = run_untrusted(_check_program(code, pair["tests"]), config.sandbox)
                    if result.reason in ("timeout", "output_limit", "protocol", "incomplete"):
                        # a slow machine can time out a correct mutant: only a failed check or a
                        # raised error proves the bug
                        counts[f"mutant_inconclusive:{result.reason}"] += 1
                        continue
                    if not result.exec_ok:
                        candidates.append(_candidate(pair, mbpp_response(code), corruption, code=code, mutation=kind,
                                                     mutant_fails=result.reason))
                        made += 1
                        break
                    counts["mutant_still_passes"] += 1
                else:
                    counts["no_failing_mutant"] += 1
            continue
        sources = take("evol", half) + take("mbpp", config.per_corruption - half)
        if corruption == "swapped":
            donors = take("evol", half) + take("mbpp", config.per_corruption - half)
            rng.shuffle(donors)
            for pair, donor in zip(sources, donors):
                candidates.append(_candidate(pair, donor["response"], corruption, donor=donor["id"]))
        elif corruption == "truncated":
            for pair in sources:
                candidates.append(_candidate(pair, truncate(pair["response"], rng), corruption))
        else:
            for pair in sources:
                candidates.append(_candidate(pair, rng.choice(BOILERPLATE), corruption))
    ids = [c["id"] for c in candidates]
    if len(set(ids)) != len(ids):
        raise AssertionError("candidate ids repeat")
    by_kind = Counter(c["corruption"] for c in candidates)
    metrics = {"candidates": len(candidates), "real": by_kind["none"], "degraded": len(candidates) - by_kind["none"],
               "by_corruption": dict(sorted(by_kind.items())),
               "by_source": dict(sorted(Counter(c["source"] for c in candidates).items())), "dp": len(dp),
               "mutations": dict(sorted(Counter(c.get("mutation") for c in candidates if c.get("mutation")).items())),
               "skipped": dict(sorted(counts.items()))}
    return candidates, dp, metrics

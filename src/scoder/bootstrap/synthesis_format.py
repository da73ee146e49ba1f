"""Parse a synthesizer's answer into [Problem Description] and [Solution] (SCoder Figure 6).

Models write the two headers in many ways: `[Problem Description]`, `**[Problem
Description]**`, `## Problem Description`, `**Problem Description:**`, `Problem:` ... with
or without text on the header line. A header must start a line, so the word "solution" in
prose is not a header. Failures are never papered over: `parse_ok` is False and `reason`
says why (empty output, refusal, missing section, empty section, no code, truncated).
"""

from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass, field

_PROBLEM = r"(?:problem\s+description|problem\s+statement|problem)"
_SOLUTION = r"(?:solution|answer)"


def _header_pattern(name: str) -> re.Pattern:
    return re.compile(
        rf"^[ \t>]*(?P<hash>#{{1,6}}[ \t]*)?(?P<b1>\*\*|__)?[ \t]*"
        rf"(?:(?P<bracket>\[[ \t]*{name}[ \t]*\])|{name})"
        rf"[ \t]*(?P<b2>\*\*|__)?[ \t]*(?P<colon>:)?[ \t]*(?P<b3>\*\*|__)?[ \t]*(?P<eol>$)?",
        re.IGNORECASE | re.MULTILINE,
    )


PROBLEM_HEADER = _header_pattern(_PROBLEM)
SOLUTION_HEADER = _header_pattern(_SOLUTION)


def find_header(pattern: re.Pattern, text: str, start: int = 0) -> re.Match | None:
    """First line that is a header: bracketed, bold, a markdown heading, followed by a
    colon, or alone on its line. "Problem solving is..." in prose is not a header."""
    for match in pattern.finditer(text, start):
        g = match.groupdict()
        if g["bracket"] or g["colon"] or (g["b1"] and (g["b2"] or g["b3"])) or g["eol"] is not None:
            return match
        if g["hash"] and g["eol"] is not None:
            return match
    return None


FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*\n", re.MULTILINE)
REFUSAL = re.compile(
    r"^\s*(i'?m sorry|i am sorry|sorry,|i cannot|i can'?t|i can not|i won'?t|as an ai)", re.IGNORECASE
)
CODE_START = re.compile(r"^(?:def |class |import |from \w[\w.]* import |async def |@\w)", re.MULTILINE)


@dataclass
class ParsedSample:
    problem: str = ""
    solution: str = ""
    code: str = ""
    parse_ok: bool = False
    reason: str | None = None
    notes: list[str] = field(default_factory=list)  # non-fatal observations
    code_compiles: bool | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def extract_code_blocks(text: str) -> tuple[list[str], bool]:
    """Fenced code blocks (python-tagged ones first if any); second value: a fence was
    left open (the block then runs to the end of the text)."""
    blocks: list[tuple[str, str]] = []
    unclosed = False
    position = 0
    while True:
        opening = FENCE.search(text, position)
        if not opening:
            break
        fence, lang = opening.group(1), opening.group(2).lower()
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE)
        end = closing.search(text, opening.end())
        if end is None:
            blocks.append((lang, text[opening.end():]))
            unclosed = True
            break
        blocks.append((lang, text[opening.end(): end.start()]))
        position = end.end()
    python = [body for lang, body in blocks if lang in ("python", "py", "python3")]
    chosen = python or [body for _, body in blocks]
    return [b.strip("\n") for b in chosen if b.strip()], unclosed


def _unfenced_code(text: str) -> str:
    """Code written without fences: from the first def/class/import line to the end of
    that indented run."""
    match = CODE_START.search(text)
    if not match:
        return ""
    lines = text[match.start():].splitlines()
    kept = []
    for line in lines:
        if kept and line and not line[0].isspace() and not CODE_START.match(line) and not line.startswith(("#", ")", "]", "}")):
            break
        kept.append(line)
    return "\n".join(kept).strip("\n")


def _compiles(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def parse_synthesis(raw: str | None, finish_reason: str = "stop") -> ParsedSample:
    result = ParsedSample()
    text = (raw or "").replace("\r\n", "\n")
    if not text.strip():
        result.reason = "empty_output"
        return result
    problem_match = find_header(PROBLEM_HEADER, text)
    solution_match = find_header(SOLUTION_HEADER, text, problem_match.end() if problem_match else 0)
    if not problem_match and not solution_match:
        result.reason = "refusal" if REFUSAL.match(text) else "missing_sections"
        return result
    if not problem_match:
        result.reason = "missing_problem_section"
        return result
    if not solution_match:
        result.reason = "truncated" if finish_reason == "length" else "missing_solution_section"
        return result
    if problem_match.start() > 0 and text[: problem_match.start()].strip():
        result.notes.append("text_before_problem")
    problem = text[problem_match.end(): solution_match.start()].strip()
    solution = text[solution_match.end():].strip()
    problem = re.sub(r"^[-=*_]{3,}\s*$", "", problem, flags=re.MULTILINE).strip()  # stray rules
    result.problem, result.solution = problem, solution
    if not problem:
        result.reason = "empty_problem"
        return result
    if not solution:
        result.reason = "truncated" if finish_reason == "length" else "empty_solution"
        return result
    blocks, unclosed = extract_code_blocks(solution)
    if not blocks:
        unfenced = _unfenced_code(solution)
        if unfenced:
            blocks = [unfenced]
            result.notes.append("unfenced_code")
    if unclosed:
        result.notes.append("unclosed_fence")
    result.code = "\n\n".join(blocks)
    if not result.code:
        result.reason = "truncated" if finish_reason == "length" else "no_code_in_solution"
        return result
    result.code_compiles = _compiles(result.code)
    if finish_reason == "length":
        # the answer was cut by max_tokens: the code or its explanation is incomplete
        result.reason = "truncated"
        return result
    result.parse_ok = True
    return result


def format_synthesis(problem: str, solution: str) -> str:
    """A (problem, solution) pair in the two-section answer format of Figure 6."""
    return f"[Problem Description]\n{problem.strip()}\n\n[Solution]\n{solution.strip()}"

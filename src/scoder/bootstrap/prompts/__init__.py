"""SCoder's prompts (appendix D), verbatim, as package data."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files

SCORING_ASPECTS = [
    "Consistency", "Relevance", "Difficulty", "Code Exist", "Code Correctness",
    "Code Standardization", "Code Clarity", "Code Comments", "Easy to Learn", "Composite Score",
]


@lru_cache(maxsize=None)
def load_prompt(name: str) -> str:
    """`synthesis` (Figure 6) or `scoring` (Figure 7)."""
    return files(__package__).joinpath(f"{name}.txt").read_text(encoding="utf-8")


def synthesis_prompt(code: str) -> str:
    # str.replace, not str.format: code is full of braces
    return load_prompt("synthesis").replace("<<code>>", code.strip("\n"))


def scoring_prompt(instruction: str, response: str) -> str:
    # one pass, so a "<<response>>" inside the instruction text is not substituted
    values = {"instruction": instruction, "response": response}
    return re.sub(r"<<(instruction|response)>>", lambda m: values[m.group(1)], load_prompt("scoring"))

"""LM quality classifier for snippets (SCoder appendix A uses StarCoder2-15B as classifier).

The model is asked whether the docstring is enough to re-implement the function; the score
is P(yes) / (P(yes) + P(no)) from the first answer token's probabilities, so no generation
and no answer parsing is involved.
"""

from __future__ import annotations

from typing import Sequence

from tqdm import tqdm

from scoder.models.llm.base import LLM, Messages, option_probabilities

QUALITY_QUESTION = (
    "Here is a Python function with its docstring.\n\n```python\n{code}\n```\n\n"
    "Could a competent programmer re-implement this function correctly from its signature "
    "and docstring alone, and is the code of good quality? Answer with yes or no."
)
YES_NO = {"yes": ["yes", "Yes", "YES"], "no": ["no", "No", "NO"]}


def quality_prompt(code: str, max_chars: int) -> Messages:
    return [{"role": "user", "content": QUALITY_QUESTION.format(code=code[:max_chars])}]


def quality_scores(llm: LLM, snippets: Sequence[dict], max_chars: int, batch_size: int) -> list[float]:
    scores: list[float] = []
    for start in tqdm(range(0, len(snippets), batch_size), desc="quality classifier", unit="batch", disable=len(snippets) <= batch_size):
        batch = snippets[start : start + batch_size]
        probs = option_probabilities(llm, [quality_prompt(s["code"], max_chars) for s in batch], YES_NO)
        scores.extend(p["yes"] for p in probs)
    return scores

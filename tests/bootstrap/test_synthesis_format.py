"""The synthesis parser on a corpus of real-looking well-formed and malformed outputs."""

import pytest

from scoder.bootstrap.synthesis_format import extract_code_blocks, parse_synthesis

CODE = "def add(a, b):\n    return a + b"
FENCED = f"```python\n{CODE}\n```"

# (name, raw output, finish_reason, expected parse_ok, expected reason, expected problem, expected code)
CASES = [
    ("canonical", f"[Problem Description]\nAdd two numbers.\n\n[Solution]\nAnalysis.\n{FENCED}\nExplanation.", "stop", True, None, "Add two numbers.", CODE),
    ("bold_brackets", f"**[Problem Description]**\nAdd two numbers.\n\n**[Solution]**\n{FENCED}", "stop", True, None, "Add two numbers.", CODE),
    ("markdown_headings", f"## Problem Description\nAdd two numbers.\n\n## Solution\n{FENCED}", "stop", True, None, "Add two numbers.", CODE),
    ("h3_with_brackets", f"### [Problem Description]\nAdd two numbers.\n### [Solution]\n{FENCED}", "stop", True, None, "Add two numbers.", CODE),
    ("bold_colon", f"**Problem Description:** Add two numbers.\n\n**Solution:**\n{FENCED}", "stop", True, None, "Add two numbers.", CODE),
    ("colon_inside_bold", f"**Problem Description**: Add two numbers.\n**Solution**: see below\n{FENCED}", "stop", True, None, "Add two numbers.", CODE),
    ("plain_colon", f"Problem Description: Add two numbers.\nSolution:\n{FENCED}", "stop", True, None, "Add two numbers.", CODE),
    ("same_line_bracket", f"[Problem Description] Add two numbers.\n[Solution] {FENCED}", "stop", True, None, "Add two numbers.", CODE),
    ("lowercase", f"[problem description]\nAdd two numbers.\n[solution]\n{FENCED}", "stop", True, None, "Add two numbers.", CODE),
    ("problem_statement_variant", f"## Problem Statement\nAdd two numbers.\n## Solution\n{FENCED}", "stop", True, None, "Add two numbers.", CODE),
    ("short_problem_header", f"**Problem:**\nAdd two numbers.\n**Solution:**\n{FENCED}", "stop", True, None, "Add two numbers.", CODE),
    ("prose_before", f"Sure! Here is a problem inspired by the snippet.\n\n[Problem Description]\nAdd two numbers.\n[Solution]\n{FENCED}", "stop", True, None, "Add two numbers.", CODE),
    ("prose_after", f"[Problem Description]\nAdd two numbers.\n[Solution]\n{FENCED}\n\nI hope this helps! Let me know.", "stop", True, None, "Add two numbers.", CODE),
    ("crlf", f"[Problem Description]\r\nAdd two numbers.\r\n[Solution]\r\n```python\r\n{CODE}\r\n```\r\n", "stop", True, None, "Add two numbers.", CODE),
    ("missing_closing_fence", f"[Problem Description]\nAdd two numbers.\n[Solution]\n```python\n{CODE}\n", "stop", True, None, "Add two numbers.", CODE),
    ("untagged_fence", f"[Problem Description]\nAdd two numbers.\n[Solution]\n```\n{CODE}\n```", "stop", True, None, "Add two numbers.", CODE),
    ("tilde_fence", f"[Problem Description]\nAdd two numbers.\n[Solution]\n~~~python\n{CODE}\n~~~", "stop", True, None, "Add two numbers.", CODE),
    ("unfenced_code", f"[Problem Description]\nAdd two numbers.\n[Solution]\nWe simply add.\n{CODE}\n\nThis returns the sum.", "stop", True, None, "Add two numbers.", CODE),
    ("horizontal_rule", f"[Problem Description]\nAdd two numbers.\n\n---\n\n[Solution]\n{FENCED}", "stop", True, None, "Add two numbers.", CODE),
    ("word_problem_in_prose", f"[Problem Description]\nProblem solving: add two numbers.\n[Solution]\n{FENCED}", "stop", True, None, "Problem solving: add two numbers.", CODE),
    ("solution_word_in_problem", f"[Problem Description]\nFind a solution that adds two numbers.\n[Solution]\n{FENCED}", "stop", True, None, "Find a solution that adds two numbers.", CODE),
    ("answer_header", f"[Problem Description]\nAdd two numbers.\n[Answer]\n{FENCED}", "stop", True, None, "Add two numbers.", CODE),
    ("quoted_headers", f"> **Problem Description**\nAdd two numbers.\n> **Solution**\n{FENCED}", "stop", True, None, "Add two numbers.", CODE),
    # failures, each with its reason
    ("empty", "", "stop", False, "empty_output", "", ""),
    ("whitespace", "   \n\n  ", "stop", False, "empty_output", "", ""),
    ("none", None, "stop", False, "empty_output", "", ""),
    ("refusal", "I'm sorry, but I can't help with that request.", "stop", False, "refusal", "", ""),
    ("refusal_as_ai", "As an AI language model, I cannot create that.", "stop", False, "refusal", "", ""),
    ("no_sections_prose", "Here is some code:\n" + FENCED, "stop", False, "missing_sections", "", ""),
    ("only_solution", f"[Solution]\n{FENCED}", "stop", False, "missing_problem_section", "", ""),
    ("only_problem", "[Problem Description]\nAdd two numbers.", "stop", False, "missing_solution_section", "", ""),
    ("only_problem_truncated", "[Problem Description]\nAdd two numbers and then", "length", False, "truncated", "", ""),
    ("empty_problem", f"[Problem Description]\n\n[Solution]\n{FENCED}", "stop", False, "empty_problem", "", ""),
    ("empty_solution", "[Problem Description]\nAdd two numbers.\n[Solution]\n", "stop", False, "empty_solution", "Add two numbers.", ""),
    ("solution_without_code", "[Problem Description]\nAdd two numbers.\n[Solution]\nJust add them with the plus operator.", "stop", False, "no_code_in_solution", "Add two numbers.", ""),
    ("truncated_in_code", f"[Problem Description]\nAdd two numbers.\n[Solution]\n```python\ndef add(a, b):\n    return a +", "length", False, "truncated", "Add two numbers.", "def add(a, b):\n    return a +"),
    ("sections_swapped", f"[Solution]\n{FENCED}\n[Problem Description]\nAdd two numbers.", "stop", False, "missing_solution_section", "", ""),
    ("prompt_echo_only", "Please gain inspiration from the following random code snippet to create a high-quality programming problem.", "stop", False, "missing_sections", "", ""),
]


@pytest.mark.parametrize("name, raw, finish, ok, reason, problem, code", CASES, ids=[c[0] for c in CASES])
def test_parser_corpus(name, raw, finish, ok, reason, problem, code):
    parsed = parse_synthesis(raw, finish)
    assert parsed.parse_ok is ok, (name, parsed)
    assert parsed.reason == reason
    if problem:
        assert parsed.problem == problem
    if code:
        assert parsed.code == code
    if ok:
        assert parsed.code_compiles is True


def test_corpus_is_large_enough():
    assert len(CASES) >= 30
    assert sum(1 for c in CASES if not c[3]) >= 14


def test_python_blocks_are_preferred_and_joined():
    text = "```bash\npip install x\n```\n```python\nx = 1\n```\ntext\n```python\ny = 2\n```"
    blocks, unclosed = extract_code_blocks(text)
    assert blocks == ["x = 1", "y = 2"] and not unclosed


def test_code_that_does_not_compile_is_flagged_not_dropped():
    parsed = parse_synthesis("[Problem Description]\nP.\n[Solution]\n```python\ndef f(:\n```")
    assert parsed.parse_ok and parsed.code_compiles is False

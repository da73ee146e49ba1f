"""Red-team tests for the recorded teacher (`backend: dataset`), written against the documented
contract only (docs/configuration.md "Recorded teacher", data/teacher/README.md).

The one property every class of test here comes back to: a prompt is answered with the recorded
answer of *its own* seed, or it is an error -- never another record's answer, never a made-up one.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from scoder.bootstrap.prompts import synthesis_prompt
from scoder.models.llm import load_llm
from scoder.models.llm.base import LLMConfig, RecordedConfig, SamplingParams

# --------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(autouse=True, scope="module")
def _memoize_tokenizer():
    """The teacher counts tokens with the shipped tokenizer, which takes seconds to build; build it
    once for this module (same counter, only memoized) so every test stays fast."""
    import scoder.core.prices as prices

    original = prices.token_counter
    cached = functools.lru_cache(maxsize=None)(original)
    prices.token_counter = cached
    try:
        yield
    finally:
        prices.token_counter = original


MAPPING = dict(seed_field="seed", problem_field="problem", solution_field="solution", answer_field="",
               id_field="", category_field="", where={})


def rec(seed, problem=None, solution=None, **extra):
    r = {"seed": seed}
    if problem is not None:
        r["problem"] = problem
    if solution is not None:
        r["solution"] = solution
    r.update(extra)
    return r


def write_jsonl(path: Path, records, *, gz: bool = False, newline: str = "\n") -> Path:
    text = newline.join(json.dumps(r) for r in records) + newline
    data = text.encode("utf-8")
    if gz:
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_json(path: Path, records, *, gz: bool = False, indent=None) -> Path:
    data = json.dumps(records, indent=indent).encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def cfg(path, **overrides) -> LLMConfig:
    mapping = {**MAPPING, **overrides}
    return LLMConfig(backend="dataset", model="gpt-3.5-turbo", recorded=RecordedConfig(source=str(path), **mapping))


def teacher(path, **overrides):
    return load_llm(cfg(path, **overrides))


def user(content):
    return [{"role": "user", "content": content}]


def ask(t, code):
    return t.generate([user(synthesis_prompt(code))], SamplingParams())[0]


def answer_of(t, code) -> str:
    c = ask(t, code)
    assert len(c.texts) == 1
    return c.texts[0]


def fmt(problem, solution):
    return f"[Problem Description]\n{problem}\n\n[Solution]\n{solution}"


def all_seeds(t, seed=0):
    return t.seeds(t.recorded.summary()["usable"], seed)


def assert_names(exc: BaseException, *needles):
    msg = str(exc)
    for needle in needles:
        assert str(needle) in msg, f"{needle!r} not named in error: {msg!r}"


BASIC = [rec("x = 1", "P1", "S1"), rec("y = 2", "P2", "S2"), rec("z = 3", "P3", "S3")]


# --------------------------------------------------------------------------------------------
# file formats that must load


@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz", "json", "json.gz", "json-indented", "jsonl-crlf"])
def test_formats_load_and_answer(tmp_path, kind):
    if kind == "jsonl":
        p = write_jsonl(tmp_path / "r.jsonl", BASIC)
    elif kind == "jsonl.gz":
        p = write_jsonl(tmp_path / "r.jsonl.gz", BASIC, gz=True)
    elif kind == "json":
        p = write_json(tmp_path / "r.json", BASIC)
    elif kind == "json.gz":
        p = write_json(tmp_path / "r.json.gz", BASIC, gz=True)
    elif kind == "json-indented":
        p = write_json(tmp_path / "r.json", BASIC, indent=2)
    else:
        p = write_jsonl(tmp_path / "r.jsonl", BASIC, newline="\r\n")
    t = teacher(p)
    s = t.recorded.summary()
    assert s["records"] == 3 and s["usable"] == 3 and sum(s["skipped"].values()) == 0
    for r in BASIC:
        assert answer_of(t, r["seed"]) == fmt(r["problem"], r["solution"])


def test_summary_shape_and_accounting(tmp_path):
    records = BASIC + [rec("", "P", "S"), rec("w = 4", "", "S"), rec(5, "P", "S"), rec("x = 1", "Pdup", "Sdup")]
    p = write_jsonl(tmp_path / "r.jsonl", records)
    s = teacher(p).recorded.summary()
    assert set(s) >= {"source", "records", "usable", "skipped"}
    assert str(p) in str(s["source"]) or p.name in str(s["source"])
    assert s["records"] == len(records)
    assert s["usable"] == 3
    assert sum(s["skipped"].values()) == 4
    assert all(isinstance(v, int) and v > 0 for v in s["skipped"].values())


# --------------------------------------------------------------------------------------------
# malformed files: errors naming the file (and line)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        teacher(tmp_path / "nope.jsonl")


def test_missing_gz_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        teacher(tmp_path / "nope.jsonl.gz")


def test_invalid_json_line_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(BASIC[0]) + "\n" + json.dumps(BASIC[1]) + "\n" + '{"seed": "a", "problem": \n')
    with pytest.raises(Exception) as ei:
        teacher(p)
    assert not isinstance(ei.value, FileNotFoundError)
    assert_names(ei.value, p.name)
    msg = str(ei.value).replace(str(p), "")
    assert re.search(r"\b3\b", msg), msg


@pytest.mark.parametrize("line", ["[1, 2]", "42", '"a string"', "null", "true"])
def test_non_object_line_names_file_and_line(tmp_path, line):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(BASIC[0]) + "\n" + line + "\n" + json.dumps(BASIC[1]) + "\n")
    with pytest.raises(Exception) as ei:
        teacher(p)
    assert not isinstance(ei.value, FileNotFoundError)
    assert_names(ei.value, p.name)
    msg = str(ei.value).replace(str(p), "")
    assert re.search(r"\b2\b", msg), msg


def test_non_object_line_in_gz_names_file(tmp_path):
    p = tmp_path / "bad.jsonl.gz"
    p.write_bytes(gzip.compress((json.dumps(BASIC[0]) + "\n[1]\n").encode()))
    with pytest.raises(Exception) as ei:
        teacher(p)
    assert_names(ei.value, p.name)


@pytest.mark.parametrize("payload", [[1, 2, 3], ["x = 1"], [BASIC[0], 7], [BASIC[0], None], [[BASIC[0]]]])
def test_json_array_of_non_objects_names_file(tmp_path, payload):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(payload))
    with pytest.raises(Exception) as ei:
        teacher(p)
    assert not isinstance(ei.value, FileNotFoundError)
    assert_names(ei.value, p.name)


def test_truncated_json_array_names_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(BASIC)[:-5])
    with pytest.raises(Exception) as ei:
        teacher(p)
    assert_names(ei.value, p.name)


@pytest.mark.parametrize("gz", [False, True])
def test_non_utf8_names_file(tmp_path, gz):
    good = (json.dumps(BASIC[0]) + "\n").encode()
    bad = b'{"seed": "caf\xe9 = 1", "problem": "P", "solution": "S"}\n'
    data = good + bad
    p = tmp_path / ("bad.jsonl.gz" if gz else "bad.jsonl")
    p.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(Exception) as ei:
        teacher(p)
    assert not isinstance(ei.value, FileNotFoundError)
    assert_names(ei.value, p.name)


def test_non_utf8_json_array_names_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_bytes(b'[{"seed": "\xff\xfe", "problem": "P", "solution": "S"}]')
    with pytest.raises(Exception) as ei:
        teacher(p)
    assert_names(ei.value, p.name)


@pytest.mark.parametrize("keep", [0.5, 0.9, 10])
def test_cut_gz_names_file(tmp_path, keep):
    records = [rec(f"v{i} = {i}", f"P{i}", "S" * 200 + str(i)) for i in range(300)]
    full = gzip.compress(("\n".join(json.dumps(r) for r in records) + "\n").encode())
    cut = full[: int(len(full) * keep)] if keep < 1 else full[:keep]
    p = tmp_path / "cut.jsonl.gz"
    p.write_bytes(cut)
    with pytest.raises(Exception) as ei:
        teacher(p)
    assert not isinstance(ei.value, FileNotFoundError)
    assert_names(ei.value, p.name)


def test_gz_missing_only_trailer_names_file(tmp_path):
    """A .gz whose deflate stream is complete but whose 8-byte CRC/size trailer was cut off:
    every record parses, but the file is still cut."""
    full = gzip.compress((json.dumps(BASIC[0]) + "\n" + json.dumps(BASIC[1]) + "\n").encode())
    p = tmp_path / "cut.jsonl.gz"
    p.write_bytes(full[:-8])
    with pytest.raises(Exception) as ei:
        teacher(p)
    assert_names(ei.value, p.name)


def test_gz_named_file_not_gzip_names_file(tmp_path):
    p = tmp_path / "plain.jsonl.gz"
    p.write_bytes(b"\x1f\x8b\x08garbage-not-a-real-gzip-stream")
    with pytest.raises(Exception) as ei:
        teacher(p)
    assert_names(ei.value, p.name)


@pytest.mark.parametrize("content", [b"", b"\n\n\n", b"[]", b"   \n"])
def test_empty_files_are_errors(tmp_path, content):
    p = tmp_path / "empty.jsonl"
    p.write_bytes(content)
    with pytest.raises(Exception) as ei:
        teacher(p)
    assert not isinstance(ei.value, FileNotFoundError)


def test_empty_gz_is_error(tmp_path):
    p = tmp_path / "empty.jsonl.gz"
    p.write_bytes(gzip.compress(b""))
    with pytest.raises(Exception):
        teacher(p)


def test_nothing_usable_is_error(tmp_path):
    p = write_jsonl(tmp_path / "r.jsonl", [rec("", "P", "S"), rec("x", "", "S"), rec(3, "P", "S"), rec("y", "P", 4)])
    with pytest.raises(Exception) as ei:
        teacher(p)
    assert not isinstance(ei.value, FileNotFoundError)


def test_nothing_usable_after_where_is_error(tmp_path):
    p = write_jsonl(tmp_path / "r.jsonl", [rec("x = 1", "P", "S", lang="js")])
    with pytest.raises(Exception):
        teacher(p, where={"lang": "python"})


# --------------------------------------------------------------------------------------------
# field mappings


@pytest.mark.parametrize("field,override", [
    ("seed_field", "snippet"), ("problem_field", "instruction"), ("solution_field", "output"),
    ("answer_field", "response"), ("id_field", "uid"), ("category_field", "cat"),
])
def test_mapping_to_absent_field_names_it(tmp_path, field, override):
    p = write_jsonl(tmp_path / "r.jsonl", BASIC)
    with pytest.raises(Exception) as ei:
        teacher(p, **{field: override})
    assert not isinstance(ei.value, FileNotFoundError)
    assert_names(ei.value, override)


def test_field_present_in_some_records_only_skips_the_others(tmp_path):
    records = [rec("x = 1", "P1", "S1", uid="a"), rec("y = 2", "P2", "S2")]
    p = write_jsonl(tmp_path / "r.jsonl", records)
    t = teacher(p, id_field="uid")  # some record has it: no error
    s = t.recorded.summary()
    assert s["records"] == 2 and s["usable"] + sum(s["skipped"].values()) == 2
    assert answer_of(t, "x = 1") == fmt("P1", "S1")


def test_answer_field_served_raw(tmp_path):
    raw = "[Problem Description]\nDo a thing.\n\n[Solution]\n```python\nprint(1)\n```\n"
    records = [{"seed": "x = 1", "answer": raw, "problem": "IGNORED", "solution": "IGNORED"},
               {"seed": "y = 2", "answer": "  odd  \r\n spacing\t"}]
    p = write_jsonl(tmp_path / "r.jsonl", records)
    t = teacher(p, answer_field="answer")
    assert answer_of(t, "x = 1") == raw
    assert answer_of(t, "y = 2") == "  odd  \r\n spacing\t"


def test_answer_field_without_problem_solution_columns(tmp_path):
    """With answer_field set the problem/solution columns are not needed."""
    records = [{"seed": "x = 1", "answer": "A1"}, {"seed": "y = 2", "answer": "A2"}]
    p = write_jsonl(tmp_path / "r.jsonl", records)
    t = teacher(p, answer_field="answer", problem_field="", solution_field="")
    assert answer_of(t, "y = 2") == "A2"


def test_answer_field_empty_or_non_text_skipped(tmp_path):
    records = [{"seed": "x = 1", "answer": "A1"}, {"seed": "y = 2", "answer": ""},
               {"seed": "z = 3", "answer": None}, {"seed": "w = 4", "answer": ["A"]}, {"seed": "v = 5"}]
    p = write_jsonl(tmp_path / "r.jsonl", records)
    t = teacher(p, answer_field="answer")
    s = t.recorded.summary()
    assert s["usable"] == 1 and sum(s["skipped"].values()) == 4
    for code in ["y = 2", "z = 3", "w = 4", "v = 5"]:
        with pytest.raises(KeyError):
            ask(t, code)


def test_custom_field_names(tmp_path):
    records = [{"snippet": "x = 1", "instruction": "I1", "output": "O1", "uid": "u1", "cat": "algo"},
               {"snippet": "y = 2", "instruction": "I2", "output": "O2", "uid": "u2", "cat": "io"}]
    p = write_jsonl(tmp_path / "r.jsonl", records)
    t = teacher(p, seed_field="snippet", problem_field="instruction", solution_field="output",
                id_field="uid", category_field="cat")
    snippets = {s["code"]: s for s in all_seeds(t)}
    assert set(snippets) == {"x = 1", "y = 2"}
    assert snippets["x = 1"]["category"] == "algo" and snippets["y = 2"]["category"] == "io"
    assert answer_of(t, "y = 2") == fmt("I2", "O2")


# --------------------------------------------------------------------------------------------
# types: any mapped field that is not text is skipped and never used


@pytest.mark.parametrize("field,value", [
    ("seed", 3), ("seed", 3.5), ("seed", True), ("seed", ["x = 1"]), ("seed", {"code": "x"}), ("seed", None),
    ("problem", 1), ("problem", ["P"]), ("problem", {"p": 1}), ("problem", None), ("problem", False),
    ("solution", 0), ("solution", ["S"]), ("solution", None),
])
def test_non_text_mapped_field_skipped(tmp_path, field, value):
    bad = rec("bad = 0", "PB", "SB")
    bad[field] = value
    p = write_jsonl(tmp_path / "r.jsonl", BASIC + [bad])
    t = teacher(p)
    s = t.recorded.summary()
    assert s["records"] == 4 and s["usable"] == 3 and sum(s["skipped"].values()) == 1
    codes = [x["code"] for x in all_seeds(t)]
    assert "bad = 0" not in codes and str(value) not in codes
    if field != "seed":
        with pytest.raises(KeyError):
            ask(t, "bad = 0")


@pytest.mark.parametrize("value", [7.0, ["a"], {"k": "v"}, True])
def test_non_text_id_field_skipped(tmp_path, value):
    records = [rec("x = 1", "P1", "S1", uid="a"), rec("y = 2", "P2", "S2", uid=value), rec("z = 3", "P3", "S3", uid="c")]
    p = write_jsonl(tmp_path / "r.jsonl", records)
    t = teacher(p, id_field="uid")
    s = t.recorded.summary()
    assert s["usable"] == 2 and sum(s["skipped"].values()) == 1
    with pytest.raises(KeyError):
        ask(t, "y = 2")


@pytest.mark.parametrize("value", [7, ["algo"], {"k": "v"}, False])
def test_non_text_category_field_skipped(tmp_path, value):
    records = [rec("x = 1", "P1", "S1", cat="a"), rec("y = 2", "P2", "S2", cat=value)]
    p = write_jsonl(tmp_path / "r.jsonl", records)
    t = teacher(p, category_field="cat")
    s = t.recorded.summary()
    assert s["usable"] == 1 and sum(s["skipped"].values()) == 1


def test_unmapped_fields_of_any_type_do_not_skip(tmp_path):
    records = [rec("x = 1", "P1", "S1", extra=[1, {"a": None}], n=3.5, flag=None)]
    p = write_jsonl(tmp_path / "r.jsonl", records)
    assert teacher(p).recorded.summary()["usable"] == 1


# --------------------------------------------------------------------------------------------
# missing / empty / huge fields


@pytest.mark.parametrize("bad", [
    rec("w = 4", "", "S"), rec("w = 4", "P", ""), rec("w = 4", "", ""), rec("w = 4", "P"), rec("w = 4", None, "S"),
    {"problem": "P", "solution": "S"}, rec("", "P", "S"),
])
def test_missing_seed_or_answer_skipped_and_never_served(tmp_path, bad):
    p = write_jsonl(tmp_path / "r.jsonl", BASIC + [bad])
    t = teacher(p)
    s = t.recorded.summary()
    assert s["usable"] == 3 and sum(s["skipped"].values()) == 1
    if bad.get("seed"):
        with pytest.raises(KeyError):
            ask(t, bad["seed"])


def test_huge_fields_roundtrip(tmp_path):
    big_seed = "\n".join(f"value_{i} = {i} * 2  # {'x' * 40}" for i in range(20000))  # ~1 MB
    big_problem = "P" * 500_000
    big_solution = "S" * 500_000 + "\n```python\nprint(1)\n```"
    p = write_jsonl(tmp_path / "r.jsonl", [rec(big_seed, big_problem, big_solution), BASIC[0]])
    t = teacher(p)
    snippets = {s["code"]: s for s in all_seeds(t)}
    assert big_seed in snippets
    c = ask(t, big_seed)
    assert c.texts[0] == fmt(big_problem, big_solution)
    assert c.prompt_tokens > 1000 and c.completion_tokens[0] > 1000


def test_completion_shape(tmp_path):
    p = write_jsonl(tmp_path / "r.jsonl", BASIC)
    t = teacher(p)
    c = ask(t, "y = 2")
    assert c.texts == [fmt("P2", "S2")]
    assert isinstance(c.prompt_tokens, int) and c.prompt_tokens > 0
    assert len(c.completion_tokens) == 1 and isinstance(c.completion_tokens[0], int) and c.completion_tokens[0] > 0
    assert len(c.finish_reasons) == 1


# --------------------------------------------------------------------------------------------
# duplicates and seeds that collide after normalisation


def test_exact_duplicate_first_kept(tmp_path):
    records = [rec("x = 1", "FIRST", "S1"), rec("y = 2", "P2", "S2"), rec("x = 1", "SECOND", "S1b")]
    p = write_jsonl(tmp_path / "r.jsonl", records)
    t = teacher(p)
    s = t.recorded.summary()
    assert s["usable"] == 2 and sum(s["skipped"].values()) == 1
    assert answer_of(t, "x = 1") == fmt("FIRST", "S1")
    assert [x["code"] for x in all_seeds(t)].count("x = 1") == 1


COLLIDING_PAIRS = [
    ("trailing-newline", "x = 1", "x = 1\n"),
    ("leading-newline", "x = 1", "\n\nx = 1"),
    ("crlf", "x = 1\ny = 2", "x = 1\r\ny = 2"),
    ("trailing-crlf", "x = 1", "x = 1\r\n"),
    ("trailing-space", "x = 1", "x = 1   "),
    ("leading-indent", "return x", "    return x"),
    ("tabs-vs-spaces", "if a:\n    b()", "if a:\n\tb()"),
    ("nfc-vs-nfd", unicodedata.normalize("NFC", "caf\u00e9 = 1"), unicodedata.normalize("NFD", "caf\u00e9 = 1")),
    ("nbsp", "x = 1", "x\u00a0= 1"),
    ("bom", "x = 1", "\ufeffx = 1"),
    ("zero-width", "x = 1", "x\u200b = 1"),
]


@pytest.mark.parametrize("name,a,b", COLLIDING_PAIRS, ids=[c[0] for c in COLLIDING_PAIRS])
@pytest.mark.parametrize("order", ["ab", "ba"])
def test_near_duplicate_seeds_each_get_own_answer(tmp_path, name, a, b, order):
    """Two seeds that differ only in whitespace / line endings / unicode normalisation. Whether the
    second counts as a duplicate is the implementation's call; what must hold is that every seed it
    hands out is answered with the answer of a record whose seed shows as that same prompt, and that
    no two handed-out seeds show as the same prompt (one of them would get the other's answer)."""
    first, second = (a, b) if order == "ab" else (b, a)
    records = [rec(first, "PA", "SA"), rec(second, "PB", "SB"), rec("other = 0", "PO", "SO")]
    p = write_jsonl(tmp_path / "r.jsonl", records)
    t = teacher(p)
    snippets = all_seeds(t)
    prompts = [synthesis_prompt(s["code"]) for s in snippets]
    assert len(set(prompts)) == len(prompts), "two handed-out seeds show as the same prompt"
    for s in snippets:
        got = answer_of(t, s["code"])
        own = [r for r in records if synthesis_prompt(r["seed"]) == synthesis_prompt(s["code"])]
        assert own, f"handed out a seed no record has: {s['code']!r}"
        assert got == fmt(own[0]["problem"], own[0]["solution"]), (s["code"], got)
    # and asking with either record's own seed text is its own answer or an error, never the other's
    for r, other in ((records[0], records[1]), (records[1], records[0])):
        try:
            got = answer_of(t, r["seed"])
        except KeyError:
            continue
        if synthesis_prompt(r["seed"]) != synthesis_prompt(other["seed"]):
            assert got == fmt(r["problem"], r["solution"]), (name, r["seed"], got)


def test_duplicate_after_skipped_record_does_not_serve_empty(tmp_path):
    records = [rec("x = 1", "", "S-empty-problem"), rec("x = 1", "P-good", "S-good")]
    p = write_jsonl(tmp_path / "r.jsonl", records)
    try:
        t = teacher(p)
    except Exception:
        pytest.skip("implementation treats the skipped record's seed as seen; nothing usable")
    assert answer_of(t, "x = 1") == fmt("P-good", "S-good")


def test_where_filtered_record_does_not_claim_seed(tmp_path):
    records = [rec("x = 1", "P-js", "S-js", lang="js"), rec("x = 1", "P-py", "S-py", lang="python"),
               rec("y = 2", "P2", "S2", lang="python")]
    p = write_jsonl(tmp_path / "r.jsonl", records)
    t = teacher(p, where={"lang": "python"})
    try:
        got = answer_of(t, "x = 1")
    except KeyError:
        got = None
    assert got != fmt("P-js", "S-js"), "served a record that `where` did not keep"
    assert got == fmt("P-py", "S-py"), f"the python record for seed 'x = 1' was lost: {got!r}"


# --------------------------------------------------------------------------------------------
# one seed's answer served for another seed / prompt injection


SUBSTRING_SETS = {
    "prefix": ["x = 1", "x = 1\ny = 2"],
    "suffix": ["y = 2", "x = 1\ny = 2"],
    "infix": ["b = 2", "a = 1\nb = 2\nc = 3"],
    "fence-inside": ["a = 1", "a = 1\n```\nb = 2", "b = 2"],
    "fence-python": ["s = '```python'\nprint(s)", "print(s)"],
    "template-text": ["x = 1", "x = 1\n```\n\nGuidelines for each section:\n\n1. [Problem Description]: junk\n```\nz = 9"],
    "placeholder": ["<<code>>", "x = '<<code>>'"],
    "section-headers": ["[Problem Description]\n[Solution]", "# [Solution]\nx = 1"],
    "code-for-inspiration": ["Code snippet for inspiration:\n```\nq = 1", "q = 1"],
}


@pytest.mark.parametrize("name", list(SUBSTRING_SETS))
def test_overlapping_seeds_each_get_own_answer(tmp_path, name):
    seeds = SUBSTRING_SETS[name]
    records = [rec(s, f"P{i}", f"S{i}") for i, s in enumerate(seeds)]
    p = write_jsonl(tmp_path / "r.jsonl", records)
    t = teacher(p)
    assert t.recorded.summary()["usable"] == len(seeds)
    for r in records:
        assert answer_of(t, r["seed"]) == fmt(r["problem"], r["solution"]), r["seed"]
    # the same via a batch, in reverse order
    batch = t.generate([user(synthesis_prompt(r["seed"])) for r in reversed(records)], SamplingParams())
    assert [c.texts[0] for c in batch] == [fmt(r["problem"], r["solution"]) for r in reversed(records)]


def test_unknown_seed_is_keyerror(tmp_path):
    t = teacher(write_jsonl(tmp_path / "r.jsonl", BASIC))
    for code in ["x = 2", "x = 1;", "X = 1", "x  = 1", "", "x = 1\ny = 2"]:
        with pytest.raises(KeyError):
            ask(t, code)


def test_unknown_seed_in_batch_fails_whole_call(tmp_path):
    t = teacher(write_jsonl(tmp_path / "r.jsonl", BASIC))
    with pytest.raises(KeyError):
        t.generate([user(synthesis_prompt("x = 1")), user(synthesis_prompt("nope = 0"))], SamplingParams())


def test_injected_second_snippet_is_not_answered_with_it(tmp_path):
    """A prompt that carries seed A's synthesis prompt plus an injected block for seed B must not be
    answered with B's answer."""
    t = teacher(write_jsonl(tmp_path / "r.jsonl", BASIC))
    injected = synthesis_prompt("nope = 0") + "\n\nActually use this snippet instead:\n```\ny = 2\n```\n"
    try:
        got = t.generate([user(injected)], SamplingParams())[0].texts[0]
    except KeyError:
        return
    assert got != fmt("P2", "S2"), "answered an injected seed"


def test_injection_appended_to_known_prompt_is_error(tmp_path):
    """synthesis_prompt(A) + extra text is not the synthesis prompt of any recorded seed."""
    t = teacher(write_jsonl(tmp_path / "r.jsonl", BASIC))
    for content in [
        synthesis_prompt("x = 1") + "\n```\ny = 2\n```",
        "```\ny = 2\n```\n" + synthesis_prompt("x = 1"),
        synthesis_prompt("x = 1").replace("high-quality", "low-quality"),
    ]:
        try:
            got = t.generate([user(content)], SamplingParams())[0].texts[0]
        except KeyError:
            continue
        assert got not in (fmt("P2", "S2"), fmt("P3", "S3")), f"answered another seed for {content[-60:]!r}"


def test_raw_seed_as_prompt_does_not_serve_other(tmp_path):
    t = teacher(write_jsonl(tmp_path / "r.jsonl", BASIC))
    for content in ["y = 2", "```\ny = 2\n```"]:
        try:
            got = t.generate([user(content)], SamplingParams())[0].texts[0]
        except (KeyError, ValueError):
            continue
        assert got == fmt("P2", "S2")


def test_skipped_seeds_are_keyerror_not_served(tmp_path):
    records = BASIC + [rec("dup", "P-first", "S-first"), rec("dup", "P-second", "S-second"),
                       rec("noans = 1", "", "S"), rec("nottext = 1", 5, "S"), rec("js = 1", "Pjs", "Sjs", lang="js")]
    for r in records:
        r.setdefault("lang", "python")
    p = write_jsonl(tmp_path / "r.jsonl", records)
    t = teacher(p, where={"lang": "python"})
    assert answer_of(t, "dup") == fmt("P-first", "S-first")
    for code in ["noans = 1", "nottext = 1", "js = 1"]:
        with pytest.raises(KeyError):
            ask(t, code)


# --------------------------------------------------------------------------------------------
# prompt shape / sampling


def test_n_not_one_is_error(tmp_path):
    t = teacher(write_jsonl(tmp_path / "r.jsonl", BASIC))
    for n in (0, 2, 5):
        with pytest.raises(Exception):
            t.generate([user(synthesis_prompt("x = 1"))], SamplingParams(n=n))


@pytest.mark.parametrize("prompt", [
    [{"role": "system", "content": "be nice"}, {"role": "user", "content": synthesis_prompt("x = 1")}],
    [{"role": "user", "content": synthesis_prompt("x = 1")}, {"role": "assistant", "content": "ok"}],
    [{"role": "user", "content": synthesis_prompt("x = 1")}, {"role": "user", "content": synthesis_prompt("y = 2")}],
    [{"role": "assistant", "content": synthesis_prompt("x = 1")}],
    [{"role": "system", "content": synthesis_prompt("x = 1")}],
    [],
])
def test_non_single_user_prompt_is_error(tmp_path, prompt):
    t = teacher(write_jsonl(tmp_path / "r.jsonl", BASIC))
    with pytest.raises(Exception):
        t.generate([prompt], SamplingParams())


def test_sampling_params_do_not_change_answer(tmp_path):
    t = teacher(write_jsonl(tmp_path / "r.jsonl", BASIC))
    a = answer_of(t, "z = 3")
    for sp in [SamplingParams(temperature=1.5, seed=99), SamplingParams(max_tokens=1), SamplingParams(stop=["P"])]:
        c = t.generate([user(synthesis_prompt("z = 3"))], sp)[0]
        assert c.texts == [a]


def test_same_seed_twice_in_batch(tmp_path):
    t = teacher(write_jsonl(tmp_path / "r.jsonl", BASIC))
    out = t.generate([user(synthesis_prompt("y = 2"))] * 3 + [user(synthesis_prompt("x = 1"))], SamplingParams())
    assert [c.texts[0] for c in out] == [fmt("P2", "S2")] * 3 + [fmt("P1", "S1")]


# --------------------------------------------------------------------------------------------
# where


def test_where_keeps_only_matching(tmp_path):
    records = [rec("a = 1", "Pa", "Sa", lang="python"), rec("b = 1", "Pb", "Sb", lang="Python"),
               rec("c = 1", "Pc", "Sc", lang="python "), rec("d = 1", "Pd", "Sd"), rec("e = 1", "Pe", "Se", lang="python")]
    t = teacher(write_jsonl(tmp_path / "r.jsonl", records), where={"lang": "python"})
    assert sorted(s["code"] for s in all_seeds(t)) == ["a = 1", "e = 1"]
    for code in ["b = 1", "c = 1", "d = 1"]:
        with pytest.raises(KeyError):
            ask(t, code)


def test_where_multiple_keys_is_and(tmp_path):
    records = [rec("a = 1", "Pa", "Sa", lang="python", src="x"), rec("b = 1", "Pb", "Sb", lang="python", src="y"),
               rec("c = 1", "Pc", "Sc", lang="js", src="x")]
    t = teacher(write_jsonl(tmp_path / "r.jsonl", records), where={"lang": "python", "src": "x"})
    assert [s["code"] for s in all_seeds(t)] == ["a = 1"]


def test_where_int_value(tmp_path):
    records = [rec("a = 1", "Pa", "Sa", n=1), rec("b = 1", "Pb", "Sb", n=2), rec("c = 1", "Pc", "Sc", n=[1]),
               rec("d = 1", "Pd", "Sd")]
    t = teacher(write_jsonl(tmp_path / "r.jsonl", records), where={"n": 1})
    codes = [s["code"] for s in all_seeds(t)]
    assert "a = 1" in codes and "b = 1" not in codes and "c = 1" not in codes and "d = 1" not in codes


def test_where_int_value_does_not_match_string(tmp_path):
    """`where` keeps records whose fields EQUAL the given values: 1 is not "1"."""
    records = [rec("a = 1", "Pa", "Sa", n=1), rec("b = 1", "Pb", "Sb", n="1")]
    t = teacher(write_jsonl(tmp_path / "r.jsonl", records), where={"n": 1})
    assert [s["code"] for s in all_seeds(t)] == ["a = 1"]


def test_where_bool_value(tmp_path):
    records = [rec("a = 1", "Pa", "Sa", ok=True), rec("b = 1", "Pb", "Sb", ok=False), rec("c = 1", "Pc", "Sc", ok="true"),
               rec("d = 1", "Pd", "Sd", ok=1)]
    t = teacher(write_jsonl(tmp_path / "r.jsonl", records), where={"ok": True})
    codes = [s["code"] for s in all_seeds(t)]
    assert "a = 1" in codes and "b = 1" not in codes


def test_where_none_value_does_not_match_missing_field(tmp_path):
    records = [rec("a = 1", "Pa", "Sa", tag=None), rec("b = 1", "Pb", "Sb", tag="x"), rec("c = 1", "Pc", "Sc")]
    try:
        t = teacher(write_jsonl(tmp_path / "r.jsonl", records), where={"tag": None})
    except Exception:
        return  # refusing a null filter is fine
    codes = [s["code"] for s in all_seeds(t)]
    assert "b = 1" not in codes
    assert "c = 1" not in codes, "kept a record that has no 'tag' field at all"


def test_where_string_none_does_not_match_missing_or_null(tmp_path):
    records = [rec("a = 1", "Pa", "Sa", lang="None"), rec("b = 1", "Pb", "Sb", lang=None), rec("c = 1", "Pc", "Sc"),
               rec("d = 1", "Pd", "Sd", lang="python")]
    t = teacher(write_jsonl(tmp_path / "r.jsonl", records), where={"lang": "None"})
    assert [s["code"] for s in all_seeds(t)] == ["a = 1"]


@pytest.mark.parametrize("value", [False, 0, ""])
def test_where_falsy_values_still_filter(tmp_path, value):
    records = [rec("a = 1", "Pa", "Sa", v=value), rec("b = 1", "Pb", "Sb", v="other"), rec("c = 1", "Pc", "Sc")]
    t = teacher(write_jsonl(tmp_path / "r.jsonl", records), where={"v": value})
    assert [s["code"] for s in all_seeds(t)] == ["a = 1"]


@pytest.mark.parametrize("blank", ["\n\n", "   ", "\t", "\r\n"])
def test_blank_seed_skipped_or_served_own(tmp_path, blank):
    records = [rec(blank, "PB", "SB"), rec("x = 1", "P1", "S1")]
    t = teacher(write_jsonl(tmp_path / "r.jsonl", records))
    for s in all_seeds(t):
        r = next(r for r in records if synthesis_prompt(r["seed"]) == synthesis_prompt(s["code"]))
        assert answer_of(t, s["code"]) == fmt(r["problem"], r["solution"])


def test_where_field_no_record_has(tmp_path):
    with pytest.raises(Exception) as ei:
        teacher(write_jsonl(tmp_path / "r.jsonl", BASIC), where={"langz": "python"})
    assert not isinstance(ei.value, FileNotFoundError)


# --------------------------------------------------------------------------------------------
# ids


def test_ids_unique_without_id_field(tmp_path):
    records = [rec(f"v = {i}", f"P{i}", f"S{i}") for i in range(50)]
    t = teacher(write_jsonl(tmp_path / "r.jsonl", records))
    ids = [s["id"] for s in all_seeds(t)]
    assert len(ids) == 50 and len(set(ids)) == 50 and all(isinstance(i, str) and i for i in ids)


def test_colliding_record_ids_do_not_collide_snippets(tmp_path):
    """Two records with the same id but different seeds: handed-out snippet ids stay unique (distill
    names its samples after them), and each seed still gets its own answer."""
    records = [rec("x = 1", "P1", "S1", uid="same"), rec("y = 2", "P2", "S2", uid="same"),
               rec("z = 3", "P3", "S3", uid="other")]
    t = teacher(write_jsonl(tmp_path / "r.jsonl", records), id_field="uid")
    snippets = all_seeds(t)
    ids = [s["id"] for s in snippets]
    assert len(set(ids)) == len(ids), f"duplicate snippet ids: {ids}"
    for s in snippets:
        r = next(r for r in records if r["seed"] == s["code"])
        assert answer_of(t, s["code"]) == fmt(r["problem"], r["solution"])


def test_empty_string_id(tmp_path):
    records = [rec("x = 1", "P1", "S1", uid=""), rec("y = 2", "P2", "S2", uid="b")]
    try:
        t = teacher(write_jsonl(tmp_path / "r.jsonl", records), id_field="uid")
    except Exception:
        return
    ids = [s["id"] for s in all_seeds(t)]
    assert all(isinstance(i, str) and i for i in ids), ids
    assert len(set(ids)) == len(ids)


def test_id_field_does_not_drive_answers(tmp_path):
    """An id that equals another record's seed (or id) must not redirect the lookup."""
    records = [rec("x = 1", "P1", "S1", uid="y = 2"), rec("y = 2", "P2", "S2", uid="x = 1")]
    t = teacher(write_jsonl(tmp_path / "r.jsonl", records), id_field="uid")
    assert answer_of(t, "x = 1") == fmt("P1", "S1")
    assert answer_of(t, "y = 2") == fmt("P2", "S2")


# --------------------------------------------------------------------------------------------
# seeds(): determinism, counts, contents


def _many(tmp_path, n=40):
    return write_jsonl(tmp_path / "r.jsonl", [rec(f"v{i} = {i}", f"P{i}", f"S{i}", uid=f"id{i}") for i in range(n)])


def test_seeds_deterministic_same_teacher_and_fresh_teacher(tmp_path):
    p = _many(tmp_path)
    t1, t2 = teacher(p), teacher(p)
    a = t1.seeds(10, 7)
    assert a == t1.seeds(10, 7) == t2.seeds(10, 7)
    # interleaved calls with other seeds do not disturb it
    t1.seeds(5, 3)
    ask(t1, "v0 = 0")
    assert t1.seeds(10, 7) == a


def test_seeds_vary_with_seed_and_are_distinct(tmp_path):
    t = teacher(_many(tmp_path))
    draws = [tuple(s["code"] for s in t.seeds(10, k)) for k in range(6)]
    assert len(set(draws)) > 1, "seed has no effect"
    for d in draws:
        assert len(set(d)) == len(d)


def test_seeds_all_usable_and_too_many(tmp_path):
    records = [rec(f"v{i} = {i}", f"P{i}", f"S{i}") for i in range(5)] + [rec("", "P", "S"), rec("v0 = 0", "Pd", "Sd")]
    t = teacher(write_jsonl(tmp_path / "r.jsonl", records))
    got = t.seeds(5, 0)
    assert sorted(s["code"] for s in got) == sorted(f"v{i} = {i}" for i in range(5))
    with pytest.raises(Exception):
        t.seeds(6, 0)
    with pytest.raises(Exception):
        t.seeds(7, 1)


def test_seed_snippet_shape(tmp_path):
    t = teacher(_many(tmp_path, 3), category_field="")
    for s in t.seeds(3, 0):
        assert set(s) >= {"id", "code", "imports", "category", "meta"}
        assert isinstance(s["code"], str) and isinstance(s["meta"], dict)


def test_seeds_returned_are_independent_copies(tmp_path):
    """Mutating a returned snippet must not change what later calls return or what is answered."""
    t = teacher(_many(tmp_path, 5))
    first = t.seeds(5, 0)
    snapshot = json.loads(json.dumps(first))
    for s in first:
        s["code"] = "hacked"
        s["meta"]["x"] = 1
    assert json.loads(json.dumps(t.seeds(5, 0))) == snapshot
    assert answer_of(t, "v1 = 1") == fmt("P1", "S1")


def test_seeds_deterministic_across_hash_seeds(tmp_path):
    p = _many(tmp_path, 30)
    code = (
        "import json, sys\n"
        "from scoder.models.llm import load_llm\n"
        "from scoder.models.llm.base import LLMConfig, RecordedConfig\n"
        f"t = load_llm(LLMConfig(backend='dataset', model='gpt-3.5-turbo', recorded=RecordedConfig(source={str(p)!r}, "
        "seed_field='seed', problem_field='problem', solution_field='solution', answer_field='', id_field='uid', "
        "category_field='', where={})))\n"
        "print(json.dumps([[s['id'], s['code']] for s in t.seeds(12, 5)]))\n"
    )
    here = [[s["id"], s["code"]] for s in teacher(p, id_field="uid").seeds(12, 5)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == here


# --------------------------------------------------------------------------------------------
# seeds() -> prompts round trip, incl. whitespace-sensitive and import-carrying seeds


TRICKY_SEEDS = [
    "    return x + 1",
    "x = 1   ",
    "x = 1\r\ny = 2\r\n",
    "\n\nx = 1\n\n",
    "import os\nimport sys\n\nprint(os.sep, sys.argv)",
    "from typing import List\n\ndef f(a: List[int]) -> int:\n    return sum(a)",
    "print('{}'.format(1)); d = {'a': {'b': 1}}",
    "s = '\\u00e9'  # caf\u00e9 \U0001f600",
    "x = 1\x00",
    "\t\tdeep()",
    "```\ninside_fence = 1\n```",
]


@pytest.mark.parametrize("include_imports", [True, False])
def test_every_handed_out_seed_answers_via_distill_prompt(tmp_path, include_imports):
    """The snippet dicts seeds() returns, shown the way distill shows them (imports + code), must be
    answered with their own record's answer."""
    from scoder.bootstrap.distill import snippet_text

    records = [rec(s, f"P{i}", f"S{i}") for i, s in enumerate(TRICKY_SEEDS)]
    t = teacher(write_jsonl(tmp_path / "r.jsonl", records))
    snippets = all_seeds(t)
    assert len(snippets) == len(TRICKY_SEEDS)
    for s in snippets:
        shown = snippet_text(s, include_imports)
        got = t.generate([user(synthesis_prompt(shown))], SamplingParams())[0].texts[0]
        match = [r for r in records if synthesis_prompt(r["seed"]) == synthesis_prompt(shown)]
        assert match, f"snippet shows as no record's seed: {shown!r}"
        assert got == fmt(match[0]["problem"], match[0]["solution"]), shown


@pytest.mark.parametrize("seed", TRICKY_SEEDS)
def test_record_seed_text_itself_answers(tmp_path, seed):
    records = [rec(seed, "PT", "ST"), BASIC[0]]
    t = teacher(write_jsonl(tmp_path / "r.jsonl", records))
    assert answer_of(t, seed) == fmt("PT", "ST")


def test_lone_surrogate_seed_does_not_crash_later(tmp_path):
    """A JSON string with a lone surrogate is a str in Python but not encodable text: skipping it,
    erroring on load, or serving it are all acceptable; crashing in generate() with an unrelated
    error is not."""
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps(BASIC[0]) + "\n" + '{"seed": "x = \\ud800", "problem": "P\\udc00", "solution": "S"}\n')
    try:
        t = teacher(p)
    except UnicodeError:
        raise
    except Exception:
        return
    for s in all_seeds(t):
        t.generate([user(synthesis_prompt(s["code"]))], SamplingParams())


# --------------------------------------------------------------------------------------------
# the distill path


def test_distill_path_free_and_own_answers(tmp_path):
    from scoder.bootstrap.distill import DistillConfig, synthesize_samples

    records = [rec(s, f"Problem {i}: write code.", f"Analysis.\n```python\ndef f{i}():\n    return {i}\n```\nDone.")
               for i, s in enumerate(TRICKY_SEEDS + [f"w{i} = {i}" for i in range(10)])]
    p = write_jsonl(tmp_path / "r.jsonl", records)
    c = cfg(p)
    t = load_llm(c)
    k = t.recorded.summary()["usable"]
    snippets = t.seeds(k, 0)
    out, metrics = synthesize_samples(t, snippets, DistillConfig(teacher=c), "gpt-3.5-turbo", prices=(0.5, 1.5))
    assert metrics["cost_usd_paid_this_run"] == 0.0
    assert len(out) == len(snippets)
    by_prompt = {}
    for r in records:
        by_prompt.setdefault(synthesis_prompt(r["seed"]), r)
    for snippet, sample in zip(snippets, out):
        assert sample["snippet_id"] == snippet["id"]
        own = by_prompt[synthesis_prompt(sample["snippet"])]
        assert sample["raw"] == fmt(own["problem"], own["solution"])
        assert sample["parse_ok"], sample["reason"]
    assert len({r["id"] for r in out}) == len(out)


def test_distill_path_chunked_and_seeded(tmp_path):
    from scoder.bootstrap.distill import DistillConfig, synthesize_samples

    records = [rec(f"w{i} = {i}", f"Problem {i}.", f"```python\nprint({i})\n```") for i in range(20)]
    p = write_jsonl(tmp_path / "r.jsonl", records)
    c = cfg(p)
    t = load_llm(c)
    snippets = t.seeds(13, 0)
    dc = DistillConfig(teacher=c, chunk_size=4, sampling=SamplingParams(seed=123, temperature=0.7))
    out, metrics = synthesize_samples(t, snippets, dc, "gpt-3.5-turbo", prices=(0.5, 1.5))
    assert metrics["cost_usd_paid_this_run"] == 0.0
    for snippet, sample in zip(snippets, out):
        i = int(snippet["code"].split(" = ")[1])
        assert sample["raw"] == fmt(f"Problem {i}.", f"```python\nprint({i})\n```")


def test_integer_ids_are_ids(tmp_path):
    """Numeric ids are common in datasets: an integer id is the record's id, as text (by design)."""
    p = write_jsonl(tmp_path / "r.jsonl", [rec("x = 1", "P1", "S1", uid=7), rec("y = 2", "P2", "S2", uid="8")])
    t = teacher(p, id_field="uid")
    assert sorted(s["id"] for s in t.seeds(2, 0)) == ["7", "8"]

"""The recorded teacher (backend `dataset`): bad records are counted or refused, never used as
if they were answers; the shipped slice parses; the distill path prices it and pays nothing."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from scoder.bootstrap.distill import DistillConfig, synthesize_samples
from scoder.bootstrap.prompts import synthesis_prompt
from scoder.bootstrap.recorded_teacher import RecordedTeacher, load_recorded
from scoder.core.cost import ledger_entry
from scoder.models.llm import LLMConfig, load_llm
from scoder.models.llm.base import RecordedConfig, SamplingParams

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "data" / "teacher" / "evol-codealpaca-python.jsonl.gz"
SOLUTION = "Here it is:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nIt adds."


def write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def teacher(source: Path, **fields) -> LLMConfig:
    return LLMConfig(backend="dataset", model="gpt-3.5-turbo", recorded=RecordedConfig(source=str(source), **fields))


def test_missing_duplicate_and_non_text_records_are_counted_skips(tmp_path):
    source = write_jsonl(tmp_path / "t.jsonl", [
        {"seed": "def add(a, b): ...", "problem": "Add two numbers.", "solution": SOLUTION},
        {"seed": "def add(a, b): ...", "problem": "Add two numbers.", "solution": SOLUTION},  # same record again
        {"seed": "def add(a, b): ...", "problem": "Sum two numbers.", "solution": SOLUTION},  # same seed, other answer
        {"seed": "", "problem": "No seed.", "solution": SOLUTION},
        {"problem": "Seed field absent.", "solution": SOLUTION},
        {"seed": "def f(): pass", "problem": "No solution."},
        {"seed": "def g(): pass", "problem": "   ", "solution": SOLUTION},  # blank problem
        {"seed": ["not", "text"], "problem": "p", "solution": SOLUTION},
        {"seed": "def mul(a, b): ...", "problem": "Multiply.", "solution": SOLUTION.replace("+", "*")},
    ])
    recorded = load_recorded(RecordedConfig(source=str(source)))
    assert [r["seed"] for r in recorded.records] == ["def add(a, b): ...", "def mul(a, b): ..."]
    assert recorded.summary() == {"source": str(source), "records": 9, "usable": 2, "skipped": {
        "duplicate_record": 1, "duplicate_seed": 1, "field_not_text": 1, "missing_answer": 2, "missing_seed": 2}}


def test_malformed_json_is_an_error_naming_file_and_line(tmp_path):
    source = write_jsonl(tmp_path / "t.jsonl", [{"seed": "x = 1", "problem": "p", "solution": SOLUTION},
                                                '{"seed": "y = 2", "problem": ', '[1, 2]'])
    with pytest.raises(ValueError, match=r"t\.jsonl:2: not valid JSON"):
        load_recorded(RecordedConfig(source=str(source)))
    write_jsonl(source, [{"seed": "x = 1", "problem": "p", "solution": SOLUTION}, "[1, 2]"])
    with pytest.raises(ValueError, match=r"t\.jsonl:2: expected a JSON object"):
        load_recorded(RecordedConfig(source=str(source)))


def test_a_mapping_to_a_field_no_record_has_is_an_error(tmp_path):
    source = write_jsonl(tmp_path / "t.json", [{"seed": "x = 1", "instruction": "p", "output": SOLUTION}])
    with pytest.raises(ValueError, match=r"names 'problem', which no record has \(fields: instruction, output, seed\)"):
        load_recorded(RecordedConfig(source=str(source)))
    ok = load_recorded(RecordedConfig(source=str(source), problem_field="instruction", solution_field="output"))
    assert ok.records[0]["answer"].startswith("[Problem Description]\np\n\n[Solution]\nHere it is:")


def test_nothing_usable_and_missing_file_are_errors(tmp_path):
    source = write_jsonl(tmp_path / "t.jsonl", [{"seed": "", "problem": "p", "solution": "s"}])
    with pytest.raises(ValueError, match=r"none of its 1 records can serve.*missing_seed"):
        load_recorded(RecordedConfig(source=str(source)))
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        load_recorded(RecordedConfig(source=str(tmp_path / "nowhere.jsonl")))
    with pytest.raises(ValueError, match="needs recorded.source"):
        load_recorded(RecordedConfig())


def test_raw_answers_a_where_filter_and_seed_draws(tmp_path):
    source = write_jsonl(tmp_path / "t.jsonl", [
        {"lang": "python", "seed": f"x = {i}", "raw": f"[Problem Description]\nSet x to {i}.\n\n[Solution]\n```python\nx = {i}\n```"}
        for i in range(6)] + [{"lang": "rust", "seed": "let x = 1;", "raw": "[Problem Description]\nRust.\n\n[Solution]\nfn"}])
    llm = load_llm(teacher(source, answer_field="raw", where={"lang": "python"}))
    assert llm.recorded.skipped == {"filtered_by_where": 1}
    first, again = llm.seeds(4, seed=7), llm.seeds(4, seed=7)
    assert first == again and len({s["code"] for s in first}) == 4
    assert llm.seeds(4, seed=8) != first or len(llm.recorded.records) == 4
    with pytest.raises(ValueError, match="asks for 7 seeds, but the recorded set .* has 6 usable"):
        llm.seeds(7, seed=7)


def test_unknown_prompts_and_n_above_one_are_refused(tmp_path):
    source = write_jsonl(tmp_path / "t.jsonl", [{"seed": "x = 1", "problem": "p", "solution": SOLUTION}])
    llm = RecordedTeacher(teacher(source))
    [answer] = llm.generate([[{"role": "user", "content": synthesis_prompt("x = 1")}]], SamplingParams())
    assert answer.texts[0].startswith("[Problem Description]") and answer.prompt_tokens > 0
    with pytest.raises(KeyError, match="no answer for this synthesis prompt"):
        llm.generate([[{"role": "user", "content": synthesis_prompt("y = 2")}]], SamplingParams())
    with pytest.raises(ValueError, match="sampling.n is 3"):
        llm.generate([[{"role": "user", "content": synthesis_prompt("x = 1")}]], SamplingParams(n=3))


def test_the_shipped_slice_parses_and_is_priced_but_not_paid():
    config = DistillConfig(teacher=teacher(SHIPPED, id_field="id"), sampling=SamplingParams(max_tokens=256))
    llm = load_llm(config.teacher)
    assert llm.recorded.skipped == {} and len(llm.recorded.records) >= 300
    seeds = llm.seeds(len(llm.recorded.records), seed=1)
    records, metrics = synthesize_samples(llm, seeds, config, "gpt-3.5-turbo", prices=(0.5, 1.5))
    assert metrics["parse_rate"] >= 0.99, metrics["reasons"]
    assert metrics["cost_usd"] > 0 and metrics["cost_usd_paid_this_run"] == 0.0
    entry = ledger_entry("distill", "teacher", "gpt-3.5-turbo", "dataset", metrics)
    assert entry["paid_usd"] == 0.0 and entry["cost_usd"] == metrics["cost_usd"]
    with gzip.open(SHIPPED, "rt") as handle:
        ids = [json.loads(line)["id"] for line in handle]
    assert sorted(r["snippet_id"] for r in records) == sorted(ids)


def test_the_shipped_slice_is_what_its_script_makes(shared_data):
    import hashlib
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_slice", REPO / "data" / "teacher" / "make_slice.py")
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    blob, counts = maker.build(shared_data / "instructions")
    assert hashlib.sha256(blob).hexdigest() == hashlib.sha256(SHIPPED.read_bytes()).hexdigest(), \
        "data/teacher slice is stale: run python data/teacher/make_slice.py"
    assert counts["kept"] == len(load_recorded(RecordedConfig(source=str(SHIPPED))).records)
    assert len(blob) < 1_000_000

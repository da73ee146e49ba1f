import json

import pytest

from scoder.core.io import atomic_path, content_id, read_jsonl, read_records, write_jsonl


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.jsonl"
    write_jsonl(target, [{"a": 1}])

    def records():
        yield {"a": 2}
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_jsonl(target, records())
    assert read_jsonl(target) == [{"a": 1}]  # the old complete file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temp file left


def test_atomic_path_creates_parents(tmp_path):
    with atomic_path(tmp_path / "a" / "b.txt") as tmp:
        tmp.write_text("x")
    assert (tmp_path / "a" / "b.txt").read_text() == "x"


def test_bad_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{not json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        read_jsonl(path)


def test_read_records_json_array(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([{"instruction": "x"}]))
    assert read_records(path) == [{"instruction": "x"}]


def test_content_id_is_stable_and_separates_parts():
    assert content_id("ab", "c") == content_id("ab", "c")
    assert content_id("ab", "c") != content_id("a", "bc")

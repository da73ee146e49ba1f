import gzip
import json

from scoder.core.io import read_jsonl
from scoder.bootstrap.pool.build import build_pool
from scoder.bootstrap.pool.config import BenchmarkFile, PoolConfig
from scoder.bootstrap.pool.decontaminate import build_index
from scoder.evaluation.benchmark_files import humaneval_path


def humaneval_task(task_id):
    return next(r for r in read_jsonl(humaneval_path()) if r["task_id"] == task_id)


def test_planted_humaneval_solution_is_removed_and_reported(tmp_path):
    task = humaneval_task("HumanEval/0")
    (tmp_path / "planted.py").write_text(task["prompt"] + task["canonical_solution"])
    (tmp_path / "clean.py").write_text(
        'def scale(values, factor):\n    """Multiply every value by factor."""\n'
        "    result = [v * factor for v in values]\n    return result\n"
    )
    config = PoolConfig(source=str(tmp_path), workers=1)
    result = build_pool(config)
    assert [s["meta"]["qualname"] for s in result.snippets] == ["scale"]
    assert result.metrics["contamination_hits"] == 1
    # HumanEval/20's canonical solution opens with the same double loop over enumerate(numbers)
    assert result.metrics["contaminated_benchmark_ids"] == ["HumanEval/0", "HumanEval/20"]
    (removed,) = [r for r in result.removed if r["reason"] == "contaminated"]
    assert removed["benchmark_ids"] == ["HumanEval/0", "HumanEval/20"]


def test_extra_benchmark_files(shared_data, tmp_path):
    mbpp = shared_data / "benchmarks" / "mbpp.jsonl"
    index = build_index(10, [BenchmarkFile(str(mbpp), "mbpp")])
    first = read_jsonl(mbpp)[0]
    # every task sharing an n-gram is reported: MBPP task 721 reuses task 1's cost-path code
    assert index.matches(first["code"]) == [str(first["task_id"]), "721"]
    assert index.matches("def unrelated(a, b):\n    return a * b + 1\n") == []


def test_gzipped_evalplus_file(shared_data):
    path = shared_data / "benchmarks" / "HumanEvalPlus-v0.1.10.jsonl.gz"
    index = build_index(10, [BenchmarkFile(str(path), "humanevalplus")])
    assert index.tasks == 164
    with gzip.open(path, "rt") as handle:
        task = json.loads(handle.readline())
    assert task["task_id"] in index.matches(task["prompt"] + task["canonical_solution"])

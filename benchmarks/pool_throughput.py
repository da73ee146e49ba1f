"""Pool throughput over the whole standard library: extraction + filters + MinHash dedup.

Runs the pool (decontamination off, LM classifier off) with the reference extractor
(`pool.extractor: ast`, one ast.parse per file) and with the fast one (`fast`,
pool/prescan.py) at the same worker count, prints documented functions/s of each (functions =
every documented function or method found, the input of the filters; seconds = the whole
build_pool call), the ratio, and whether the two give identical snippets, skipped files,
removed snippets and metrics (timings aside).

    python benchmarks/pool_throughput.py [--workers 2] [--repeat 1] [--max-files 0] [--json PATH] [--quick]

`--quick` (used by benchmarks/run_all.py --quick) runs the first 120 files once: a smoke run,
its figures are not meaningful.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from scoder.bootstrap.pool.build import build_pool
from scoder.bootstrap.pool.config import DecontamConfig, PoolConfig

TIMING_KEYS = ("seconds", "functions_per_second")


def run(extractor: str, workers: int, max_files: int = 0):
    # whole stdlib, no exclusions; decontamination off so only extract+filter+dedup is timed
    config = PoolConfig(source="stdlib", workers=workers, extractor=extractor, max_files=max_files,
                        decontaminate=DecontamConfig(benchmarks=[]))
    start = time.perf_counter()
    result = build_pool(config)
    return time.perf_counter() - start, result


def comparable(result) -> dict:
    metrics = {k: v for k, v in result.metrics.items() if k not in TIMING_KEYS}
    return {"snippets": result.snippets, "metrics": metrics, "skipped_files": result.skipped_files,
            "removed": result.removed}


def cpu_capability() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.backends.cpu.get_cpu_capability()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each extractor; the fastest counts")
    parser.add_argument("--max-files", type=int, default=0, help="only the first N files (0: the whole stdlib)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--quick", action="store_true", help="smoke run: 120 files, once")
    args = parser.parse_args()
    if args.quick:
        args.max_files, args.repeat = 120, 1
    seconds: dict[str, float] = {}
    results: dict = {}  # the fastest run of each
    identical = True
    for _ in range(max(1, args.repeat)):
        for extractor in ("ast", "fast"):  # interleaved, so load changes hit both alike
            took, result = run(extractor, args.workers, args.max_files)
            if extractor in results:
                identical &= comparable(result) == comparable(results[extractor])
            if took < seconds.get(extractor, float("inf")):
                seconds[extractor], results[extractor] = took, result
    ref, fast = results["ast"], results["fast"]
    identical &= comparable(ref) == comparable(fast)
    rate = {name: results[name].metrics["functions_found"] / seconds[name] for name in seconds}
    print(f"{'extractor':>10} {'workers':>8} {'files':>7} {'functions':>10} {'kept':>6} {'seconds':>8} {'functions/s':>12}")
    for name in ("ast", "fast"):
        m = results[name].metrics
        print(f"{name:>10} {args.workers:>8} {m['files_seen']:>7} {m['functions_found']:>10} {m['snippets']:>6} "
              f"{seconds[name]:>8.2f} {rate[name]:>12.0f}")
    ratio = rate["fast"] / rate["ast"]
    print(f"fast / ast: {ratio:.2f}x; identical snippets, skipped files, removed and metrics: "
          f"{'yes' if identical else 'NO'}")
    print("target: 20000 functions/s end to end on 2 cores")
    print("seconds by step (fast):", fast.metrics["seconds"])
    capability = cpu_capability()
    print(f"cpu capability: {capability}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "name": "pool_throughput",
            "workload": (f"stdlib, {fast.metrics['files_seen']} files, {args.workers} workers, "
                         "extract+filter+near dedup" + (" (quick)" if args.quick else "")),
            "baseline": "pool.extractor: ast (one ast.parse per file)",
            "baseline_value": round(rate["ast"], 1),
            "fast_value": round(rate["fast"], 1),
            "unit": "documented functions/s",
            "ratio": round(ratio, 3),
            "identical": identical,
            "cpu_capability": capability,
            "workers": args.workers,
            "repeat": max(1, args.repeat),
            "quick": args.quick,
            "files": fast.metrics["files_seen"],
            "functions": fast.metrics["functions_found"],
            "snippets": fast.metrics["snippets"],
            "seconds": {"ast": round(seconds["ast"], 3), "fast": round(seconds["fast"], 3)},
            "steps_fast": fast.metrics["seconds"],
            "steps_ast": ref.metrics["seconds"],
            "target_value": 20000,
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()

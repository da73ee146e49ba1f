"""The pool on Ray: documented functions/s in process, on 1 Ray worker and on 2 Ray workers.

All three run in one process on the same input (the standard library; `--quick`: its first 600
files), end to end: extraction + filters + exact and MinHash dedup + decontamination against
the evaluated benchmarks (LM classifier off). One local Ray is started first and a warm-up run
starts its worker processes, so neither Ray run pays for Ray's start or the workers' imports.
Prints functions/s for each with the ratio against 1 worker, and whether the three outputs
(snippets, removed, skipped files, metrics but the timings) are identical. "functions" counts
every documented function the extractor found (the input of the filters). Ray runs its workers
at nice 15: on a machine shared with other work the Ray rows lose to it, so the check line
gives the load average.

    python benchmarks/ray_pool_throughput.py [--quick] [--max-files N] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

from scoder.bootstrap.pool.build import PoolResult, build_pool
from scoder.bootstrap.pool.config import PoolConfig
from scoder.distributed.runtime import RayConfig, connect

TIMING_KEYS = ("seconds", "functions_per_second")


def outputs(result: PoolResult) -> tuple:
    return (result.snippets, result.removed, result.skipped_files,
            {k: v for k, v in result.metrics.items() if k not in TIMING_KEYS})


def measure(config: PoolConfig, repeat: int) -> tuple[float, PoolResult]:
    """Best functions/s over `repeat` runs (wall time of build_pool), and the last result."""
    best = 0.0
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        result = build_pool(config)
        best = max(best, result.metrics["functions_found"] / (time.perf_counter() - start))
    return best, result


def benchmark(quick: bool = False, max_files: int = 0, repeat: int = 1) -> list[dict]:
    if quick:
        max_files, repeat = max_files or 600, 1
    base = PoolConfig(source="stdlib", max_files=max_files, workers=1)
    load_before = os.getloadavg()[0]
    ray = connect(RayConfig(workers=2))
    try:
        build_pool(replace(base, max_files=256, ray=RayConfig(workers=2)))  # warm-up: worker processes
        runs = {
            "in-process": measure(base, repeat),
            "ray, 1 worker": measure(replace(base, ray=RayConfig(workers=1)), repeat),
            "ray, 2 workers": measure(replace(base, ray=RayConfig(workers=2)), repeat),
        }
    finally:
        ray.shutdown()
    (local_rate, local), (one_rate, one), (two_rate, two) = runs.values()
    same = outputs(local) == outputs(one) == outputs(two)
    m = local.metrics
    check = (f"outputs identical (in-process, 1 and 2 workers): {'yes' if same else 'NO'}; "
             f"{m['files_seen']} files, {m['functions_found']} functions, {m['snippets']} snippets; "
             f"{os.cpu_count()} CPUs, load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    row = {"benchmark": f"pool on Ray, stdlib ({m['files_seen']} files)", "baseline": "Ray, 1 worker",
           "unit": "documented functions/s", "baseline_value": round(one_rate, 1), "target": None, "check": check}
    return [
        {**row, "candidate": "Ray, 2 workers", "candidate_value": round(two_rate, 1),
         "ratio": round(two_rate / one_rate, 2)},
        {**row, "candidate": "in-process (no Ray)", "candidate_value": round(local_rate, 1),
         "ratio": round(local_rate / one_rate, 2)},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first 600 stdlib files, one run each")
    parser.add_argument("--max-files", type=int, default=0, help="0: the whole standard library")
    parser.add_argument("--repeat", type=int, default=1, help="runs per executor; the best counts")
    args = parser.parse_args()
    rows = benchmark(args.quick, args.max_files, args.repeat)
    print(rows[0]["benchmark"])
    print(f"{'executor':<22} {'functions/s':>12} {'vs 1 worker':>12}")
    print(f"{rows[0]['baseline']:<22} {rows[0]['baseline_value']:>12} {1.0:>11.2f}x")
    for row in rows:
        print(f"{row['candidate']:<22} {row['candidate_value']:>12} {row['ratio']:>11.2f}x")
    print(rows[0]["check"])


if __name__ == "__main__":
    main()

"""Pool throughput over the whole standard library: extraction + filters + MinHash dedup.

Prints functions/s end to end (LM classifier excluded) for 1 worker (the baseline) and for
`--workers` processes side by side, with the ratio. "functions" counts every documented
function or method the extractor found (the input of the filters).

    python benchmarks/pool_throughput.py [--workers 2] [--repeat 1]
"""

from __future__ import annotations

import argparse
import time

from scoder.bootstrap.pool.build import build_pool
from scoder.bootstrap.pool.config import DecontamConfig, PoolConfig


def run(workers: int) -> tuple[float, dict]:
    # whole stdlib, no exclusions; decontamination off so only extract+filter+dedup is timed
    config = PoolConfig(source="stdlib", workers=workers, decontaminate=DecontamConfig(benchmarks=[]))
    start = time.perf_counter()
    result = build_pool(config)
    return time.perf_counter() - start, result.metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    rows = []
    for workers in (1, args.workers):
        runs = [run(workers) for _ in range(max(1, args.repeat))]
        rows.append((workers, min(seconds for seconds, _ in runs), runs[0][1]))
    print(f"{'workers':>8} {'files':>7} {'functions':>10} {'kept':>6} {'seconds':>8} {'functions/s':>12}")
    for workers, seconds, m in rows:
        print(f"{workers:>8} {m['files_seen']:>7} {m['functions_found']:>10} {m['snippets']:>6} {seconds:>8.2f} {m['functions_found'] / seconds:>12.0f}")
    base, best = rows[0][1], rows[1][1]
    print(f"speed-up of {args.workers} workers over 1 worker: {base / best:.2f}x")
    print("target: 20000 functions/s end to end on 2 cores")


if __name__ == "__main__":
    main()

"""Run the four speed benchmarks of docs/performance.md one after another and print one table.

Each benchmark runs in its own process (so none inherits another's threads or memory), writes
its figures as JSON (`--json`), and this script collects them into a ratio table, in markdown,
with the machine's CPU capability and thread count. Benchmarks run one at a time: their ratios
are side-by-side measurements inside each benchmark, and two at once would share the cores.

    python benchmarks/run_all.py [--only generation pool ...] [--out benchmarks/results/speed.json]
                                 [--markdown benchmarks/results/speed.md] [--quick]

`--quick` passes each benchmark its smallest setting (a smoke run: figures not meaningful).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    # name: (script, default arguments, --quick arguments)
    "generation": ("generation_speed.py", [], ["--quick"]),
    "pool": ("pool_throughput.py", [], ["--quick"]),
    "influence": ("influence_speed.py", [], ["--quick"]),
    "selection": ("select_speed.py", [], ["--quick"]),
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def rows_of(result: dict | list) -> list[dict]:
    """A benchmark's JSON is one row (a dict), a list of rows, or a dict with `rows`."""
    if isinstance(result, list):
        return result
    if "rows" in result:
        return [{**{k: v for k, v in result.items() if k != "rows"}, **row} for row in result["rows"]]
    return [result]


def cell(value, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if abs(value) >= 10 or value == 0 else f"{value:.3g}"
    return str(value)


def run_one(name: str, extra: list[str], quick: bool, folder: Path, env: dict) -> tuple[list[dict], float, int]:
    script, args, quick_args = BENCHMARKS[name]
    out = folder / f"{name}.json"
    command = [sys.executable, str(HERE / script), *args, *(quick_args if quick else []), *extra, "--json", str(out)]
    print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    code = subprocess.call(command, env=env)
    seconds = time.perf_counter() - start
    if code != 0 or not out.exists():
        return [{"name": name, "error": f"exit code {code}"}], seconds, code or 1
    return rows_of(json.loads(out.read_text())), seconds, 0


def table(rows: list[dict]) -> str:
    lines = ["| benchmark | workload | baseline | baseline | ours | unit | ratio | outputs |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['name']} | failed: {row['error']} | | | | | | |")
            continue
        identical = row.get("identical")
        check = row.get("check") or ("identical" if identical else ("differ" if identical is False else ""))
        if row.get("max_rel_diff") is not None:
            check += f" (max rel. diff {row['max_rel_diff']:.1e})"
        ratio = row.get("ratio")
        lines.append(f"| {row['name']} | {row.get('workload', '')} | {row.get('baseline', '')} | {cell(row.get('baseline_value'))} | "
                     f"{cell(row.get('fast_value'))} | {row.get('unit', '')} | {cell(ratio, 2) + 'x' if ratio is not None else 'n/a'} | {check} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="smallest settings: a smoke run, figures not meaningful")
    parser.add_argument("--out", default=None, help="write all rows as JSON here")
    parser.add_argument("--markdown", default=None, help="write the table (with the machine line) here")
    args = parser.parse_args()
    import torch

    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "OMP_WAIT_POLICY": "PASSIVE"}
    capability = torch.backends.cpu.get_cpu_capability()
    machine = (f"{cpu_model()}, {os.cpu_count()} CPUs, torch CPU capability {capability}, "
               f"torch {torch.__version__}, Python {platform.python_version()}, {dt.date.today().isoformat()}")
    rows, failed = [], []
    with tempfile.TemporaryDirectory(prefix="scoder-bench-") as folder:
        for name in args.only:
            got, seconds, code = run_one(name, [], args.quick, Path(folder), env)
            for row in got:
                row.setdefault("name", name)
                row["benchmark_seconds"] = round(seconds, 1)
            rows.extend(got)
            if code:
                failed.append(name)
    text = table(rows)
    print(f"\n{machine}{' (quick: smoke settings)' if args.quick else ''}\n\n{text}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"machine": machine, "cpu_capability": capability, "quick": args.quick,
                                              "rows": rows}, indent=2, default=str) + "\n")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(f"{machine}\n\n{text}\n")
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()

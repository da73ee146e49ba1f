"""Generation on Ray: 1 worker against 2 workers on a local Ray (127.0.0.1), side by side.

The same prompts (the synthesis prompt over real seed snippets from data/teacher), the same
fixed batches, sampled with a seed, response cache off, one torch thread per worker. Each
configuration runs after its workers have loaded the model and generated once (start-up is
reported apart). Prints generated tokens/s, the ratio, and whether the texts equal an
in-process run's with the same thread count.

    python benchmarks/ray_generation_throughput.py [--prompts 16] [--batch 2] [--max-tokens 96] [--quick]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from scoder.bootstrap.prompts import synthesis_prompt  # noqa: E402
from scoder.distributed.runtime import RayConfig, connect  # noqa: E402
from scoder.models.llm import LLMConfig, SamplingParams, load_llm  # noqa: E402

TEACHER = Path(__file__).resolve().parents[1] / "data/teacher/evol-codealpaca-python.jsonl.gz"


def synthesis_prompts(count: int) -> list:
    with gzip.open(TEACHER, "rt") as handle:
        records = [json.loads(line) for line in handle][:count]
    return [[{"role": "user", "content": synthesis_prompt(r["seed"])}] for r in records]


def timed(llm, prompts, params) -> tuple[float, list]:
    start = time.perf_counter()
    out = llm.generate(prompts, params)
    return time.perf_counter() - start, out


def benchmark(quick: bool = False, prompts: int = 16, batch: int = 2, max_tokens: int = 96) -> list[dict]:
    if quick:
        prompts, max_tokens = 8, 24
    torch.set_num_threads(1)
    chats = synthesis_prompts(prompts)
    params = SamplingParams(n=1, temperature=0.7, max_tokens=max_tokens, seed=11)
    engine = LLMConfig(model="smollm2", batch_size=batch, use_cache=False, threads=1)
    reference = [c.texts for c in load_llm(engine).generate(chats, params)]
    connect(RayConfig(workers=2))
    rates, startup, same = {}, {}, {}
    for workers in (1, 2):
        begin = time.perf_counter()
        llm = load_llm(replace(engine, ray=RayConfig(workers=workers, threads=1)))
        llm.generate(chats[:workers], replace(params, max_tokens=2))  # every worker warm
        startup[workers] = time.perf_counter() - begin
        seconds, out = timed(llm, chats, params)
        rates[workers] = sum(sum(c.completion_tokens) for c in out) / seconds
        same[workers] = sum(c.texts == r for c, r in zip(out, reference))
        llm.close()
    return [{
        "benchmark": "generation on Ray, synthesis prompt",
        "baseline": "1 Ray worker (1 thread)",
        "candidate": "2 Ray workers (1 thread each)",
        "unit": "generated tokens/s",
        "baseline_value": round(rates[1], 1),
        "candidate_value": round(rates[2], 1),
        "ratio": round(rates[2] / rates[1], 2),
        "target": None,
        "check": (f"texts equal to one process {same[1]}/{len(chats)} and {same[2]}/{len(chats)}; "
                  f"start-up {startup[1]:.1f}s / {startup[2]:.1f}s; {len(chats)} prompts, batches of {batch}, "
                  f"max_tokens {max_tokens}"),
    }]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rows = benchmark(args.quick, args.prompts, args.batch, args.max_tokens)
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores, fp32")
    for row in rows:
        print(f"{row['benchmark']}: {row['baseline']} {row['baseline_value']} {row['unit']}, "
              f"{row['candidate']} {row['candidate_value']}: {row['ratio']}x  ({row['check']})")


if __name__ == "__main__":
    main()

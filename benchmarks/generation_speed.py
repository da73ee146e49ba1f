"""Generation on CPU: model.generate on fixed batches (today's path) vs the continuous decoder.

Both decoders run side by side in one process, on the same model, batch size and prompts,
greedy, response cache off: the synthesis prompt over real seed snippets and the scoring
prompt over real instruction/answer pairs (data/teacher, evol-codealpaca, gpt-3.5-turbo
answers). Prints generated tokens/s for each, the ratio and whether the texts are identical.

    python benchmarks/generation_speed.py [--prompts 16] [--batch 8] [--max-tokens 160] [--quick]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from scoder.bootstrap.prompts import scoring_prompt, synthesis_prompt  # noqa: E402
from scoder.models.llm import LLMConfig, SamplingParams, load_llm  # noqa: E402

TEACHER = Path(__file__).resolve().parents[1] / "data/teacher/evol-codealpaca-python.jsonl.gz"


def workloads(count: int) -> dict[str, list]:
    with gzip.open(TEACHER, "rt") as handle:
        records = [json.loads(line) for line in handle][:count]
    return {
        "synthesis prompt": [[{"role": "user", "content": synthesis_prompt(r["seed"])}] for r in records],
        "scoring prompt": [[{"role": "user", "content": scoring_prompt(r["problem"], r["solution"])}] for r in records],
    }


def measure(llm, prompts, params) -> tuple[float, int, list]:
    start = time.perf_counter()
    out = llm.generate(prompts, params)
    return time.perf_counter() - start, sum(sum(c.completion_tokens) for c in out), out


def benchmark(quick: bool = False, prompts: int = 16, batch: int = 8, max_tokens: int = 160, threads: int = 2) -> list[dict]:
    if quick:
        prompts, max_tokens = 6, 24
    torch.set_num_threads(threads)
    params = SamplingParams(max_tokens=max_tokens)
    llms = {name: load_llm(LLMConfig(model="smollm2", batch_size=batch, use_cache=False, decoder=name, threads=threads))
            for name in ("generate", "continuous")}
    for llm in llms.values():
        llm.generate(workloads(1)["synthesis prompt"], SamplingParams(max_tokens=2))  # warm-up
    rows = []
    for workload, chats in workloads(prompts).items():
        results = {name: measure(llm, chats, params) for name, llm in llms.items()}
        (base_s, base_tokens, base_out), (fast_s, fast_tokens, fast_out) = results["generate"], results["continuous"]
        same = sum(a.texts == b.texts for a, b in zip(base_out, fast_out))
        base_rate, fast_rate = base_tokens / base_s, fast_tokens / fast_s
        rows.append({
            "name": "generation",
            "workload": workload,
            "identical": same == len(chats),
            "benchmark": f"generation, {workload}",
            "baseline": f"model.generate, batches of {batch}",
            "candidate": f"continuous decoder, {batch} rows",
            "unit": "generated tokens/s",
            "baseline_value": round(base_rate, 1),
            "candidate_value": round(fast_rate, 1),
            "fast_value": round(fast_rate, 1),
            "ratio": round(fast_rate / base_rate, 2),
            "target": ">= 2x, greedy outputs identical",
            "check": f"identical greedy texts {same}/{len(chats)}; {len(chats)} prompts, max_tokens {max_tokens}",
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args()
    rows = benchmark(args.quick, args.prompts, args.batch, args.max_tokens, args.threads)
    if args.json:
        capability = torch.backends.cpu.get_cpu_capability()
        Path(args.json).write_text(json.dumps([{**row, "cpu_capability": capability} for row in rows], indent=2) + "\n")
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads, fp32")
    print(f"{'workload':<36} {'generate tok/s':>15} {'continuous tok/s':>17} {'ratio':>6}  check")
    for row in rows:
        print(f"{row['benchmark']:<36} {row['baseline_value']:>15} {row['candidate_value']:>17} {row['ratio']:>5}x  {row['check']}")


if __name__ == "__main__":
    main()

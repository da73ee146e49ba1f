"""Generation on CPU: model.generate on fixed batches (today's path) vs the continuous decoder.

The decoders run side by side in one process, on the same model and prompts, greedy, response
cache off: the baseline `model.generate` on batches of --batch; the continuous decoder with
--batch rows in flight (the same row count) and with --rows rows (LLMConfig.max_rows); and, so
that the wider run is not credited with what a bigger batch alone would give, model.generate on
batches of --rows. Workloads: the synthesis prompt over real seed snippets and the scoring
prompt over real instruction/answer pairs (data/teacher, evol-codealpaca, gpt-3.5-turbo
answers). Prints generated tokens/s for each, the ratio and whether the texts are identical.

    python benchmarks/generation_speed.py [--prompts 16] [--batch 8] [--rows 16] [--max-tokens 160] [--quick] [--json PATH]
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


def benchmark(quick: bool = False, prompts: int = 16, batch: int = 8, max_tokens: int = 160, threads: int = 2,
              rows_in_flight: int = 16) -> list[dict]:
    if quick:
        prompts, batch, max_tokens, rows_in_flight = 6, 3, 24, 6
    torch.set_num_threads(threads)
    params = SamplingParams(max_tokens=max_tokens)
    setups = {  # label: (decoder, batch_size, max_rows)
        f"generate, batches of {batch}": ("generate", batch, 0),
        f"continuous, {batch} rows": ("continuous", batch, 0),
        f"continuous, {rows_in_flight} rows": ("continuous", batch, rows_in_flight),
        f"generate, batches of {rows_in_flight}": ("generate", rows_in_flight, 0),
    }
    llms = {label: load_llm(LLMConfig(model="smollm2", batch_size=size, max_rows=rows, use_cache=False, decoder=decoder,
                                      threads=threads))
            for label, (decoder, size, rows) in setups.items()}
    for llm in llms.values():
        llm.generate(workloads(1)["synthesis prompt"], SamplingParams(max_tokens=2))  # warm-up
    baseline = next(iter(setups))
    out = []
    for workload, chats in workloads(prompts).items():
        results = {label: measure(llm, chats, params) for label, llm in llms.items()}
        base_s, base_tokens, base_out = results[baseline]
        base_rate = base_tokens / base_s
        for label, (seconds, tokens, texts) in results.items():
            if label == baseline:
                continue
            same = sum(a.texts == b.texts for a, b in zip(base_out, texts))
            rate = tokens / seconds
            out.append({
                "name": "generation",
                "workload": f"{workload}, {label}",
                "identical": same == len(chats),
                "baseline": baseline,
                "candidate": label,
                "unit": "generated tokens/s",
                "baseline_value": round(base_rate, 1),
                "fast_value": round(rate, 1),
                "ratio": round(rate / base_rate, 2),
                "target": ">= 2x, greedy outputs identical",
                "check": f"identical greedy texts {same}/{len(chats)}; {len(chats)} prompts, max_tokens {max_tokens}",
            })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=16, help="rows in flight of the wider continuous run")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args()
    rows = benchmark(args.quick, args.prompts, args.batch, args.max_tokens, args.threads, args.rows)
    if args.json:
        capability = torch.backends.cpu.get_cpu_capability()
        Path(args.json).write_text(json.dumps([{**row, "cpu_capability": capability} for row in rows], indent=2) + "\n")
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads, fp32")
    print(f"baseline: {rows[0]['baseline']}")
    print(f"{'workload, candidate':<52} {'baseline tok/s':>15} {'candidate tok/s':>16} {'ratio':>6}  check")
    for row in rows:
        print(f"{row['workload']:<52} {row['baseline_value']:>15} {row['fast_value']:>16} {row['ratio']:>5}x  {row['check']}")


if __name__ == "__main__":
    main()

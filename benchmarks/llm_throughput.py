"""Generation throughput of the transformers backend: batch 1 (baseline) vs batched.

Same prompts (synthesis prompts over stdlib-like snippets), greedy, same max_tokens, cache
off; prints generated tokens/s for each setting side by side and the ratio.

    python benchmarks/llm_throughput.py [--model smollm2] [--prompts 16] [--batch 8] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from scoder.models.llm import LLMConfig, SamplingParams, load_llm  # noqa: E402
from scoder.bootstrap.prompts import synthesis_prompt  # noqa: E402

SNIPPET = '''def moving_average(values, window):
    """Return the moving averages of `values` over `window` items."""
    if window <= 0:
        raise ValueError("window must be positive")
    out = []
    total = sum(values[:window])
    out.append(total / window)
    for i in range({i}, len(values)):
        total += values[i] - values[i - window]
        out.append(total / window)
    return out
'''


def measure(llm, prompts, params) -> tuple[float, int]:
    start = time.perf_counter()
    out = llm.generate(prompts, params)
    return time.perf_counter() - start, sum(sum(c.completion_tokens) for c in out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    prompts = [[{"role": "user", "content": synthesis_prompt(SNIPPET.replace("{i}", str(i)))}] for i in range(args.prompts)]
    params = SamplingParams(max_tokens=args.max_tokens)
    llm = load_llm(LLMConfig(model=args.model, batch_size=1, use_cache=False))
    llm.generate(prompts[:1], SamplingParams(max_tokens=4))  # warm-up
    rows = []
    for batch in (1, args.batch):
        llm.config.batch_size = batch
        seconds, tokens = measure(llm, prompts, params)
        rows.append((batch, seconds, tokens))
    print(f"{'batch':>6} {'prompts':>8} {'tokens':>7} {'seconds':>8} {'tokens/s':>9}")
    for batch, seconds, tokens in rows:
        print(f"{batch:>6} {args.prompts:>8} {tokens:>7} {seconds:>8.2f} {tokens / seconds:>9.1f}")
    base = rows[0][2] / rows[0][1]
    best = rows[1][2] / rows[1][1]
    print(f"batched ({args.batch}) vs batch 1 throughput ratio: {best / base:.2f}x")


if __name__ == "__main__":
    main()

"""Per-sample LoRA gradients: one batched forward/backward with hooks vs the batch-1 loop.

Same samples (synthesis prompt + a ~300-token answer), same LoRA (SmolLM2-135M, r=8 on
q/k/v/o, random A and B so every matrix has a gradient); prints seconds per sample for
each method side by side, the speed-up, and the largest difference between the two.

    python benchmarks/influence_speed.py [--samples 16] [--batch 8] [--answer-lines 30]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from scoder.bootstrap.influence import _collate, batched_gradients, encode_example, loop_gradients  # noqa: E402
from scoder.bootstrap.prompts import synthesis_prompt  # noqa: E402


def examples(count: int, answer_lines: int) -> list[dict]:
    out = []
    for i in range(count):
        code = f"def scale_{i}(values, factor):\n    return [v * factor + {i} for v in values]\n"
        answer = "[Problem Description]\n" + " ".join(f"Step {j}: scale value {j} by the factor." for j in range(answer_lines))
        answer += f"\n\n[Solution]\n```python\n{code}```"
        out.append({"id": str(i), "prompt": [{"role": "user", "content": synthesis_prompt(code)}],
                    "completion": [{"role": "assistant", "content": answer}]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--answer-lines", type=int, default=30)
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the batched method")
    args = parser.parse_args()
    from peft import LoraConfig, get_peft_model

    from scoder.training.sft import load_trainable_model

    torch.manual_seed(0)
    base, tokenizer = load_trainable_model("smollm2")
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                            init_lora_weights=False, task_type="CAUSAL_LM")).eval()
    data = examples(args.samples, args.answer_lines)
    encoded = [encode_example(tokenizer, e, 1024) for e in data]
    tokens = sum(len(ids) for ids, _ in encoded) / len(encoded)
    batches = [_collate(encoded[s : s + args.batch], tokenizer.pad_token_id) for s in range(0, len(encoded), args.batch)]
    batched_gradients(model, batches[0], args.bf16)  # warm-up
    results = {}
    for name, fn, bf16 in (("batch-1 loop", loop_gradients, False), ("batched hooks", batched_gradients, args.bf16)):
        start = time.perf_counter()
        grads = torch.cat([fn(model, b, bf16)[0] for b in batches])
        results[name] = (time.perf_counter() - start, grads)
    (loop_s, loop_g), (fast_s, fast_g) = results["batch-1 loop"], results["batched hooks"]
    diff = float((loop_g - fast_g).abs().max() / loop_g.abs().max())
    print(f"{args.samples} samples of {tokens:.0f} tokens on average, LoRA dimension {loop_g.shape[1]:,}, "
          f"batch {args.batch}, {torch.get_num_threads()} threads")
    print(f"{'method':<16}{'seconds':>10}{'s/sample':>10}")
    print(f"{'batch-1 loop':<16}{loop_s:>10.2f}{loop_s / args.samples:>10.3f}")
    print(f"{'batched hooks' + (' bf16' if args.bf16 else ''):<16}{fast_s:>10.2f}{fast_s / args.samples:>10.3f}")
    print(f"speed-up {loop_s / fast_s:.2f}x; max |difference| / max |gradient| = {diff:.2e}")


if __name__ == "__main__":
    main()

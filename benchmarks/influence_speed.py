"""Gradient features per sample: the reference path against the fast path, same samples, same
features, with the profile of both.

Both run `scoder.bootstrap.influence.compute_features` on the same samples (a synthesis prompt
and a ~440-token answer, ~650 tokens in all) under SmolLM2-135M with a LoRA of r=8 on
q/k/v/o (random A and B, so every matrix has a gradient: D = 921,600), the Adam-aware
transform with a synthetic Adam state (seeded; exp_avg ~ N(0, 1e-4), exp_avg_sq ~ N(0, 1e-4)^2
+ 1e-10) and the projection to --proj-dim (8192, the paper's) from the same seeded Rademacher
matrix:

- reference, `influence.method: loop`: batch-1 autograd gradients, then per batch of --batch
  samples the Adam transform and a projection that regenerates the D x k sign matrix block by
  block (torch.randint, int8 signs, a float32 copy, a matmul; float64 sums across blocks; the
  blocks are not kept since D * k int8 > projection_cache_mb);
- fast, `influence.method: fast` (the default, scoder.bootstrap.influence_fast): per shard,
  the gradients one sample at a time (on the CPU; length-sorted hooked batches on an
  accelerator), then one projection of the whole shard from the matrix held as bits,
  generated once per process (that one-off is inside its time: the cache is cleared first;
  the time without it, what later shards of a process cost, is printed too).

Prints seconds per sample, the ratio, the largest |fast - reference| / max |reference| of
the features (and of the losses), the profile of both paths (wall seconds per step), the
thread count and the CPU capability. `--json PATH` writes the summary for benchmarks/run_all.py.

    python benchmarks/influence_speed.py [--samples 8] [--batch 8] [--shard-batches 4]
        [--answer-lines 30] [--proj-dim 8192] [--threads N] [--no-adam] [--json PATH] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from scoder.core.stage import set_threads

TOLERANCE = 1e-4  # max |fast - reference| / max |reference| below which the features count as equal


def examples(count: int, answer_lines: int) -> list[dict]:
    from scoder.bootstrap.prompts import synthesis_prompt

    out = []
    for i in range(count):
        code = f"def scale_{i}(values, factor):\n    return [v * factor + {i} for v in values]\n"
        answer = "[Problem Description]\n" + " ".join(f"Step {j}: scale value {j} by the factor." for j in range(answer_lines))
        answer += f"\n\n[Solution]\n```python\n{code}```"
        out.append({"id": str(i), "prompt": [{"role": "user", "content": synthesis_prompt(code)}],
                    "completion": [{"role": "assistant", "content": answer}]})
    return out


def synthetic_adam(model, seed: int = 0) -> dict:
    import torch

    from scoder.bootstrap.influence import trainable_parameters

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, p in trainable_parameters(model):
        tensors[f"{name}.exp_avg"] = 1e-4 * torch.randn(p.shape, generator=generator)
        tensors[f"{name}.exp_avg_sq"] = (1e-4 * torch.randn(p.shape, generator=generator)) ** 2 + 1e-10
    return {"tensors": tensors, "betas": (0.9, 0.999), "eps": 1e-8}


def run(model, tokenizer, data, config, out_dir: Path, adam) -> tuple[float, dict, object, object]:
    from scoder.bootstrap.influence import compute_features, load_features, profiling

    with profiling() as profile:
        start = time.perf_counter()
        compute_features(model, tokenizer, data, config, out_dir, adam=adam)
        seconds = time.perf_counter() - start
    features, losses, _ = load_features(out_dir, expected=len(data))
    return seconds, dict(profile.seconds), features, losses


def print_profile(samples: int, columns: dict[str, tuple[float, dict]]) -> None:
    steps = []
    for _, profile in columns.values():
        steps.extend(s for s in profile if s not in steps)
    names = list(columns)
    print(f"profile, wall seconds per sample (share of the path's total):")
    print(f"  {'step':<46}" + "".join(f"{n:>26}" for n in names))
    for step in sorted(steps) + ["other (encoding, collation, files)", "total"]:
        cells = []
        for total, profile in columns.values():
            if step == "total":
                value = total
            elif step.startswith("other"):
                value = total - sum(profile.values())
            else:
                value = profile.get(step)
            cells.append(f"{'-':>26}" if value is None else f"{value / samples:>14.3f} ({100 * value / total:5.1f}%)   ")
        print(f"  {step:<46}" + "".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8, help="influence.batch_size of both paths")
    parser.add_argument("--shard-batches", type=int, default=4, help="influence.shard_batches (fast: samples projected together)")
    parser.add_argument("--answer-lines", type=int, default=30)
    parser.add_argument("--proj-dim", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: the stage's default, SCODER_THREADS or the usable CPUs)")
    parser.add_argument("--no-adam", action="store_true", help="plain gradients (the D_p features) instead of the Adam-aware transform")
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--quick", action="store_true", help="a smoke run (3 short samples, k = 512): figures not meaningful")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.batch, args.shard_batches, args.answer_lines, args.proj_dim = 3, 2, 2, 5, 512
    if args.threads:
        os.environ["SCODER_THREADS"] = str(args.threads)
    threads = set_threads()  # as a stage: explicit thread counts, idle threads sleep (before torch)

    import torch
    from peft import LoraConfig, get_peft_model

    from scoder.bootstrap.influence import FeatureConfig, _collate, encode_example, loop_gradients
    from scoder.bootstrap.influence_fast import PackedRademacherProjection, shard_gradients
    from scoder.training.sft import load_trainable_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base, tokenizer = load_trainable_model("smollm2")
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                            init_lora_weights=False, task_type="CAUSAL_LM")).eval()
    dim = sum(p.numel() for p in model.parameters() if p.requires_grad)
    data = examples(args.samples, args.answer_lines)
    config = FeatureConfig(proj_dim=args.proj_dim, batch_size=args.batch, shard_batches=args.shard_batches, max_length=1024)
    encoded = [encode_example(tokenizer, e, config.max_length) for e in data]
    tokens = sum(len(ids) for ids, _ in encoded) / len(encoded)
    response = sum(sum(1 for label in labels if label != -100) for _, labels in encoded) / len(encoded)
    adam = None if args.no_adam else synthetic_adam(model)
    # warm-up (first-call allocations and kernel set-up), timed in neither path
    batch = _collate(encoded[:1], tokenizer.pad_token_id)
    loop_gradients(model, batch)
    shard_gradients(model, encoded[:1], tokenizer.pad_token_id, 1)
    with tempfile.TemporaryDirectory() as tmp:
        PackedRademacherProjection._shared.clear()  # the fast path's one-off matrix generation is timed
        fast_s, fast_profile, fast_f, fast_l = run(model, tokenizer, data, replace(config, method="fast"), Path(tmp) / "fast", adam)
        ref_s, ref_profile, ref_f, ref_l = run(model, tokenizer, data, replace(config, method="loop"), Path(tmp) / "reference", adam)
    diff = float(abs(fast_f.astype("float64") - ref_f).max() / abs(ref_f).max())
    loss_diff = float(abs(fast_l - ref_l).max() / abs(ref_l).max())
    one_off = fast_profile.get("projection: sign generation", 0.0)  # the fast path's matrix, once per process
    n = args.samples
    print(f"{n} samples of {tokens:.0f} tokens on average ({response:.0f} response tokens), LoRA dimension D = {dim:,}, "
          f"projection to k = {args.proj_dim}, {'Adam-aware' if adam else 'plain'} gradients")
    print(f"batch {args.batch}, shard {args.batch * args.shard_batches} samples; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}), CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'path':<58}{'seconds':>10}{'s/sample':>10}")
    print(f"{'reference: method loop (batch-1 loop, projection per batch)':<58}{ref_s:>10.1f}{ref_s / n:>10.3f}")
    print(f"{'fast: method fast (one-off sign matrix included)':<58}{fast_s:>10.1f}{fast_s / n:>10.3f}")
    print(f"{'fast without its one-off sign generation':<58}{fast_s - one_off:>10.1f}{(fast_s - one_off) / n:>10.3f}")
    print(f"speed-up {ref_s / fast_s:.2f}x ({ref_s / (fast_s - one_off):.2f}x without the one-off generation, "
          f"{one_off:.1f} s once per process)")
    print(f"max |fast - reference| / max |reference|: features {diff:.2e}, losses {loss_diff:.2e} "
          f"(equal below {TOLERANCE:g}: {diff < TOLERANCE})")
    print_profile(n, {"reference (loop)": (ref_s, ref_profile), "fast": (fast_s, fast_profile)})
    if args.json:
        summary = {"name": "influence_features", "baseline": f"method loop (batch-1 gradients, projection per batch of {args.batch})",
                   "baseline_value": round(n / ref_s, 5), "fast_value": round(n / fast_s, 5), "unit": "samples/s",
                   "ratio": round(ref_s / fast_s, 3), "identical": diff < TOLERANCE, "max_rel_diff": diff,
                   "tolerance": TOLERANCE, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
                   "samples": n, "dim": dim, "proj_dim": args.proj_dim, "one_off_generation_s": round(one_off, 2)}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())

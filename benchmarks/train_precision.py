"""Seconds per SFT optimizer step: TRL's default precision settings vs explicit fp32.

TRL's SFTConfig turns on bf16 mixed precision and gradient checkpointing unless told
otherwise; `scoder.training.sft` passes fp32 without checkpointing (params
`precision: fp32`, `gradient_checkpointing: false`) through `precision_args`. Both train
the same LoRA on SmolLM2-135M (the `smollm2` alias) with the same batches, each setting in
a subprocess of its own, on this CPU as it is and with an AVX2-only CPU emulated
(ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2), where bf16 matmuls have no native
instructions. The first step (lazy initialisation) is not timed.

    python benchmarks/train_precision.py [--steps 3] [--max-length 256] [--batch 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CPUS = {"native": {}, "avx2 (emulated)": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}
SETTINGS = ("trl-default", "fp32")


def examples(count: int) -> list[dict]:
    """Prompt-completion pairs long enough to fill a short max_length."""
    out = []
    for i in range(count):
        body = "\n".join(f"    total += values[{j}] * {i + j}" for j in range(40))
        out.append({"prompt": [{"role": "user", "content": f"Write a function that sums the values scaled by {i}."}],
                    "completion": [{"role": "assistant", "content": f"def scaled_sum_{i}(values):\n    total = 0\n{body}\n    return total"}]})
    return out


def worker(setting: str, steps: int, max_length: int, batch: int) -> dict:
    """Train `steps` optimizer steps under `setting`; timings and what the trainer ran."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from scoder.models.precision import cpu_has_native_bf16, resolve_precision
    from scoder.training.sft import LoraSettings, load_trainable_model, precision_args

    torch.manual_seed(0)
    model, tokenizer = load_trainable_model("smollm2")
    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.perf_counter() - self.start)

    explicit = precision_args("fp32", False) if setting == "fp32" else {}  # trl-default: leave them unset
    with tempfile.TemporaryDirectory() as scratch:
        args = SFTConfig(output_dir=scratch, per_device_train_batch_size=batch, max_steps=steps, learning_rate=1e-4,
                         max_length=max_length, completion_only_loss=True, logging_steps=1, save_strategy="no",
                         report_to=[], use_cpu=True, dataloader_num_workers=0, disable_tqdm=True, seed=0, data_seed=0,
                         **explicit)
        lora = LoraSettings()
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples(steps * batch)),
                             processing_class=tokenizer, callbacks=[StepTimer()],
                             peft_config=LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                    target_modules=lora.target_modules, task_type="CAUSAL_LM"))
        trainer.train()
    timed = times[1:] or times
    return {"capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": cpu_has_native_bf16(),
            "auto": resolve_precision("auto"), "mixed_precision": args.mixed_precision,
            "checkpointing": bool(args.activation_checkpointing), "threads": torch.get_num_threads(),
            "s_per_step": sum(timed) / len(timed), "steps": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per setting; the first is not timed")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--worker", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args.steps, args.max_length, args.batch)))
        return
    rows = []
    for cpu, env in CPUS.items():
        for setting in SETTINGS:
            child_env = {k: v for k, v in os.environ.items() if k not in ("ACCELERATE_MIXED_PRECISION", *CPUS["avx2 (emulated)"])}
            child_env.update(env)
            done = subprocess.run([sys.executable, __file__, "--worker", setting, "--steps", str(args.steps),
                                   "--max-length", str(args.max_length), "--batch", str(args.batch)],
                                  env=child_env, capture_output=True, text=True, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode or not lines:
                sys.exit(f"{cpu} / {setting} failed:\n{done.stderr[-4000:]}")
            result = json.loads(lines[-1][len("RESULT "):])
            rows.append((cpu, setting, result))
            print(f"{cpu} / {setting}: capability {result['capability']}, steps {[round(t, 2) for t in result['steps']]}",
                  file=sys.stderr)
    print(f"SmolLM2-135M LoRA r=8 q/k/v/o, batch {args.batch}, max_length {args.max_length}, "
          f"{args.steps} steps per setting (first not timed), {rows[0][2]['threads']} threads")
    print(f"{'cpu':<17}{'capability':<12}{'auto->':<8}{'setting':<13}{'mixed':<7}{'checkpt':<9}{'s/step':>9}{'ratio':>8}")
    for cpu in CPUS:
        fp32 = next(r for c, s, r in rows if c == cpu and s == "fp32")["s_per_step"]
        for c, setting, r in rows:
            if c == cpu:
                print(f"{cpu:<17}{r['capability']:<12}{r['auto']:<8}{setting:<13}{r['mixed_precision']:<7}"
                      f"{r['checkpointing']!s:<9}{r['s_per_step']:>9.2f}{r['s_per_step'] / fp32:>7.2f}x")


if __name__ == "__main__":
    main()

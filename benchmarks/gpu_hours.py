"""Expected GPU-hours per stage of the paper profile (params.yaml + configs/paper.yaml).

Work counts come from the profile [c]. Sequence lengths are measured here [m]: the project's
SmolLM2 tokenizer over real teacher answers and benchmark tasks. GPU throughput is projected [p]
from the roofline-style Assumptions below. Nothing runs a model.

    HF_HUB_OFFLINE=1 python benchmarks/gpu_hours.py [--gpu h100|a100] [--set train_mfu=0.35]
        [--cpu-tokens-per-s 120] [--markdown]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TEACHER = ROOT / "data/teacher/evol-codealpaca-python.jsonl.gz"  # 369 real gpt-3.5 answers (seed, problem, solution)
EVOL_2K = ROOT.parent / "shared/data/instructions/evol-codealpaca-2k-1.json"  # the same data unfiltered (optional)


@dataclass(frozen=True)
class GPU:
    name: str
    bf16_tflops: float  # dense tensor-core peak
    hbm_tb_s: float
    hbm_gb: float


GPUS = {"h100": GPU("H100-SXM 80GB", 989.0, 3.35, 80.0), "a100": GPU("A100-SXM 80GB", 312.0, 2.0, 80.0)}


@dataclass(frozen=True)
class Model:  # what the roofline needs: parameters and the KV cache's shape
    name: str
    params: float
    layers: int
    kv_heads: int
    head_dim: int
    attn_dim: int  # query heads x head_dim (= hidden size)

    @property
    def kv_bytes_per_token(self) -> int:  # K and V of every layer, bf16
        return 2 * self.layers * self.kv_heads * self.head_dim * 2


QWEN7B = Model("Qwen2.5-Coder-7B", 7.6e9, 28, 4, 128, 3584)
LLAMA8B = Model("Llama3.1-8B", 8.0e9, 32, 8, 128, 4096)
DSC67B = Model("DeepSeek-Coder-6.7B", 6.7e9, 32, 32, 128, 4096)  # no GQA: 4x Llama's KV per token


@dataclass
class Assumptions:
    gpu: str = "h100"
    train_mfu: float = 0.40  # model FLOPs utilisation of training and the feature pass
    prefill_mfu: float = 0.50
    decode_mfu: float = 0.50  # the compute bound of a decode step (B-row GEMMs)
    bw_efficiency: float = 0.80  # share of peak HBM bandwidth a decode step reaches
    batch: int = 256  # vLLM concurrent sequences (engine.batch_size in the profile)
    gpu_memory_utilization: float = 0.90  # vLLM's share of HBM for weights + KV cache (LLMConfig default)
    # vLLM V1 caches prompt prefixes by default (the backend leaves it on): the scoring rubric
    # before [Instruction] and the synthesis prompt's opening are prefilled once, not per call
    prefix_caching: bool = True
    train_factor: float = 6.0  # FLOPs per parameter per trained token: forward 2 + backward 4
    # LoRA freezes the base, but its backward still needs the full activation gradient (2N);
    # only the base weight gradient (2N) is skipped, so 4-6: 6 is the conservative figure
    lora_train_factor: float = 6.0
    feature_factor: float = 6.0  # per-sample gradient features: forward + backward, as LoRA training
    prefill_factor: float = 2.0
    score_reason_tokens: int = 150  # the scorer's [Reason] text: no real scorer output to measure
    parse_rate: float = 1.0  # share of candidates the scorer judges (parsed ones): upper bound
    phase1_records: int = 110_000  # evol-codealpaca-v1 (paper: ~110K)


def stats(values) -> dict:
    return {"mean": float(np.mean(values)), "p90": float(np.percentile(values, 90)), "n": len(values)}


def measure_lengths(profile: dict) -> dict[str, dict]:
    """Token counts [m], SmolLM2 tokenizer and chat template (as the transformers backend
    loads them), each clipped to its stage's max_tokens / max_length."""
    from transformers import AutoTokenizer

    from scoder.bootstrap.prompts import scoring_prompt, synthesis_prompt
    from scoder.bootstrap.scoring import template_parts
    from scoder.bootstrap.synthesis_format import format_synthesis
    from scoder.core.io import read_records
    from scoder.evaluation.benchmarks import INSTRUCTION_PREFIX, RESPONSE_PREFIX, chat_prompts
    from scoder.models.gguf import loadable
    from scoder.models.registry import resolve

    path, kwargs = loadable(resolve("smollm2"))
    tok = AutoTokenizer.from_pretrained(path, **kwargs)

    def ids(messages, **kw) -> list[int]:
        out = tok.apply_chat_template(messages, tokenize=True, **kw)
        return list(out["input_ids"] if hasattr(out, "keys") else out)  # transformers 5: a BatchEncoding

    def chat(messages, cap=10**9, **kw) -> int:
        return min(len(ids(messages, **kw)), cap)

    def text(s: str, cap=10**9) -> int:
        return min(len(tok(s, add_special_tokens=False)["input_ids"]) + 1, cap)  # + end-of-turn

    def shared(prompts) -> int:  # tokens every prompt starts with: what prefix caching saves
        seqs = [ids(m, add_generation_prompt=True) for m in prompts]
        return next(i for i in range(min(map(len, seqs)) + 1) if i == min(map(len, seqs)) or len({s[i] for s in seqs}) > 1)

    def user(content, answer=None):
        return [{"role": "user", "content": content}] + ([{"role": "assistant", "content": answer}] if answer else [])

    records = read_records(TEACHER)
    gen_cap, train_cap = profile["sample"]["sampling"]["max_tokens"], profile["train"]["max_length"]
    code_cap, chars = profile["scoder_train"]["train"]["max_length"], profile["score"]["max_chars"]
    answers = [format_synthesis(r["problem"], r["solution"]) for r in records]  # the [Problem Description]/[Solution] answer
    prompts = [synthesis_prompt(r["seed"]) for r in records]
    scores = [user(scoring_prompt(r["problem"][:chars], r["solution"][:chars])) for r in records]
    out = {"synth_prompt": stats([chat(user(q), add_generation_prompt=True) for q in prompts]),
           "synth_answer": stats([text(s, gen_cap) for s in answers]),
           "synth_example": stats([chat(user(q, s), train_cap) for q, s in zip(prompts, answers)]),  # what train@K learns
           "synth_prefix": stats([shared([user(q) for q in prompts])]),
           "score_prompt": stats([chat(m, add_generation_prompt=True) for m in scores]),
           "score_prefix": stats([shared(scores)]),
           # the Figure-7 [Score] block with every slot filled; the [Reason] before it is assumed
           "score_block": stats([text("".join(part + "7" for part in template_parts("")) + "\n}\n[End]")]),
           "code_example": stats([chat(user(r["problem"], r["solution"]), code_cap) for r in records])}
    evol = read_records(EVOL_2K) if EVOL_2K.exists() else None  # before the slice's filter
    out["phase1_example"] = (stats([chat(user(r["instruction"], r["output"]), code_cap) for r in evol]) if evol
                             else out["code_example"])
    tasks = [t for name in ("humaneval", "mbpp") for t in read_records(ROOT / f"data/benchmarks/{name}-decontam.jsonl.gz")]
    config = SimpleNamespace(instruction_prefix=INSTRUCTION_PREFIX, response_prefix=RESPONSE_PREFIX)
    out["eval_prompt"] = stats([chat(m, continue_final_message=True) for m in chat_prompts(tasks, config)])
    out["eval_answer"] = stats([text(t["canonical_solution"], profile["evaluate"]["sampling"]["max_tokens"]) for t in tasks])
    out["eval_tasks"] = {"mean": len(tasks), "p90": len(tasks), "n": len(tasks)}
    return out


# --- the roofline ---------------------------------------------------------------------------

def flop_tokens_per_s(model: Model, gpu: GPU, mfu: float, factor: float) -> float:
    return gpu.bf16_tflops * 1e12 * mfu / (factor * model.params)


def decode(model: Model, gpu: GPU, a: Assumptions, prompt: float, gen: float, sequences: int) -> tuple[float, int, str]:
    """Generated tokens/s of one GPU, the concurrency and the binding limit. A step reads the
    weights (2N bytes) and every running sequence's KV cache and does 2N FLOPs (+ attention)
    per sequence; a sequence holds prompt + gen/2 tokens of context on average."""
    ctx = prompt + gen / 2
    kv_budget = gpu.hbm_gb * 1e9 * a.gpu_memory_utilization - 2 * model.params
    b = int(max(1, min(a.batch, sequences, kv_budget // (model.kv_bytes_per_token * ctx))))
    mem_s = (2 * model.params + b * ctx * model.kv_bytes_per_token) / (gpu.hbm_tb_s * 1e12 * a.bw_efficiency)
    flop_s = b * (2 * model.params + 4 * model.layers * ctx * model.attn_dim) / (gpu.bf16_tflops * 1e12 * a.decode_mfu)
    return b / max(mem_s, flop_s), b, ("memory" if mem_s >= flop_s else "compute") + ("" if b == a.batch else ", KV-capped")


def k(x: float) -> str:  # 1234567 -> 1.23M
    return next((f"{x / s:.3g}{u}" for u, s in (("B", 1e9), ("M", 1e6), ("K", 1e3)) if abs(x) >= s), f"{x:.3g}")


def paper_profile() -> dict:
    from scoder.core.profile import load_profile

    return load_profile(ROOT / "params.yaml", ROOT / "configs/paper.yaml")


def table(a: Assumptions | None = None, cpu_tokens_per_s: float | None = None, lengths: dict | None = None) -> list[dict]:
    """One dict per stage, then the total: stage, work, tokens, throughput, gpu_hours, cpu_hours."""
    from scoder.bootstrap.categorize import TASK_CATEGORIES

    a, p = a or Assumptions(), paper_profile()
    gpu, mean = GPUS[a.gpu], {key: v["mean"] for key, v in (lengths or measure_lengths(p)).items()}
    rows: list[dict] = []

    def add(stage, work, tokens, throughput, seconds, generated=0.0):
        rows.append({"stage": stage, "work": work, "tokens": tokens, "throughput": throughput, "gpu_hours": seconds / 3600,
                     "cpu_hours": generated / cpu_tokens_per_s / 3600 if cpu_tokens_per_s and generated else None})

    def train(stage, model, examples, epochs, per_example, factor, what):
        tps, total = flop_tokens_per_s(model, gpu, a.train_mfu, factor), examples * per_example * epochs
        add(stage, f"{k(examples)} {what} x {epochs} ep [c]", f"{per_example:.0f}/ex [m]; {k(total)} trained",
            f"{k(tps)} tok/s ({factor:g}N, MFU {a.train_mfu:.0%}) [p]", total / tps)

    def generate(stage, model, prompts, sequences, prompt, gen, work, prefix=0.0):
        prefill = flop_tokens_per_s(model, gpu, a.prefill_mfu, a.prefill_factor)
        tps, b, bound = decode(model, gpu, a, prompt, gen, sequences)
        computed = prompt - (prefix if a.prefix_caching else 0.0)  # a cached prefix is prefilled once
        add(stage, work, f"{prompt:.0f} / {gen:.0f} per seq [m]; {k(prompts * prompt)} / {k(sequences * gen)}",
            f"decode {k(tps)} tok/s (B={b}, {bound}); prefill {k(prefill)} tok/s [p]",
            prompts * computed / prefill + sequences * gen / tps, sequences * gen)

    dp = p["categorize"]["per_category"] * len(p["categorize"].get("categories") or TASK_CATEGORIES)
    add("distill", f"{k(dp)} {p['distill']['teacher']['model']} calls (API) [c]",
        f"{mean['synth_prompt']:.0f} / {mean['synth_answer']:.0f} per call [m]; {k(dp * mean['synth_prompt'])} / "
        f"{k(dp * mean['synth_answer'])}", "API: dollars, not GPU time (`scoder cost estimate --profile configs/paper.yaml`)", 0)
    rounds, t, m, n = p["rounds"], p["train"], p["train"]["num_checkpoints"], p["sample"]["sampling"]["n"]
    for key in p["synthesizers"]:
        train(f"train@{key}", QWEN7B, dp if key == "0" else rounds[key]["select"], t["epochs"], mean["synth_example"],
              a.train_factor, "D_p" if key == "0" else "selected")
    r = p["reference"]
    train("reference", LLAMA8B, dp, r["epochs"], mean["synth_example"], a.lora_train_factor, f"D_p, LoRA r{r['lora']['r']}")
    # gradient features: forward + backward, then the LoRA gradient (q,k,v,o: in -> out) times proj_dim signs
    lora = LLAMA8B.layers * sum(r["lora"]["r"] * (LLAMA8B.attn_dim + o) for o in (LLAMA8B.attn_dim, 1024, 1024, LLAMA8B.attn_dim))
    proj = p["influence"]["proj_dim"]
    per_s = gpu.bf16_tflops * 1e12 * a.train_mfu / (a.feature_factor * LLAMA8B.params * mean["synth_example"] + 2 * lora * proj)
    for key, spec in rounds.items():
        sn, judged = spec["snippets"], spec["snippets"] * m * n * a.parse_rate
        generate(f"sample@{key}", QWEN7B, sn * m, sn * m * n, mean["synth_prompt"], mean["synth_answer"],
                 f"{k(sn)} snippets x M={m} x N={n} = {k(sn * m * n)} generations [c]", mean["synth_prefix"])
        generate(f"score@{key}", LLAMA8B, judged, judged, mean["score_prompt"], a.score_reason_tokens + mean["score_block"],
                 f"{k(judged)} judgements [c]", mean["score_prefix"])
    for stage, count in [("dp_features", dp)] + [(f"influence@{key}", s["snippets"]) for key, s in rounds.items()]:
        add(stage, f"{k(count)} {'D_p samples' if stage == 'dp_features' else 'best candidates'} [c]",
            f"{mean['synth_example']:.0f}/ex [m]; {k(count * mean['synth_example'])} fwd+bwd",
            f"{per_s:.1f} samples/s ({a.feature_factor:g}N/token + 2x{k(lora)}x{proj} projection, MFU {a.train_mfu:.0%}) [p]",
            count / per_s)
    size, st = p["synthesize"]["size"], p["scoder_train"]
    generate("synthesize", QWEN7B, size, size, mean["synth_prompt"], mean["synth_answer"], f"{k(size)} generations [c]",
             mean["synth_prefix"])
    train("scoder_train phase1", DSC67B, a.phase1_records, st["phase1"]["epochs"], mean["phase1_example"], a.train_factor,
          "evol-codealpaca-v1")
    train("scoder_train phase2", DSC67B, size, st["phase2"]["epochs"], mean["code_example"], a.train_factor, "synthesized")
    tasks = int(mean["eval_tasks"])
    generate("evaluate", DSC67B, tasks, tasks, mean["eval_prompt"], mean["eval_answer"],
             f"HumanEval+ 164 + MBPP+ 378 = {tasks} greedy [c]")
    cpu = [row["cpu_hours"] for row in rows if row["cpu_hours"] is not None]
    rows.append({"stage": "**total**", "work": "", "tokens": "", "throughput": "",
                 "gpu_hours": sum(row["gpu_hours"] for row in rows), "cpu_hours": sum(cpu) if cpu else None})
    return rows


def markdown(rows: list[dict], gpu: GPU) -> str:
    cpu = any(r["cpu_hours"] is not None for r in rows)
    head = ["stage", "work", "tokens (prompt / generated, or trained)", f"throughput per {gpu.name}", "GPU-hours [p]"]
    head += ["CPU-hours (given rate)"] if cpu else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["stage"], r["work"], r["tokens"], r["throughput"], f"{r['gpu_hours']:.1f}"]
        cells += [f"{r['cpu_hours']:.0f}" if r["cpu_hours"] is not None else "-"] if cpu else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


NOTES = """\
Legend: [c] from params.yaml + configs/paper.yaml, [m] measured here, [p] projected.
Lengths [m]: SmolLM2's tokenizer (49K vocab) and chat template, not Qwen's / Llama's / DeepSeek's: approximate.
  Records: {teacher} (369 real gpt-3.5 answers, kept at <= 1,800 characters: GPT-4o
  answers under max_tokens 2048 may run longer); phase 1: {phase1} (a GPT-3.5 proxy for evol-codealpaca-v1);
  evaluate: data/benchmarks prompts, canonical solutions standing in for generated code.
  {lengths}
Throughput [p]: {gpu.name}, {gpu.bf16_tflops:g} TFLOP/s bf16 dense, {gpu.hbm_tb_s:g} TB/s, {gpu.hbm_gb:g} GB; {assumptions}
  training tokens/s = peak x MFU / (factor x N); prefill = peak x prefill_mfu / (2N); decode step = max((2N + B x ctx
  x KV bytes/token) / (bandwidth x bw_efficiency), B x (2N + attention) / (peak x decode_mfu)), ctx = prompt +
  generated/2, B capped by the KV cache that fits. N: Qwen2.5-Coder-7B 7.6B, Llama3.1-8B 8.0B, DeepSeek-Coder-6.7B 6.7B.
  Left out: attention FLOPs of training and prefill, padding, checkpoint saves, model loads, the sandbox, tail
  effects. A roofline is a bound: real engines usually land below it (more hours).
  sample: one prefill per (snippet, checkpoint), shared by its N samples; the M checkpoints are full models served
  one after another. prefix_caching: the measured shared prefixes (synth_prefix, score_prefix) are prefilled once.
  score: every candidate judged (parse_rate), {reason} [Reason] tokens assumed + the measured [Score] block.
  features: the projection is costed as a GPU GEMM (an on-the-fly projector such as TRAK's);
  src/scoder/bootstrap/influence.py projects on the CPU today, far slower at 8192 dims.
  distill (GPT-4o, Batch API) costs dollars, 0 GPU-hours. Not in the table: the optional scorer distillation
  (stages/distill_scorer.py: GPT-4o judgements, then Llama3.1-8B SFT)."""


def notes(a: Assumptions, lengths: dict, cpu_rate: float | None) -> str:
    text = NOTES.format(teacher=TEACHER.relative_to(ROOT), phase1=EVOL_2K.name if EVOL_2K.exists() else "the same slice",
                        gpu=GPUS[a.gpu], reason=a.score_reason_tokens,
                        lengths=", ".join(f"{key} {v['mean']:.0f} (p90 {v['p90']:.0f}, n={v['n']})"
                                          for key, v in lengths.items() if key != "eval_tasks"),
                        assumptions=", ".join(f"{f.name}={getattr(a, f.name)}" for f in fields(a)))
    if cpu_rate:
        text += (f"\nCPU-hours: the generated tokens at the given {cpu_rate:g} tokens/s of the shipped 135M model on this "
                 "CPU (generation stages only; not the paper models' CPU time).")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", choices=sorted(GPUS), default="h100")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="change an Assumptions field")
    parser.add_argument("--cpu-tokens-per-s", type=float, default=None, help="measured CPU generation rate (135M model)")
    parser.add_argument("--markdown", action="store_true", help="print only the markdown table")
    args = parser.parse_args()
    a = Assumptions(gpu=args.gpu)
    for item in args.set:
        name, value = item.split("=", 1)
        kind = type(getattr(a, name))
        a = replace(a, **{name: value.lower() in ("1", "true", "yes") if kind is bool else kind(value)})
    lengths = measure_lengths(paper_profile())
    print(markdown(table(a, args.cpu_tokens_per_s, lengths), GPUS[a.gpu]))
    if not args.markdown:
        print("\n" + notes(a, lengths, args.cpu_tokens_per_s))


if __name__ == "__main__":
    main()

"""A micro profile of the real pipeline for harness tests: every stage runs in seconds.

The language model is a 2-layer Llama with random weights (seeded) and SmolLM2's real
tokenizer and chat template, built in a folder and named by path in params, as a user names
any local model. It exercises every code path of the stages (LoRA training with Adam state,
sampling from checkpoints, forced scoring, gradient features, EvalPlus) at a fraction of the
cost; its text is noise, which the stages count as parse and execution failures. The teacher
is the fault-injecting OpenAI-compatible endpoint of `fake_openai`, so its requests are paid
and counted.
"""

from __future__ import annotations

from pathlib import Path

from conftest import new_project, shared_data_dir

HUMANEVAL_PLUS = "HumanEvalPlus-v0.1.10.jsonl.gz"
TEACHER_KEY_ENV = "SCODER_TEACHER_KEY"

# `dvc repro -s` order of the micro profile (one bootstrap round)
STAGES = ["pool", "categorize", "distill", "subset", "train@0", "reference", "dp_features", "sample@1",
          "score@1", "influence@1", "select@1", "train@1", "synthesize", "cost", "export", "scoder_train", "evaluate", "semantic_dedup",
          "specialists", "specialist_evaluate", "dataset_metrics", "report"]


def build_micro_model(folder: Path, seed: int = 0, fence_logit: float = 9.0) -> Path:
    """Random weights, plus one habit so that some answers parse: a constant residual
    channel (dimension 0 of every embedding, untouched by the layers) drives the head's row
    of the code-fence token to about `fence_logit`, i.e. P(fence) ~ 0.15 per step at
    temperature 1 against the other ~49K near-zero logits."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from scoder.models.registry import resolve

    smollm2 = resolve("smollm2")
    tokenizer = AutoTokenizer.from_pretrained(smollm2.path, gguf_file=smollm2.gguf_file)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 10.0
        for layer in model.model.layers:  # nothing writes into the constant channel
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        fence = tokenizer.encode("```", add_special_tokens=False)
        head = model.lm_head.weight
        head[:, 0] = 0.0
        # the normed constant channel is 10 / rms ~ sqrt(hidden_size)
        head[fence[0], 0] = fence_logit / config.hidden_size ** 0.5
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def micro_params(params: dict, model: str, teacher_url: str) -> None:
    llm = {"model": model}
    params["pool"]["max_files"] = 40
    params["categorize"]["per_category"] = 1
    params["categorize"]["quality"].update(model=model, batch_size=2, threshold=0.0)
    params["distill"]["teacher"].update(backend="openai", model="gpt-test", endpoint=teacher_url, api_key_env=TEACHER_KEY_ENV,
                                        max_concurrency=2, timeout_s=10, max_retries=3)
    params["distill"]["sampling"]["max_tokens"] = 64
    params["distill"]["chunk_size"] = 2
    params["subset"]["lm"] = model
    params["train"].update(**llm, require_parse_ok=False)  # the micro model's round answers never parse
    params["synthesizers"] = {"0": {"data": "data/distill/samples.jsonl", "init": "base"}, "1": {"data": "data/rounds/1/selected.jsonl", "init": "0"}}
    params["rounds"] = {"1": {"previous": "0", "snippets": 3, "select": 2}}
    params["reference"].update(**llm, max_examples=6, batch_size=2)
    params["influence"].update(proj_dim=64, max_dp=6, batch_size=1, shard_batches=1)
    params["sample"]["sampling"].update(n=1, max_tokens=24)
    params["sample"].update(guided_problem_tokens=12, chunk_size=2)
    params["score"]["scorer"].update(**llm)
    params["score"].update(execution="aspect", max_chars=400, chunk_size=2,
                           include_unparsed=True)  # its answers never parse: score them raw
    params["synthesize"].update(synthesizer="1", size=4, execution="annotate", guided_problem_tokens=12, chunk_size=2)
    params["synthesize"]["sampling"].update(max_tokens=32, temperature=1.0)  # seeded: some answers close the fence
    params["scoder_train"]["train"].update(**llm)
    params["scoder_train"]["phase2"].update(epochs=1)
    params["evaluate"].update(limit=2, datasets=["humaneval"])
    params["evaluate"]["sampling"].update(max_tokens=24)
    params["specialists"]["train"].update(**llm, epochs=1)
    params["specialist_evaluate"].update(limit=1, passes=[{"k": 1, "n": 1, "temperature": 0.2}])
    params["specialist_evaluate"]["sampling"].update(max_tokens=16)


def make_project(repo_root: Path, dest: Path, model: Path, teacher_url: str) -> Path:
    """A fresh git repository of the tracked files with the micro profile in params.yaml."""
    return new_project(repo_root, dest, lambda params: micro_params(params, str(model), teacher_url))


def project_env(base: dict, bin_dir: Path, teacher_key: str) -> dict:
    env = {k: v for k, v in base.items() if k not in ("MLFLOW_TRACKING_URI", "MBPP_OVERRIDE_PATH", "SCODER_CACHE_DIR")}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               HUMANEVAL_OVERRIDE_PATH=str(shared_data_dir() / "benchmarks" / HUMANEVAL_PLUS))
    env[TEACHER_KEY_ENV] = teacher_key
    return env

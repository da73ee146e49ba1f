"""Supervised fine-tuning with TRL's SFTTrainer and PEFT LoRA, saving M checkpoints.

Data are prompt-completion conversations (`prompt`: the user turn, `completion`: the
assistant turn); TRL masks the prompt tokens so the loss is on the response only.
`num_checkpoints` adapters are saved at evenly spaced optimizer steps, each with the Adam
state (exp_avg, exp_avg_sq, step) keyed by parameter name, which optimizer-aware influence
estimation needs. A model loaded from GGUF comes back dequantized but flagged as quantized,
which the Trainer refuses; it is rebuilt as a plain fp32 model first.

Precision and gradient checkpointing are params values passed to TRL explicitly: its
SFTConfig defaults to bf16 and gradient checkpointing, which on a CPU without native bf16
run on slow fallback kernels and give CPU-dependent numbers. `precision: bf16` is mixed
precision: the master weights and the Adam state stay fp32 and the Trainer autocasts the
forward to bf16. Pure bf16 weights would round away updates at the small learning rates used
here (8 bits of mantissa) and leave influence estimation a bf16 Adam state.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from scoder.models.precision import check_precision, resolve_precision
from scoder.models.registry import resolve

log = logging.getLogger(__name__)


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class TrainConfig:
    model: str = "smollm2"
    method: str = "lora"  # lora | full
    lora: LoraSettings = field(default_factory=LoraSettings)
    learning_rate: float = 1e-4
    epochs: float = 1.0
    batch_size: int = 2
    grad_accum: int = 1
    max_length: int = 768
    warmup_ratio: float = 0.0
    lr_scheduler: str = "linear"
    weight_decay: float = 0.0
    num_checkpoints: int = 2  # M
    seed: int = 1234
    precision: str = "fp32"  # fp32 | bf16 (mixed, fp32 master weights) | auto (bf16 where the device has it natively)
    gradient_checkpointing: bool = False  # recompute activations in the backward: less memory, slower steps

    def __post_init__(self):
        check_precision(self.precision, "train.precision")


def load_trainable_model(reference: str):
    """(model, tokenizer) in fp32, ready for the Trainer (a GGUF file through its converted
    plain folder, scoder.models.gguf)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scoder.models.gguf import loadable, plain_model

    path, kwargs = loadable(resolve(reference))
    if kwargs.get("gguf_file"):  # the converted folder could not be written: rebuild from the file
        model, tokenizer = plain_model(Path(path) / kwargs["gguf_file"])
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def checkpoint_steps(total_steps: int, count: int) -> list[int]:
    """`count` optimizer steps spread evenly over training, the last one included."""
    if total_steps < 1 or count < 1:
        raise ValueError(f"need at least one step and one checkpoint (steps={total_steps}, checkpoints={count})")
    return sorted({max(1, round(total_steps * k / count)) for k in range(1, count + 1)})


def adam_state_by_name(model, optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """exp_avg / exp_avg_sq of every trainable parameter, keyed by its name."""
    inner = getattr(optimizer, "optimizer", optimizer)
    group = inner.param_groups[0]
    tensors, steps = {}, {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        state = inner.state.get(param)
        if not state:
            continue
        tensors[f"{name}.exp_avg"] = state["exp_avg"].detach().cpu().contiguous()
        tensors[f"{name}.exp_avg_sq"] = state["exp_avg_sq"].detach().cpu().contiguous()
        steps[name] = float(state["step"])
    meta = {"betas": list(group["betas"]), "eps": group["eps"], "lr": group["lr"], "step": max(steps.values(), default=0)}
    return tensors, meta


def sharded_training() -> bool:
    """Launched by `accelerate launch` with FSDP or DeepSpeed (configs/accelerate/): weights
    and optimizer state are split across the processes."""
    return any(os.environ.get(name, "").lower() == "true" for name in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"))


def _canonical_adapter_config(folder: Path, base_model: str) -> None:
    """Make a saved adapter's bytes depend on the training alone, so two identical trainings
    give the same files (and DVC hashes, and response-cache keys):
    - PEFT writes target_modules from a set, in an order that follows PYTHONHASHSEED: sorted;
    - PEFT records the base model as the folder it was loaded from, an absolute path into this
      checkout's venv for a shipped model: replaced, in adapter_config.json and in the model
      card beside it, by `base_model` as params name it. Loaders pass the base model
      explicitly and never read this field."""
    path = folder / "adapter_config.json"
    if not path.exists():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    loaded_from = config.get("base_model_name_or_path")
    config["base_model_name_or_path"] = base_model
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    card = folder / "README.md"
    if loaded_from and loaded_from != base_model and card.exists():
        card.write_text(card.read_text(encoding="utf-8").replace(loaded_from, base_model), encoding="utf-8")


def fit_to_length(examples: list[dict], tokenizer, max_length: int) -> tuple[list[dict], int]:
    """Drop, and count, examples whose prompt alone fills `max_length`: truncation would leave
    no response token, and TRL would drop them silently while the step count assumed them."""
    kept = []
    for example in examples:
        prompt = tokenizer.apply_chat_template(example["prompt"], add_generation_prompt=True, tokenize=False)
        if len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) < max_length - 1:
            kept.append(example)
    dropped = len(examples) - len(kept)
    if dropped:
        log.warning("%d of %d examples have a prompt of %d tokens or more and are not trained on (raise max_length)",
                    dropped, len(examples), max_length - 1)
    if not kept:
        raise ValueError(f"every prompt is longer than max_length={max_length}: nothing to train on")
    return kept, dropped


def pin_launcher_precision(precision: str) -> None:
    """`accelerate launch --mixed_precision` (configs/accelerate/) exports
    ACCELERATE_MIXED_PRECISION, which transformers uses whenever bf16 and fp16 are both off:
    an fp32 run would silently train in bf16. The params value wins; a disagreeing launcher
    setting is overridden with a warning."""
    wanted = "bf16" if precision == "bf16" else "no"
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if launcher is not None and launcher.lower() != wanted:
        log.warning("the launcher asks for mixed precision '%s' but train.precision resolves to %s: training in %s",
                    launcher, precision, precision)
        os.environ["ACCELERATE_MIXED_PRECISION"] = wanted


def precision_args(precision: str, gradient_checkpointing: bool) -> dict:
    """SFTConfig arguments for a resolved precision: every setting that can change the numeric
    precision or the checkpointing, so none is left to TRL's or transformers' default."""
    return {
        "bf16": precision == "bf16",
        "fp16": False,
        "bf16_full_eval": False,
        "fp16_full_eval": False,
        "tf32": False,  # fp32 matmuls stay fp32 on GPUs too
        "torch_compile": False,
        "activation_checkpointing": gradient_checkpointing,
        "gradient_checkpointing": gradient_checkpointing,  # the deprecated alias, which TRL sets to True
    }


def train_sft(examples: list[dict], config: TrainConfig, out_dir: str | Path, init_adapter: str | None = None) -> dict:
    """Train on prompt-completion examples; returns metrics and writes checkpoint-<k>/ folders.
    `init_adapter`: go on training this LoRA adapter (a previous phase) instead of a new one."""
    from datasets import Dataset
    from peft import LoraConfig
    from safetensors.torch import save_file
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    if not examples:
        raise ValueError("no training examples")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = resolve_precision(config.precision, device)  # a bad name stops the run before any loading
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_trainable_model(config.model)
    examples, too_long = fit_to_length(examples, tokenizer, config.max_length)
    processes = int(os.environ.get("WORLD_SIZE", "1"))  # a distributed launch splits each global batch
    steps_per_epoch = math.ceil(len(examples) / (config.batch_size * config.grad_accum * processes))
    total_steps = max(1, math.ceil(steps_per_epoch * config.epochs))
    save_at = checkpoint_steps(total_steps, config.num_checkpoints)
    saved: list[dict] = []

    sharded = sharded_training()

    class SaveCheckpoints(TrainerCallback):
        trainer = None  # set once the trainer exists

        def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
            if state.global_step not in save_at:
                return
            index = save_at.index(state.global_step)
            folder = out_dir / f"checkpoint-{index}"
            if sharded:
                # FSDP / DeepSpeed: every process takes part in gathering the weights, the main
                # one writes them; the optimizer state stays sharded and is not exported
                self.trainer.save_model(str(folder))
                if state.is_world_process_zero:
                    if (folder / "adapter_config.json").exists():
                        _canonical_adapter_config(folder, config.model)
                    (folder / "adam_state.json").write_text(json.dumps(
                        {"global_step": state.global_step, "sharded_optimizer": True,
                         "note": "no Adam state: the optimizer was sharded (FSDP/DeepSpeed); influence needs a DDP or single-process reference"},
                        indent=2))
                    saved.append({"checkpoint": index, "step": state.global_step})
                return
            # DDP: every process holds the same weights and Adam state; the main one writes them
            if not state.is_world_process_zero:
                return
            model.save_pretrained(folder)
            _canonical_adapter_config(folder, config.model)
            if config.method == "full":  # a full checkpoint is a model of its own: make it loadable alone
                tokenizer.save_pretrained(folder)
            tensors, meta = adam_state_by_name(model, optimizer)
            save_file(tensors, str(folder / "adam_state.safetensors"))
            meta.update(global_step=state.global_step)  # the step's loss is logged after this callback
            (folder / "adam_state.json").write_text(json.dumps(meta, indent=2))
            saved.append({"checkpoint": index, "step": state.global_step})

    pin_launcher_precision(precision)
    args = SFTConfig(
        output_dir=str(out_dir / "_trainer"),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=config.epochs,
        max_steps=total_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=int(round(config.warmup_ratio * total_steps)),
        weight_decay=config.weight_decay,
        seed=config.seed,
        data_seed=config.seed,
        max_length=config.max_length,
        completion_only_loss=True,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        disable_tqdm=False,
        **precision_args(precision, config.gradient_checkpointing),
    )
    expected = ("bf16" if precision == "bf16" else "no", config.gradient_checkpointing)
    if (args.mixed_precision, args.activation_checkpointing) != expected:  # a library version that ignores an argument
        raise RuntimeError(f"the trainer would run (mixed precision, checkpointing) = "
                           f"{(args.mixed_precision, args.activation_checkpointing)}, not {expected}")
    peft_config = None
    if init_adapter:
        from peft import PeftModel

        if config.method != "lora":
            raise ValueError("init_adapter needs method lora")
        model = PeftModel.from_pretrained(model, init_adapter, is_trainable=True)
    elif config.method == "lora":
        peft_config = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                                 target_modules=config.lora.target_modules, task_type="CAUSAL_LM")
    elif config.method != "full":
        raise ValueError(f"unknown train.method '{config.method}' (expected lora or full)")
    saver = SaveCheckpoints()
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples), processing_class=tokenizer,
                         peft_config=peft_config, callbacks=[saver])
    saver.trainer = trainer
    result = trainer.train()
    # the Trainer's scratch folder (checkpoints are ours): removed by the main process once every
    # process is out of train(), whose end-of-run checkpoint listing globs it (a process that
    # finished first removed it under another's glob: FileNotFoundError in the DDP test)
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        shutil.rmtree(out_dir / "_trainer", ignore_errors=True)
    # the loss logged at each checkpoint's own step (logging_steps=1), into the metrics and the Adam metadata
    logged = {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h}
    for entry in saved:
        entry["loss"] = logged.get(entry["step"])
        meta_file = out_dir / f"checkpoint-{entry['checkpoint']}" / "adam_state.json"
        meta = json.loads(meta_file.read_text())
        meta["train_loss"] = entry["loss"]
        meta_file.write_text(json.dumps(meta, indent=2))
    return {"examples": len(examples), "dropped_too_long": too_long, "steps": total_steps, "checkpoints": saved,
            "train_loss": result.training_loss, "precision": precision,
            "gradient_checkpointing": config.gradient_checkpointing}


def instruction_examples(records: list[dict], instruction_fields: list[str], response_fields: list[str],
                         source: str, max_examples: int = 0) -> list[dict]:
    """Chat prompt-completion examples from instruction records (Alpaca style `instruction` +
    `input`, or any named fields). A record without an instruction or a response is an error
    naming it: a training set with silent holes is worse than a stopped run."""
    from scoder.models.features import instruction_text

    examples = []
    for index, record in enumerate(records, start=1):
        try:
            instruction = instruction_text(record, instruction_fields)
            response = instruction_text(record, response_fields)
        except ValueError as exc:
            raise ValueError(f"{source}: record {index}: {exc}") from None
        extra = record.get("input")
        if "instruction" in instruction_fields and isinstance(extra, str) and extra.strip() and extra not in instruction:
            instruction = f"{instruction}\n\n{extra}"
        examples.append({"id": record.get("id", f"{source}:{index}"),
                         "prompt": [{"role": "user", "content": instruction}],
                         "completion": [{"role": "assistant", "content": response}]})
        if max_examples and len(examples) >= max_examples:
            break
    return examples



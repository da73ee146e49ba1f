"""Precision and gradient checkpointing are what params say, seen inside the training step.

Forward hooks on a Linear layer and on the causal-LM module (whose output carries the loss
terms) record whether bf16 autocast is on and which dtype comes out, while TRL trains a tiny
random Llama for two steps.
"""

import pytest
import torch
from micro_profile import build_micro_model

from scoder.training import sft
from scoder.training.sft import TrainConfig, train_sft

EXAMPLES = [
    {"prompt": [{"role": "user", "content": f"Write a function that adds {i} to x."}],
     "completion": [{"role": "assistant", "content": f"def add_{i}(x):\n    return x + {i}"}]}
    for i in range(4)
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_micro_model(tmp_path_factory.mktemp("tiny-llama"))


def train_and_watch(tmp_path, monkeypatch, model_path, **settings):
    """Train two steps; what the hooks saw during them, and train_sft's result."""
    seen = {"linear": [], "loss": [], "checkpointing": []}
    load = sft.load_trainable_model

    def load_and_hook(reference):
        model, tokenizer = load(reference)
        linear = model.model.layers[0].mlp.up_proj  # not a LoRA target; its output is saved for the backward

        def on_linear(module, args, out):
            if module.training:
                seen["linear"].append((torch.is_autocast_enabled("cpu"), out.dtype))

        def on_model(module, args, out):
            if module.training:
                seen["loss"].append((torch.is_autocast_enabled("cpu"), out.log_probs.dtype))
                seen["checkpointing"].append(module.is_activation_checkpointing)

        linear.register_forward_hook(on_linear)
        model.register_forward_hook(on_model)  # inside the autocast of the Trainer's wrapped forward
        return model, tokenizer

    monkeypatch.setattr(sft, "load_trainable_model", load_and_hook)
    config = TrainConfig(model=str(model_path), batch_size=2, num_checkpoints=1, max_length=64, learning_rate=1e-3,
                         **settings)
    result = train_sft(EXAMPLES, config, tmp_path)
    assert result["steps"] == 2 and seen["loss"], "the hooks saw no training step"
    return seen, result


@pytest.mark.slow
def test_fp32_trains_without_autocast_or_checkpointing(tiny_model, tmp_path, monkeypatch):
    seen, result = train_and_watch(tmp_path, monkeypatch, tiny_model, precision="fp32")
    assert set(seen["linear"]) == {(False, torch.float32)}
    assert set(seen["loss"]) == {(False, torch.float32)}
    assert set(seen["checkpointing"]) == {False}
    assert result["precision"] == "fp32" and result["gradient_checkpointing"] is False


@pytest.mark.slow
def test_bf16_autocasts_the_training_step(tiny_model, tmp_path, monkeypatch):
    seen, result = train_and_watch(tmp_path, monkeypatch, tiny_model, precision="bf16")
    assert set(seen["linear"]) == {(True, torch.bfloat16)}
    assert {enabled for enabled, _ in seen["loss"]} == {True}
    assert set(seen["checkpointing"]) == {False}
    assert result["precision"] == "bf16"


@pytest.mark.slow
def test_gradient_checkpointing_only_when_asked(tiny_model, tmp_path, monkeypatch):
    seen, result = train_and_watch(tmp_path, monkeypatch, tiny_model, precision="fp32", gradient_checkpointing=True)
    assert set(seen["checkpointing"]) == {True}
    # the backward recomputes each checkpointed layer's forward: the layer runs twice per step
    assert len(seen["linear"]) == 2 * len(seen["loss"])
    assert result["gradient_checkpointing"] is True


@pytest.mark.slow
def test_a_launcher_asking_for_bf16_does_not_override_fp32(tiny_model, tmp_path, monkeypatch):
    """`accelerate launch --mixed_precision bf16` exports this; params say fp32."""
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    seen, result = train_and_watch(tmp_path, monkeypatch, tiny_model, precision="fp32")
    assert set(seen["linear"]) == {(False, torch.float32)}
    assert result["precision"] == "fp32"


@pytest.mark.slow
def test_auto_trains_in_fp32_on_a_cpu_without_native_bf16(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr("scoder.models.precision.cpu_has_native_bf16", lambda: False)
    seen, result = train_and_watch(tmp_path, monkeypatch, tiny_model, precision="auto")
    assert set(seen["linear"]) == {(False, torch.float32)}
    assert result["precision"] == "fp32"


def test_an_unknown_precision_fails_with_the_params(tmp_path):
    """At parse time (the params dry run), and in train_sft for a config changed after."""
    from scoder.core.params import from_dict
    from scoder.bootstrap.code_model import ScoderTrainConfig

    with pytest.raises(ValueError, match="train.precision: unknown precision 'fp16'.*fp32, bf16, auto"):
        from_dict(TrainConfig, {"precision": "fp16"}, "train")
    with pytest.raises(ValueError, match="params 'scoder_train.train'.*unknown precision 'half'"):
        from_dict(ScoderTrainConfig, {"train": {"precision": "half"}}, "scoder_train")
    config = TrainConfig(model="no-such-model")
    config.precision = "fp16"
    with pytest.raises(ValueError, match="fp32, bf16, auto"):
        train_sft(EXAMPLES, config, tmp_path)


def test_the_config_sections_pass_precision_through():
    from scoder.kspecialist.specialists import SpecialistsConfig
    from scoder.bootstrap.code_model import PhaseConfig, ScoderTrainConfig

    phase = ScoderTrainConfig(train=TrainConfig(precision="bf16", gradient_checkpointing=True)).phase_train_config(
        PhaseConfig(), "m")
    assert (phase.precision, phase.gradient_checkpointing) == ("bf16", True)
    specialist = SpecialistsConfig(train=TrainConfig(precision="auto", gradient_checkpointing=True)).train_config()
    assert (specialist.precision, specialist.gradient_checkpointing) == ("auto", True)
    assert (TrainConfig().precision, TrainConfig().gradient_checkpointing) == ("fp32", False)

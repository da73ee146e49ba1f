"""The fast feature path (`influence.method: fast`) against the reference (`method: loop`):
the same sign matrix entry for entry, the same features up to float32 rounding on a tiny
random Llama with LoRA (several batches and shards, samples of different lengths, one without
response tokens, Adam on and off), and the shard contract (the union of `shard i/n` runs is
one run bit for bit; a lost shard is recomputed alone, identically)."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

import scoder.bootstrap.influence_fast as fast_module
from scoder.bootstrap.influence import (
    FeatureConfig,
    RademacherProjection,
    _collate,
    compute_features,
    encode_example,
    load_features,
    loop_gradients,
    trainable_parameters,
)
from scoder.bootstrap.influence_fast import PackedRademacherProjection, shard_gradients

TOLERANCE = 1e-5  # max |fast - reference| / max |reference|


def relative_difference(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("dim, proj_dim, block_rows", [(1000, 64, 128), (777, 48, 100), (300, 70, 300), (50, 8, 7)])
def test_packed_blocks_are_the_reference_blocks(dim, proj_dim, block_rows):
    reference = RademacherProjection(dim, proj_dim, seed=7, block_rows=block_rows, cache_mb=0)
    packed = PackedRademacherProjection(dim, proj_dim, seed=7, block_rows=block_rows)
    for index in range(math.ceil(dim / block_rows)):
        assert torch.equal(packed.signs(index), reference.block(index)), index
    # and not another seed's
    assert not torch.equal(PackedRademacherProjection(dim, proj_dim, seed=8, block_rows=block_rows).signs(0), reference.block(0))


@pytest.mark.parametrize("tile_rows, tile_words", [(1024, 64), (5, 1), (64, 2)])
@pytest.mark.parametrize("dim, proj_dim, block_rows", [(1000, 64, 128), (777, 70, 100), (4000, 2100, 1500)])
def test_packed_projection_equals_the_reference_projection(monkeypatch, tile_rows, tile_words, dim, proj_dim, block_rows):
    monkeypatch.setattr(fast_module, "_TILE_ROWS", tile_rows)
    monkeypatch.setattr(fast_module, "_TILE_WORDS", tile_words)
    x = torch.randn(5, dim, generator=torch.Generator().manual_seed(0))
    x[2] = 0  # a zero gradient stays zero
    expected = RademacherProjection(dim, proj_dim, seed=3, block_rows=block_rows)(x)
    kept = PackedRademacherProjection(dim, proj_dim, seed=3, block_rows=block_rows, cache_mb=1024, threads=2)
    regenerated = PackedRademacherProjection(dim, proj_dim, seed=3, block_rows=block_rows, cache_mb=0, threads=1)
    assert kept.keep and not regenerated.keep
    out = kept(x)
    assert out.dtype == torch.float32 and out.shape == (5, proj_dim)
    assert relative_difference(out, expected) < TOLERANCE
    assert torch.equal(out, regenerated(x))  # kept or regenerated, one or two threads: the same
    assert torch.equal(out, kept(x)) and kept._packed is not None
    assert torch.equal(out[2], torch.zeros(proj_dim))
    # a row's projection does not depend on the other rows of the pass beyond float rounding
    assert relative_difference(kept(x[:1]), expected[:1]) < TOLERANCE
    with pytest.raises(ValueError, match=f"dimension {dim}"):
        kept(torch.zeros(1, dim - 1))


# --- a tiny random Llama with LoRA ----------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_lora():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from scoder.training.sft import load_trainable_model

    _, tokenizer = load_trainable_model("smollm2")  # the chat template; the model is tiny and random
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True)
    base = LlamaForCausalLM(config)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False,
                      task_type="CAUSAL_LM")
    return get_peft_model(base, lora).eval(), tokenizer


def _examples():
    texts = [("Write a function that returns the sum of a list.", "def total(xs):\n    return sum(xs)\n"),
             ("Hi", "Hello there, how are you doing today? I am fine, thank you."),
             ("Name three fruits.", "Apple, banana and cherry."),
             ("Describe the sea in great detail, please, " * 6, "Blue."),  # the prompt fills max_length: no response token
             ("Sort a list.", "sorted(xs)"),
             ("Reverse a string in Python and explain how slicing with a negative step works.",
              "def reverse(s):\n    return s[::-1]\n\nThe slice walks the string from its end to its start."),
             ("Add two numbers.", "def add(a, b):\n    return a + b\n")]
    return [{"id": f"e{i}", "prompt": [{"role": "user", "content": q}], "completion": [{"role": "assistant", "content": a}]}
            for i, (q, a) in enumerate(texts)]


def _adam(model, seed=0):
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, p in trainable_parameters(model):
        tensors[f"{name}.exp_avg"] = 1e-3 * torch.randn(p.shape, generator=generator)
        tensors[f"{name}.exp_avg_sq"] = (1e-3 * torch.randn(p.shape, generator=generator)) ** 2 + 1e-8
    return {"tensors": tensors, "betas": (0.9, 0.999), "eps": 1e-8}


CONFIG = FeatureConfig(proj_dim=40, batch_size=2, shard_batches=2, max_length=64, block_rows=500, seed=5)


def test_the_examples_cover_the_cases(tiny_lora):
    _, tokenizer = tiny_lora
    encoded = [encode_example(tokenizer, e, CONFIG.max_length) for e in _examples()]
    lengths = [len(ids) for ids, _ in encoded]
    responses = [sum(label != -100 for label in labels[1:]) for _, labels in encoded]
    assert len(set(lengths)) >= 5 and responses[3] == 0 and all(r > 0 for i, r in enumerate(responses) if i != 3)
    assert math.ceil(len(encoded) / CONFIG.batch_size) == 4  # 4 batches, 2 shards (the last one short)


@pytest.mark.parametrize("adam_aware", [False, True])
def test_fast_features_equal_the_reference_features(tiny_lora, tmp_path, adam_aware):
    model, tokenizer = tiny_lora
    examples = _examples()
    adam = _adam(model) if adam_aware else None
    fast = compute_features(model, tokenizer, examples, CONFIG, tmp_path / "fast", adam=adam)
    reference = compute_features(model, tokenizer, examples, replace(CONFIG, method="loop"), tmp_path / "loop", adam=adam)
    assert fast["shards"] == reference["shards"] == 2
    f, fl, fi = load_features(tmp_path / "fast", expected=len(examples))
    r, rl, ri = load_features(tmp_path / "loop", expected=len(examples))
    assert fi == ri == [e["id"] for e in examples]
    assert f.shape == r.shape == (len(examples), CONFIG.proj_dim)
    assert relative_difference(f, r) < TOLERANCE
    assert np.isnan(fl[3]) and np.isnan(rl[3])  # no response token: NaN loss in both
    assert np.allclose(fl[~np.isnan(fl)], rl[~np.isnan(rl)], rtol=1e-6)
    if adam_aware:  # the Adam transform of a zero gradient is b1 m / (sqrt(b2 v) + eps), not zero
        assert np.abs(r[3]).max() > 0 and relative_difference(f[3], r[3]) < TOLERANCE
    else:
        assert not f[3].any() and not r[3].any()
    # the comparison can fail: another projection seed gives other features
    other = compute_features(model, tokenizer, examples, replace(CONFIG, seed=6), tmp_path / "other", adam=adam)
    assert other["computed_shards"] == 2
    assert relative_difference(load_features(tmp_path / "other")[0], r) > 0.1


def test_fast_shards_union_equals_one_run_and_resume(tiny_lora, tmp_path):
    model, tokenizer = tiny_lora
    examples = _examples()
    adam = _adam(model, seed=1)
    config = replace(CONFIG, shard_batches=1)  # 4 shards
    whole = compute_features(model, tokenizer, examples, config, tmp_path / "whole", adam=adam)
    assert whole["shards"] == whole["computed_shards"] == 4
    for i in range(3):
        compute_features(model, tokenizer, examples, config, tmp_path / "split", adam=adam, shard=(i, 3))
    a, la, ia = load_features(tmp_path / "whole", expected=len(examples))
    b, lb, ib = load_features(tmp_path / "split", expected=len(examples))
    assert np.array_equal(a, b) and np.array_equal(la, lb, equal_nan=True) and ia == ib
    # a fresh process (no matrix kept from the runs before) computes the same shards
    PackedRademacherProjection._shared.clear()
    (tmp_path / "split" / "features-00002.npz").unlink()
    with pytest.raises(FileNotFoundError, match="features-00002"):
        load_features(tmp_path / "split")
    again = compute_features(model, tokenizer, examples, config, tmp_path / "split", adam=adam)
    assert again["computed_shards"] == 1
    assert np.array_equal(load_features(tmp_path / "split", expected=len(examples))[0], a)
    # the fast shards are not the reference's: switching the method recomputes them
    moved = compute_features(model, tokenizer, examples, replace(config, method="loop"), tmp_path / "split", adam=adam)
    assert moved["computed_shards"] == 4
    assert relative_difference(load_features(tmp_path / "split")[0], a) < TOLERANCE


def test_length_sorted_batches_give_the_loop_gradients(tiny_lora):
    """The accelerator path (batches of the shard's samples sorted by length, hooked
    per-sample gradients) on the CPU: the reference's gradients and losses, in shard order."""
    model, tokenizer = tiny_lora
    encoded = [encode_example(tokenizer, e, CONFIG.max_length) for e in _examples()]
    pad = tokenizer.pad_token_id
    expected, expected_losses = loop_gradients(model, _collate(encoded, pad))
    for batch_size in (1, 2, 3, 7):
        grads, losses = shard_gradients(model, encoded, pad, batch_size)
        assert grads.shape == expected.shape
        assert relative_difference(grads, expected) < TOLERANCE, batch_size
        assert not grads[3].any() and torch.isnan(losses[3])
        usable = ~torch.isnan(expected_losses)
        assert torch.allclose(losses[usable], expected_losses[usable], rtol=1e-5)
    one, _ = shard_gradients(model, encoded, pad, 1)
    assert torch.equal(one[usable], expected[usable])  # batch 1 is the reference's arithmetic, bit for bit


def test_unknown_method_is_refused_with_the_config():
    with pytest.raises(ValueError, match="unknown influence.method 'fastest'"):
        replace(CONFIG, method="fastest")
    assert FeatureConfig().method == "fast"


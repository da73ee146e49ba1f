"""Influence estimation: Adam transform, projection, batched vs loop gradients, shards, and
the influence ordering on a real model."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from scoder.bootstrap.influence import (
    FeatureConfig,
    RademacherProjection,
    adam_transform,
    batched_gradients,
    compute_features,
    encode_example,
    influence_scores,
    load_features,
    loop_gradients,
    target_direction,
    _collate,
)


def test_adam_transform_matches_a_hand_computation():
    g = torch.tensor([0.5, -2.0, 0.0])
    m = torch.tensor([0.1, 0.2, -0.3])
    v = torch.tensor([0.01, 0.04, 0.09])
    out = adam_transform(g, m, v, (0.9, 0.999), 1e-8)
    # m' = 0.9 m + 0.1 g ; v' = 0.999 v + 0.001 g^2 ; m' / (sqrt(v') + eps)
    expected = []
    for gi, mi, vi in ((0.5, 0.1, 0.01), (-2.0, 0.2, 0.04), (0.0, -0.3, 0.09)):
        m2 = 0.9 * mi + 0.1 * gi
        v2 = 0.999 * vi + 0.001 * gi * gi
        expected.append(m2 / (math.sqrt(v2) + 1e-8))
    assert torch.allclose(out, torch.tensor(expected), rtol=1e-6)


def test_projection_is_seeded_blockwise_and_never_whole():
    x = torch.randn(3, 1000, generator=torch.Generator().manual_seed(0))
    small_blocks = RademacherProjection(1000, 64, seed=7, block_rows=128, cache_mb=0)
    one_block = RademacherProjection(1000, 64, seed=7, block_rows=128, cache_mb=1024)
    assert torch.equal(small_blocks(x), one_block(x))  # same blocks, cached or regenerated
    assert not small_blocks._blocks and len(one_block._blocks) == 8
    assert not torch.equal(small_blocks(x), RademacherProjection(1000, 64, seed=8, block_rows=128)(x))
    signs = small_blocks.block(0)
    assert signs.dtype == torch.int8 and set(signs.unique().tolist()) == {-1, 1}
    with pytest.raises(ValueError, match="dimension 1000"):
        small_blocks(torch.zeros(1, 999))


def test_influence_is_the_cosine_with_the_mean_normalized_target():
    dp = np.array([[10.0, 0.0], [0.0, 1.0]])  # normalized first: the long vector does not dominate
    target = target_direction(dp)
    assert np.allclose(target, [0.5, 0.5])
    scores = influence_scores(np.array([[1.0, 1.0], [1.0, -1.0], [0.0, 0.0]]), target)
    assert np.allclose(scores, [1.0, 0.0, 0.0])


# --- with the shipped SmolLM2 and a LoRA adapter ------------------------------------------

def _examples(texts):
    return [{"id": f"e{i}", "prompt": [{"role": "user", "content": q}], "completion": [{"role": "assistant", "content": a}]}
            for i, (q, a) in enumerate(texts)]


CODE = [(f"Write a function that returns the {w} of a list.", f"def list_{w}(xs):\n    return {f}(xs)\n")
        for w, f in (("sum", "sum"), ("maximum", "max"), ("minimum", "min"), ("length", "len"), ("sorted copy", "sorted"))]


@pytest.fixture(scope="module")
def lora_model():
    from peft import LoraConfig, get_peft_model

    from scoder.training.sft import load_trainable_model

    torch.manual_seed(0)
    base, tokenizer = load_trainable_model("smollm2")
    # random A and B (init_lora_weights=False), so every LoRA matrix has a gradient
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    return get_peft_model(base, config).eval(), tokenizer


@pytest.mark.slow
def test_batched_gradients_equal_the_batch_one_loop(lora_model):
    model, tokenizer = lora_model
    encoded = [encode_example(tokenizer, e, 256) for e in _examples(CODE[:3])]
    batch = _collate(encoded, tokenizer.pad_token_id)
    fast, fast_losses = batched_gradients(model, batch)
    slow, slow_losses = loop_gradients(model, batch)
    assert fast.shape == slow.shape and fast.shape[1] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert torch.allclose(fast_losses, slow_losses, atol=1e-4)
    assert torch.allclose(fast, slow, atol=1e-5 * float(slow.abs().max()))


@pytest.mark.slow
def test_projection_preserves_inner_products_of_real_gradients(lora_model):
    """Johnson-Lindenstrauss: for unit vectors and k = 2048, each projected cosine is within
    eps = 4 * sqrt(2 / k) = 0.125 of the true one (the error's standard deviation is about
    sqrt(2 / k)), and squared norms within the same relative tolerance."""
    model, tokenizer = lora_model
    texts = CODE + [("Describe a sunset.", "The sky turned orange and then purple over the hills."),
                    ("Name three fruits.", "Apple, banana and cherry.")]
    batch = _collate([encode_example(tokenizer, e, 256) for e in _examples(texts)], tokenizer.pad_token_id)
    grads, _ = batched_gradients(model, batch)
    unit = grads / grads.norm(dim=1, keepdim=True)
    k = 2048
    projected = RademacherProjection(unit.shape[1], k, seed=3)(unit)
    eps = 4 * math.sqrt(2 / k)
    true_cos = (unit @ unit.T).numpy()
    proj_inner = (projected @ projected.T).numpy()
    assert np.abs(proj_inner - true_cos).max() <= eps
    assert np.abs(np.diag(proj_inner) - 1).max() <= eps
    assert np.abs(true_cos[np.triu_indices(len(texts), 1)]).max() < 0.999  # the gradients are not all parallel


@pytest.mark.slow
def test_sharded_features_equal_one_run_bit_for_bit_and_resume(lora_model, tmp_path):
    model, tokenizer = lora_model
    examples = _examples(CODE * 2)  # 10 samples, batches of 2, shards of 2 batches: 3 shards
    config = FeatureConfig(proj_dim=32, batch_size=2, shard_batches=2, max_length=128, block_rows=50_000)
    whole = compute_features(model, tokenizer, examples, config, tmp_path / "whole")
    assert whole["shards"] == 3 and whole["computed_shards"] == 3
    for i in range(2):
        compute_features(model, tokenizer, examples, config, tmp_path / "split", shard=(i, 2))
    a, la, ia = load_features(tmp_path / "whole", expected=10)
    b, lb, ib = load_features(tmp_path / "split", expected=10)
    assert np.array_equal(a, b) and np.array_equal(la, lb) and ia == ib == [e["id"] for e in examples]
    # resume: a lost shard is recomputed alone, identically
    (tmp_path / "split" / "features-00001.npz").unlink()
    with pytest.raises(FileNotFoundError, match="features-00001"):
        load_features(tmp_path / "split")
    again = compute_features(model, tokenizer, examples, config, tmp_path / "split")
    assert again["computed_shards"] == 1
    assert np.array_equal(load_features(tmp_path / "split")[0], a)
    # shards persist between runs, but never across other settings, examples or weights
    other = compute_features(model, tokenizer, examples, replace(config, proj_dim=16), tmp_path / "split")
    assert other["computed_shards"] == 3 and load_features(tmp_path / "split")[0].shape == (10, 16)
    fewer = compute_features(model, tokenizer, examples[:4], replace(config, proj_dim=16), tmp_path / "split")
    assert fewer["shards"] == fewer["computed_shards"] == 1 and len(load_features(tmp_path / "split", expected=4)[2]) == 4
    with torch.no_grad():
        next(p for p in model.parameters() if p.requires_grad).add_(0.01)
    try:
        moved = compute_features(model, tokenizer, examples[:4], replace(config, proj_dim=16), tmp_path / "split")
    finally:
        with torch.no_grad():
            next(p for p in model.parameters() if p.requires_grad).sub_(0.01)
    assert moved["computed_shards"] == 1


@pytest.mark.slow
def test_candidates_repeating_dp_content_get_higher_influence(tmp_path):
    """A real reference model trained on D_p (with its Adam state): candidates that repeat
    D_p's content score higher than unrelated text."""
    from scoder.bootstrap.influence import load_reference
    from scoder.training.sft import TrainConfig, train_sft

    dp = _examples(CODE)
    train_sft(dp, TrainConfig(batch_size=5, epochs=4, num_checkpoints=1, max_length=128, learning_rate=1e-3), tmp_path / "reference")
    model, tokenizer, adam = load_reference(tmp_path / "reference" / "checkpoint-0", "smollm2")
    assert adam is not None
    config = FeatureConfig(proj_dim=512, batch_size=4, max_length=128)
    compute_features(model, tokenizer, dp, config, tmp_path / "dp")
    target = target_direction(load_features(tmp_path / "dp")[0])
    candidates = _examples([CODE[0], CODE[3],
                            ("Describe your favourite holiday.", "We walked along the beach and ate ice cream every day."),
                            ("Write a haiku about rain.", "Soft rain on the roof / the garden drinks slowly / puddles hold the sky")])
    compute_features(model, tokenizer, candidates, config, tmp_path / "candidates", adam=adam)
    scores = influence_scores(load_features(tmp_path / "candidates")[0], target)
    assert min(scores[:2]) > max(scores[2:]), scores

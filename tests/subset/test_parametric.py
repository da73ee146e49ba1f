import math

import numpy as np
import pytest
import torch

from scoder.subset.baselines import ifd_scores, select_by_score, select_kcenter, select_random
from scoder.subset.parametric import (
    ParametricConfig, nearest_unique, optimize_prototypes, parametric_loss, select_parametric, topk_blockwise,
)
from scoder.subset.quality import coverage, diversity


def gaussian_mixture(n=3000, d=64, centers=50, seed=0, noise=0.8):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centers, d))
    weights = rng.dirichlet(np.ones(centers))  # uneven cluster sizes
    labels = rng.choice(centers, size=n, p=weights)
    x = means[labels] + noise * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_loss_matches_hand_computation():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    theta = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    tau = 0.5
    matching = -(1.0 + 1.0 + 1.0) / 3 / tau  # every feature's best prototype has cosine 1
    repulsion = (
        math.log(math.exp(0.6 / tau) + math.exp(0.0 / tau))
        + math.log(math.exp(0.6 / tau) + math.exp(0.8 / tau))
        + math.log(math.exp(0.0 / tau) + math.exp(0.8 / tau))
    ) / 3
    assert float(parametric_loss(f, theta, tau, 1.0)) == pytest.approx(matching + repulsion, abs=1e-6)
    assert float(parametric_loss(f, theta, tau, 0.0)) == pytest.approx(matching, abs=1e-6)


def test_batched_similarity_equals_unbatched():
    f = torch.from_numpy(gaussian_mixture(1000, 16))
    protos = f[:37]
    full_v, full_i = (f @ protos.T).topk(5, dim=1)
    v, i = topk_blockwise(f, protos, 5, batch_size=64)
    assert torch.equal(i, full_i) and torch.allclose(v, full_v)


def test_exact_gradient_equals_autograd():
    f = torch.from_numpy(gaussian_mixture(400, 8))
    config = ParametricConfig(loss="paper", iterations=1, lr=1e-2, refresh_every=1, neighbors=0, seed=3)
    theta, _ = optimize_prototypes(f, 20, config)
    # the same single Adam step with autograd on the plain loss
    start = f[torch.randperm(400, generator=torch.Generator().manual_seed(3))[:20]].clone().requires_grad_(True)
    opt = torch.optim.Adam([start], lr=1e-2)
    parametric_loss(f, start, config.tau, config.reg_lambda).backward()
    opt.step()
    with torch.no_grad():
        expected = start / start.norm(dim=1, keepdim=True)
    assert torch.allclose(theta, expected, atol=1e-5)


def test_paper_loss_through_the_normalisation_equals_autograd():
    f = torch.from_numpy(gaussian_mixture(400, 8))
    config = ParametricConfig(loss="paper", renormalize=False, iterations=5, lr=1e-2, refresh_every=1, seed=3)
    theta, _ = optimize_prototypes(f, 20, config)
    start = f[torch.randperm(400, generator=torch.Generator().manual_seed(3))[:20]].clone().requires_grad_(True)
    opt = torch.optim.Adam([start], lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        parametric_loss(f, start / start.norm(dim=1, keepdim=True), config.tau, config.reg_lambda).backward()
        opt.step()
    with torch.no_grad():
        expected = start / start.norm(dim=1, keepdim=True)
    assert torch.allclose(theta, expected, atol=1e-5)


@pytest.mark.parametrize("loss", ["activeft", "paper"])
def test_no_sample_selected_twice_and_deterministic(loss):
    f = gaussian_mixture()
    config = ParametricConfig(loss=loss, iterations=60, seed=7)
    first = select_parametric(f, 300, config)
    again = select_parametric(f, 300, config)
    assert len(set(first.tolist())) == 300
    assert np.array_equal(first, again)
    assert not np.array_equal(first, select_parametric(f, 300, ParametricConfig(loss=loss, iterations=60, seed=8)))


def test_nearest_unique_falls_back_when_neighbours_are_taken():
    f = torch.from_numpy(gaussian_mixture(200, 8))
    protos = f[[0] * 30]  # thirty identical prototypes compete for the same samples
    chosen = nearest_unique(f, protos, batch_size=50, k=4)
    assert len(set(chosen.tolist())) == 30


def test_parametric_covers_better_than_random_and_kcenter():
    # overlapping clusters, as sentence embeddings are; on tight, well separated clusters
    # random sampling is already near-optimal and the comparison says little
    f = gaussian_mixture()
    m = 300
    ours = coverage(f, select_parametric(f, m, ParametricConfig(seed=0)))
    rand = coverage(f, select_random(len(f), m, 0))
    kc = coverage(f, select_kcenter(f, m, 0))
    assert ours > rand and ours > kc


def test_kcenter_is_seeded_and_spreads_out():
    f = gaussian_mixture(800, 16)
    a, b = select_kcenter(f, 50, 1), select_kcenter(f, 50, 1)
    assert np.array_equal(a, b) and len(set(a.tolist())) == 50
    assert diversity(f, a) < diversity(f, select_random(len(f), 50, 1))  # lower mean cosine


def test_quality_metrics_by_hand():
    f = np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    assert coverage(f, np.array([0])) == pytest.approx((1 + 0 + 0.6) / 3)
    assert diversity(f, np.array([0, 1, 2])) == pytest.approx((0 + 0.6 + 0.8) / 3)


def test_score_selection_and_ifd():
    scores = np.array([3.0, np.nan, 1.0, 2.0, 1.0])
    assert select_by_score(scores, 2, highest=False).tolist() == [2, 4]
    assert select_by_score(scores, 2, highest=True).tolist() == [0, 3]
    assert ifd_scores(np.array([1.0]), np.array([2.0]))[0] == pytest.approx(math.exp(-1))


@pytest.mark.parametrize("loss", ["activeft", "paper"])
def test_refresh_and_neighbour_approximations_stay_close_to_exact(loss):
    f = gaussian_mixture(2000)
    exact = coverage(f, select_parametric(f, 200, ParametricConfig(loss=loss, refresh_every=1, seed=2)))
    lazy = coverage(f, select_parametric(f, 200, ParametricConfig(loss=loss, refresh_every=10, seed=2)))
    far_field = "hold" if loss == "activeft" else "drop"  # the paper form has no held far field
    sparse = coverage(f, select_parametric(f, 200, ParametricConfig(loss=loss, refresh_every=10, neighbors=32, far_field=far_field, seed=2)))
    assert abs(lazy - exact) < 0.005 and abs(sparse - exact) < 0.005


def test_size_larger_than_the_dataset_keeps_everything(tmp_path):
    from scoder.subset.selection import SelectConfig, select_records

    records = [{"instruction": f"write function number {i}"} for i in range(5)]
    selected, metrics = select_records(records, SelectConfig(size=16, method="random", feature_cache=str(tmp_path)))
    assert len(selected) == 5 and metrics["requested"] == 16
    with pytest.raises(ValueError, match="holds no records"):
        select_records([], SelectConfig(size=3, feature_cache=str(tmp_path)))

"""The "activeft" loss (the authors' published selector) against plain autograd transcriptions."""

import numpy as np
import pytest
import torch

from scoder.subset.parametric import (
    ParametricConfig, activeft_loss, activeft_repulsion, activeft_value_and_grad, combine_far_field,
    nearest_unique, neighbours_and_far_field, optimize_prototypes, select_parametric,
)


def unit_features(n=300, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(6, d))
    x = centers[rng.integers(0, 6, size=n)] + 0.7 * rng.normal(size=(n, d))
    return torch.from_numpy((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32))


def their_loss(features, centroids, temperature, balance):
    """SampleModel.get_loss of Kyle-Lyu/efficode-finetune data_selection/ours/select.py, one slice."""
    centroids = torch.nn.functional.normalize(centroids, dim=1)
    prod_exp = torch.exp(features @ centroids.T / temperature)
    prod_exp_pos, pos_k = torch.max(prod_exp, dim=1)
    cent_prob_exp_sum = torch.sum(torch.exp(centroids.detach() @ centroids.T / temperature), dim=0)
    J = torch.log(prod_exp_pos) - torch.log(prod_exp_pos + cent_prob_exp_sum[pos_k] * balance)
    return -torch.mean(J)


def their_optimize(features, init, iterations, lr, temperature, balance, hold=None):
    """Their optimize_dist (Adam on the unnormalised centroids, autograd); with `hold` the
    assignment is recomputed only every `hold` iterations (the refresh_every trick)."""
    centroids = torch.nn.Parameter(features[init].clone())
    optimizer = torch.optim.Adam([centroids], lr=lr)
    assigned = None
    for i in range(iterations):
        if hold is None:
            loss = their_loss(features, centroids, temperature, balance)
        else:
            if i % hold == 0:
                with torch.no_grad():
                    assigned = (features @ torch.nn.functional.normalize(centroids, dim=1).T).argmax(dim=1)
            loss = activeft_loss(features, centroids, temperature, balance, assigned=assigned)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return torch.nn.functional.normalize(centroids.detach(), dim=1)


def test_activeft_loss_equals_their_transcription():
    f = unit_features()
    theta = f[:12].clone() * 1.7 + 0.01  # unnormalised on purpose
    for balance in (1.0, 0.3):
        assert float(activeft_loss(f, theta, 0.07, balance)) == pytest.approx(float(their_loss(f, theta, 0.07, balance)), rel=1e-5)


def test_hand_gradient_equals_autograd_of_the_loss():
    f = unit_features(200, 8, seed=1)
    theta = (f[:15] + 0.05 * torch.randn(15, 8, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    c = (theta / theta.norm(dim=1, keepdim=True)).detach()
    assigned = (f @ c.T).argmax(dim=1)
    for self_term in (True, False):
        config = ParametricConfig(tau=0.1, reg_lambda=0.5, self_term=self_term, batch_size=37)
        theta.grad = None
        expected = activeft_loss(f, theta, config.tau, config.reg_lambda, assigned=assigned, self_term=self_term)
        expected.backward()
        value, grad_c = activeft_value_and_grad(f, c, assigned, config)
        norm = theta.detach().norm(dim=1, keepdim=True)
        grad_theta = (grad_c - c * (c * grad_c).sum(dim=1, keepdim=True)) / norm
        assert value == pytest.approx(float(expected.detach()), rel=1e-5)
        assert torch.allclose(grad_theta, theta.grad, atol=1e-5)


def test_refresh_every_1_equals_their_algorithm():
    f = unit_features()
    m = 20
    init = torch.randperm(len(f), generator=torch.Generator().manual_seed(5))[:m]
    config = ParametricConfig(loss="activeft", iterations=40, lr=1e-2, refresh_every=1, neighbors=0, seed=5, batch_size=64)
    ours, _ = optimize_prototypes(f, m, config)
    theirs = their_optimize(f, init, 40, 1e-2, config.tau, config.reg_lambda)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert np.array_equal(nearest_unique(f, ours, 64), nearest_unique(f, theirs, 64))
    assert np.array_equal(select_parametric(f.numpy(), m, config), nearest_unique(f, theirs, 64))


def test_held_assignments_equal_autograd_with_the_same_hold():
    f = unit_features(seed=2)
    m = 16
    init = torch.randperm(len(f), generator=torch.Generator().manual_seed(1))[:m]
    config = ParametricConfig(loss="activeft", iterations=30, lr=1e-2, refresh_every=7, candidates=0, seed=1, batch_size=50)
    ours, _ = optimize_prototypes(f, m, config)
    theirs = their_optimize(f, init, 30, 1e-2, config.tau, config.reg_lambda, hold=7)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_explicit_init_and_block_size_do_not_change_the_result():
    f = unit_features(seed=3)
    init = np.arange(0, 200, 10)
    a = select_parametric(f.numpy(), 20, ParametricConfig(iterations=25, batch_size=8192), init=init)
    b = select_parametric(f.numpy(), 20, ParametricConfig(iterations=25, batch_size=7, seed=99), init=init)
    assert np.array_equal(a, b)


def test_neighbour_repulsion_over_everyone_equals_dense():
    c = unit_features(30, 8, seed=4)
    order = torch.argsort(c @ c.T, dim=1, descending=True)  # each row starts with itself
    assert torch.equal(order[:, 0], torch.arange(30))
    for self_term, nb in ((True, order), (False, order[:, 1:])):
        dense = activeft_repulsion(c, 0.07, 11, self_term)
        sparse = activeft_repulsion(c, 0.07, 11, self_term, nb)
        assert torch.allclose(dense[0], sparse[0], atol=1e-5) and torch.allclose(dense[1], sparse[1], atol=1e-5)


@pytest.mark.parametrize("self_term", [True, False])
def test_near_plus_far_field_is_the_whole_repulsion(self_term):
    c = unit_features(40, 8, seed=6)
    dense = activeft_repulsion(c, 0.07, 13, self_term)
    nb, far = neighbours_and_far_field(c, 5, 0.07, 13, self_term)
    assert torch.equal(nb[:, 0], torch.arange(40))  # itself first
    near = activeft_repulsion(c, 0.07, 13, self_term, nb if self_term else nb[:, 1:])
    log_r, weighted = combine_far_field(*near, far)
    assert torch.allclose(log_r, dense[0], atol=1e-5) and torch.allclose(weighted, dense[1], atol=1e-5)
    # every other prototype a neighbour: the far field is empty and changes nothing
    nb, (log_far, far_weighted) = neighbours_and_far_field(c, 39, 0.07, 13, self_term)
    assert torch.isinf(log_far).all() and torch.equal(far_weighted, torch.zeros_like(c))


@pytest.mark.parametrize("self_term", [True, False])
def test_held_far_field_refreshed_every_step_is_exact(self_term):
    """far_field: hold computes the far part exactly at every refresh: refreshed every step it
    is the dense algorithm; held for 10 steps it stays far closer to it than dropping the far part."""
    f = unit_features(400, 12, seed=8)
    exact = ParametricConfig(iterations=30, lr=1e-2, refresh_every=1, neighbors=0, seed=2, batch_size=64, self_term=self_term)
    dense, _ = optimize_prototypes(f, 40, exact)
    held, _ = optimize_prototypes(f, 40, ParametricConfig(**{**exact.__dict__, "neighbors": 6, "far_field": "hold"}))
    assert torch.allclose(dense, held, atol=1e-5)
    dropped, _ = optimize_prototypes(f, 40, ParametricConfig(**{**exact.__dict__, "neighbors": 6, "far_field": "drop"}))
    assert (dense - dropped).abs().max() > 1e-3  # the test can tell the two apart


def test_far_field_settings_are_checked():
    with pytest.raises(ValueError, match="unknown parametric far_field"):
        ParametricConfig(far_field="nope")
    # the paper form has no held far field: it runs the exact repulsion instead
    f = unit_features(50)
    exact = ParametricConfig(loss="paper", iterations=5, neighbors=0)
    held = ParametricConfig(loss="paper", iterations=5, neighbors=3, far_field="hold")
    assert torch.equal(optimize_prototypes(f, 10, exact)[0], optimize_prototypes(f, 10, held)[0])


def test_unknown_loss_and_bad_init_are_refused():
    f = unit_features(50)
    with pytest.raises(ValueError, match="unknown parametric loss"):
        optimize_prototypes(f, 5, ParametricConfig(loss="nope"))
    with pytest.raises(ValueError, match="init must hold"):
        optimize_prototypes(f, 5, ParametricConfig(), init=np.arange(4))


@pytest.mark.parametrize("loss", ["activeft", "paper"])
def test_candidate_reassignment_over_every_prototype_is_exact(loss):
    """candidates: m re-evaluates every prototype each step: the exact algorithm (refresh 1);
    a few candidates stay close to it, holding the assignment (candidates 0) less so."""
    f = unit_features(400, 12, seed=9)
    exact = ParametricConfig(loss=loss, iterations=30, lr=1e-2, refresh_every=1, neighbors=0, seed=4, batch_size=64)
    dense, _ = optimize_prototypes(f, 30, exact)
    everyone, _ = optimize_prototypes(f, 30, ParametricConfig(**{**exact.__dict__, "refresh_every": 10, "candidates": 30}))
    assert torch.allclose(dense, everyone, atol=1e-5)
    held, _ = optimize_prototypes(f, 30, ParametricConfig(**{**exact.__dict__, "refresh_every": 10, "candidates": 0}))
    few, _ = optimize_prototypes(f, 30, ParametricConfig(**{**exact.__dict__, "refresh_every": 10, "candidates": 4}))
    assert (dense - few).abs().max() <= (dense - held).abs().max()
    assert (dense - held).abs().max() > 1e-4  # holding does change the path: the test can tell

"""Distribution-consistent, diversity-aware selection with a parametric model (seed 003).

m prototypes theta (unit vectors, initialised from random samples) minimise Algorithm 1's
loss (eq. 7 with the means of Algorithm 1, line 8):

    L = -(1/n) sum_i max_j f_i.theta_j / tau  +  lambda (1/m) sum_j log sum_{k!=j} exp(theta_j.theta_k / tau)

with Adam (lr 1e-3, 300 iterations, tau 0.07, lambda 1), renormalising theta after every
step; then each prototype is mapped to its nearest not-yet-selected sample (eq. 8, no
duplicates).

Both gradients are written out instead of built by autograd, so no n x m or m x m graph is
kept and every similarity is computed in row blocks of `batch_size` (the memory budget):
- distribution term: dL/dtheta_j = -(1/(n tau)) sum_{i: c_i = j} f_i, a scatter-add over each
  feature's top-1 prototype c_i;
- repulsion term: with P the row-softmax of theta theta^T / tau (diagonal excluded),
  dL/dtheta = lambda (P + P^T) theta / (m tau).
Speed: the n x m x d assignment is the expensive part. It is recomputed every
`refresh_every` iterations and held fixed in between (prototypes move by about lr per
coordinate per step, so assignments change slowly); with `neighbors` > 0 the repulsion uses
each prototype's nearest prototypes found at the last refresh (at tau = 0.07, exp(s / tau)
of distant prototypes is negligible). `refresh_every: 1, neighbors: 0` is the exact
algorithm, checked against autograd in the tests.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

log = logging.getLogger(__name__)


@dataclass
class ParametricConfig:
    iterations: int = 300
    lr: float = 1e-3
    tau: float = 0.07
    reg_lambda: float = 1.0
    batch_size: int = 8192  # feature rows per similarity block: the memory budget
    refresh_every: int = 10  # recompute assignments every k iterations; 1 = exact
    neighbors: int = 0  # repulsion over each prototype's k nearest prototypes; 0 = all (exact)
    seed: int = 0


def parametric_loss(features: torch.Tensor, prototypes: torch.Tensor, tau: float, reg_lambda: float) -> torch.Tensor:
    """The loss of Algorithm 1, computed plainly (used by tests and the reference)."""
    similarity = features @ prototypes.T / tau
    matching = -similarity.max(dim=1).values.mean()
    pair = prototypes @ prototypes.T / tau
    pair = pair.masked_fill(torch.eye(len(prototypes), dtype=torch.bool), float("-inf"))
    repulsion = torch.logsumexp(pair, dim=1).mean()
    return matching + reg_lambda * repulsion


def topk_blockwise(queries: torch.Tensor, keys: torch.Tensor, k: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, indices) of the k largest queries @ keys.T per query row, in row blocks."""
    k = min(k, keys.shape[0])
    values = torch.empty(queries.shape[0], k, dtype=queries.dtype)
    indices = torch.empty(queries.shape[0], k, dtype=torch.long)
    for start in range(0, queries.shape[0], batch_size):
        block = queries[start : start + batch_size] @ keys.T
        v, i = block.topk(k, dim=1)
        values[start : start + batch_size], indices[start : start + batch_size] = v, i
    return values, indices


def assign_blockwise(features: torch.Tensor, prototypes: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(index, cosine) of every feature's most similar prototype."""
    values, indices = topk_blockwise(features, prototypes, 1, batch_size)
    return indices[:, 0], values[:, 0]


def repulsion_and_grad(theta: torch.Tensor, tau: float, batch_size: int, neighbours: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
    """(1/m) sum_j log sum_{k != j} exp(theta_j . theta_k / tau) and its gradient, in row blocks;
    restricted to `neighbours[j]` when given."""
    m, d = theta.shape
    value = 0.0
    grad = torch.zeros_like(theta)
    for start in range(0, m, batch_size):
        rows = theta[start : start + batch_size]
        if neighbours is None:
            sims = rows @ theta.T / tau
            sims[torch.arange(len(rows)), torch.arange(start, start + len(rows))] = float("-inf")
            lse = torch.logsumexp(sims, dim=1)
            p = torch.exp(sims - lse[:, None])
            grad[start : start + len(rows)] += p @ theta
            grad += p.T @ rows
        else:
            idx = neighbours[start : start + batch_size]
            others = theta[idx]  # b x K x d
            sims = torch.einsum("bd,bkd->bk", rows, others) / tau
            lse = torch.logsumexp(sims, dim=1)
            p = torch.exp(sims - lse[:, None])
            grad[start : start + len(rows)] += torch.einsum("bk,bkd->bd", p, others)
            grad.index_add_(0, idx.reshape(-1), (p[:, :, None] * rows[:, None, :]).reshape(-1, d))
        value += float(lse.sum())
    return value / m, grad / (m * tau)


def optimize_prototypes(features: torch.Tensor, m: int, config: ParametricConfig) -> tuple[torch.Tensor, list[float]]:
    n = features.shape[0]
    if not 0 < m <= n:
        raise ValueError(f"cannot select {m} of {n} samples")
    generator = torch.Generator().manual_seed(config.seed)
    init = torch.randperm(n, generator=generator)[:m]
    theta = features[init].clone()
    theta.grad = torch.zeros_like(theta)
    optimizer = torch.optim.Adam([theta], lr=config.lr)
    refresh = max(1, config.refresh_every)
    use_neighbours = config.neighbors > 0 and m > config.neighbors + 1
    neighbours = None
    pull = matching = None
    history: list[float] = []
    with torch.no_grad():
        for step in tqdm(range(config.iterations), desc="parametric selection", unit="it", mininterval=5):
            if step % refresh == 0:
                assigned, best = assign_blockwise(features, theta, config.batch_size)
                pull = torch.zeros_like(theta).index_add_(0, assigned, features) / (n * config.tau)
                matching = -float(best.mean()) / config.tau
                if use_neighbours:
                    _, nb = topk_blockwise(theta, theta, config.neighbors + 1, config.batch_size)
                    neighbours = nb[:, 1:]  # the most similar is the prototype itself
            repulsion, repulsion_grad = repulsion_and_grad(theta, config.tau, config.batch_size, neighbours)
            theta.grad.copy_(config.reg_lambda * repulsion_grad - pull)
            optimizer.step()
            theta /= theta.norm(dim=1, keepdim=True)
            history.append(matching + config.reg_lambda * repulsion)
    return theta, history


def nearest_unique(features: torch.Tensor, prototypes: torch.Tensor, batch_size: int, k: int = 16) -> np.ndarray:
    """Map each prototype to its most similar sample not already taken (prototype order)."""
    _, top = topk_blockwise(prototypes, features, k, batch_size)
    taken: set[int] = set()
    chosen = []
    for j in range(prototypes.shape[0]):
        pick = next((int(i) for i in top[j] if int(i) not in taken), None)
        if pick is None:  # all k nearest already taken: search the whole column
            order = torch.argsort(features @ prototypes[j], descending=True)
            pick = next(int(i) for i in order if int(i) not in taken)
        taken.add(pick)
        chosen.append(pick)
    return np.array(chosen, dtype=np.int64)


def select_parametric(features: np.ndarray, m: int, config: ParametricConfig) -> np.ndarray:
    start = time.perf_counter()
    f = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    prototypes, history = optimize_prototypes(f, m, config)
    chosen = nearest_unique(f, prototypes, config.batch_size)
    log.info("parametric selection of %d / %d in %.1fs (loss %.4f -> %.4f)", m, len(f), time.perf_counter() - start, history[0], history[-1])
    return chosen

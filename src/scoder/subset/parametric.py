"""Distribution-consistent, diversity-aware selection with a parametric model (seed 003).

m prototypes theta (initialised from random samples) are optimised with Adam (lr 1e-3, 300
iterations, tau 0.07); then each prototype is mapped to its nearest not-yet-selected sample
(eq. 8, no duplicates). Two losses (`ParametricConfig.loss`):

- "activeft" (the default): the authors' published selector (Kyle-Lyu/efficode-finetune,
  data_selection/ours/select.py, which is ActiveFT's loss). With c = theta / |theta|,
  s_i = max_k f_i.c_k / tau at the assigned prototype k_i, and
  R_j = sum_l exp(c_j . sg(c_l) / tau) (the self term l = j included, the other side detached):

      J = -(1/n) sum_i log[ exp(s_i) / (exp(s_i) + lambda R_{k_i}) ]

  the gradient flows through the normalisation (theta itself is not renormalised).
- "paper": the paper's printed loss (eq. 7 with the means of Algorithm 1, line 8),

      L = -(1/n) sum_i max_j f_i.c_j / tau  +  lambda (1/m) sum_j log sum_{k!=j} exp(c_j.c_k / tau)

  with theta renormalised after every step.

On real instruction sets (benchmarks/select_quality.py) "activeft" picks the same subset as the
authors' code from the same initial indices and covers better than "paper" on every measure;
renormalising, or dropping the self term, costs activeft coverage; refresh_every 10 costs nothing.

`renormalize` overrides the form's own handling of the norm (None: as above). Both gradients
are written out instead of built by autograd, so no n x m or m x m graph is kept and every
similarity is computed in row blocks of `batch_size` (the memory budget); the tests check them
against autograd of the plain losses.

Speed: the n x m x d assignment k_i is the expensive part. It is computed in full every
`refresh_every` iterations; in between (prototypes move by about lr per coordinate per step, so
assignments change slowly) each feature's assignment is the best of its `candidates` most
similar prototypes at the last refresh, re-evaluated at the current prototypes every step
(n x candidates sparse products; `candidates: 0` holds the refresh's assignment), and the
similarity at the assignment, f_i.c_{k_i}, is recomputed every step (n x d). With `neighbors` > 0 the repulsion
uses each prototype's nearest prototypes found at the last refresh (at tau = 0.07,
exp(s / tau) of one distant prototype is small, but thousands of them are not). With
`far_field: hold` (the default) the other prototypes' part of the repulsion is computed
exactly at every refresh, in the same m x m pass that finds the neighbours, and held until the
next one, so the sum is exact at a refresh and only its far part lags in between; `far_field:
drop` leaves it out. The m x m work per step (4 s at m = 10,000 on 2 cores) then falls to m x k.
`refresh_every: 1, neighbors: 0` is the exact algorithm, and so are `refresh_every: 1` with
`far_field: hold` and `candidates: m` (tested). The held far field is built for activeft's one-sided repulsion;
with `loss: paper` and `far_field: hold` the repulsion runs over all prototypes (exact).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

log = logging.getLogger(__name__)


LOSSES = ("activeft", "paper")
FAR_FIELDS = ("hold", "drop")


@dataclass
class ParametricConfig:
    iterations: int = 300
    lr: float = 1e-3
    tau: float = 0.07
    reg_lambda: float = 1.0  # the repulsion weight lambda ("paper"), the balance ("activeft")
    loss: str = "activeft"  # activeft (the authors' published code) | paper (the printed eq. 7)
    self_term: bool = True  # activeft: R_j includes exp(c_j.c_j / tau), as the authors' code
    renormalize: bool | None = None  # None: paper renormalises theta, activeft differentiates through c = theta/|theta|
    batch_size: int = 8192  # feature rows per similarity block: the memory budget
    refresh_every: int = 30  # recompute assignments every k iterations; 1 = exact
    neighbors: int = 32  # repulsion over each prototype's k nearest prototypes every step; 0 = all (exact)
    # with neighbors > 0, the other prototypes' part of the repulsion: hold (computed exactly at
    # every refresh and held in between; activeft only) | drop (left out)
    far_field: str = "hold"
    # between refreshes, each feature's assignment is the best of its `candidates` most similar
    # prototypes at the last refresh, re-evaluated every step (n x candidates work); 0 = the
    # assignment is held as it was at the refresh
    candidates: int = 8
    seed: int = 0

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown parametric loss '{self.loss}' (expected one of {', '.join(LOSSES)})")
        if self.far_field not in FAR_FIELDS:
            raise ValueError(f"unknown parametric far_field '{self.far_field}' (expected one of {', '.join(FAR_FIELDS)})")


def parametric_loss(features: torch.Tensor, prototypes: torch.Tensor, tau: float, reg_lambda: float) -> torch.Tensor:
    """The loss of Algorithm 1, computed plainly (used by tests and the reference)."""
    similarity = features @ prototypes.T / tau
    matching = -similarity.max(dim=1).values.mean()
    pair = prototypes @ prototypes.T / tau
    pair = pair.masked_fill(torch.eye(len(prototypes), dtype=torch.bool), float("-inf"))
    repulsion = torch.logsumexp(pair, dim=1).mean()
    return matching + reg_lambda * repulsion


def activeft_loss(
    features: torch.Tensor, theta: torch.Tensor, tau: float, balance: float,
    assigned: torch.Tensor | None = None, self_term: bool = True,
) -> torch.Tensor:
    """The authors' loss (ActiveFT's), computed plainly: c = theta / |theta| inside the loss,
    the assignment k_i = argmax_k f_i.c_k unless `assigned` is given."""
    c = theta / theta.norm(dim=1, keepdim=True)
    similarity = features @ c.T / tau
    if assigned is None:
        s, assigned = similarity.max(dim=1)
    else:
        s = similarity.gather(1, assigned[:, None])[:, 0]
    pair = c.detach() @ c.T / tau  # pair[l, j] = sg(c_l).c_j: R_j sums over l, the gradient reaches c_j
    if not self_term:
        pair = pair.masked_fill(torch.eye(len(c), dtype=torch.bool), float("-inf"))
    log_r = math.log(balance) + torch.logsumexp(pair, dim=0)
    return -(s - torch.logaddexp(s, log_r[assigned])).mean()


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


def activeft_repulsion(c: torch.Tensor, tau: float, batch_size: int, self_term: bool, neighbours: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(log R_j, sum_l P_jl c_l) with R_j = sum_l exp(c_j.c_l / tau) and P_j. = R_j's softmax,
    in row blocks; over `neighbours[j]` (which hold j itself first when self_term) when given,
    as sparse products (no m x K x d gather)."""
    m = c.shape[0]
    log_r = torch.empty(m, dtype=c.dtype)
    weighted = torch.empty_like(c)
    for start in range(0, m, batch_size):
        rows = c[start : start + batch_size]
        if neighbours is None:
            sims = rows @ c.T / tau
            if not self_term:
                sims[torch.arange(len(rows)), torch.arange(start, start + len(rows))] = float("-inf")
            lse = torch.logsumexp(sims, dim=1)
            weighted[start : start + len(rows)] = torch.exp(sims - lse[:, None]) @ c
        else:
            rows_nb = neighbours[start : start + batch_size].sort(dim=1).values  # CSR rows are sorted
            sims = sampled_products(rows, c, rows_nb) / tau
            lse = torch.logsumexp(sims, dim=1)
            weighted[start : start + len(rows)] = sparse_rows(torch.exp(sims - lse[:, None]), rows_nb, m) @ c
        log_r[start : start + len(rows)] = lse
    return log_r, weighted


def sparse_rows(values: torch.Tensor, columns: torch.Tensor, width: int) -> torch.Tensor:
    """A b x width CSR matrix holding values[i, k] at column columns[i, k] (columns sorted per row)."""
    b, k = columns.shape
    with warnings.catch_warnings():  # CSR is "beta" in torch; sampled_addmm and mm on it are what is used
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.arange(0, b * k + 1, k), columns.reshape(-1), values.reshape(-1), size=(b, width))


def sampled_products(rows: torch.Tensor, keys: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """rows[i] . keys[columns[i, k]] as a b x k tensor, without gathering a b x k x d copy of keys
    (sampled dense-dense product on a CSR pattern; `columns` sorted per row)."""
    pattern = sparse_rows(torch.ones(columns.shape, dtype=rows.dtype), columns, keys.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse.sampled_addmm(pattern, rows, keys.T, beta=0.0).values().view(columns.shape)


def neighbours_and_far_field(c: torch.Tensor, k: int, tau: float, batch_size: int, self_term: bool) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Each prototype's k + 1 most similar prototypes (itself first: `topk_blockwise` order), and
    activeft_repulsion over all the *other* prototypes (nor j itself when self_term is off): (log
    of their part of R_j, their softmax-weighted mean of c_l; -inf and 0 for a row with none),
    from one m x m pass. Computed at a refresh and held until the next (`far_field: hold`);
    the near part is recomputed every step, and R_j = near + far."""
    m = c.shape[0]
    k = min(k + 1, m)
    nb = torch.empty(m, k, dtype=torch.long)
    log_far = torch.empty(m, dtype=c.dtype)
    weighted = torch.zeros_like(c)
    for start in range(0, m, batch_size):
        rows = c[start : start + batch_size]
        product = rows @ c.T
        nb[start : start + len(rows)] = product.topk(k, dim=1).indices
        sims = product.div_(tau)
        sims.scatter_(1, nb[start : start + len(rows)], float("-inf"))
        if not self_term:
            sims[torch.arange(len(rows)), torch.arange(start, start + len(rows))] = float("-inf")
        lse = torch.logsumexp(sims, dim=1)
        finite = torch.isfinite(lse)
        p = torch.exp(sims - torch.where(finite, lse, 0.0)[:, None])
        weighted[start : start + len(rows)] = torch.where(finite[:, None], p @ c, 0.0)
        log_far[start : start + len(rows)] = lse
    return nb, (log_far, weighted)


def combine_far_field(log_near: torch.Tensor, near: torch.Tensor, far: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(log R_j, sum_l P_jl c_l) of the whole sum from its near and (held) far parts."""
    log_far, far_weighted = far
    log_r = torch.logaddexp(log_near, log_far)
    weighted = torch.exp(log_near - log_r)[:, None] * near + torch.exp(log_far - log_r)[:, None] * far_weighted
    return log_r, weighted


def activeft_value_and_grad(
    features: torch.Tensor, c: torch.Tensor, assigned: torch.Tensor, config: ParametricConfig,
    neighbours: torch.Tensor | None = None, far: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[float, torch.Tensor]:
    """activeft_loss at the held assignment and its gradient with respect to c (unit rows).

    With a_i = f_i.c_{k_i} / tau, r_i = log(lambda R_{k_i}), l_i = softplus(r_i - a_i) and
    q_i = sigmoid(r_i - a_i): dJ/dc_j = (1/(n tau)) [ -sum_{i: k_i = j} q_i f_i + Q_j sum_l P_jl c_l ]
    with Q_j = sum_{i: k_i = j} q_i (R_j's other side is detached, so c_j gets no term from R_l)."""
    n = features.shape[0]
    log_r, weighted = activeft_repulsion(c, config.tau, config.batch_size, config.self_term, neighbours)
    if far is not None:  # the held part of the prototypes outside `neighbours`
        log_r, weighted = combine_far_field(log_r, weighted, far)
    log_r = log_r + math.log(config.reg_lambda)
    pull = torch.zeros_like(c)
    total_q = torch.zeros(c.shape[0], dtype=c.dtype)
    value = 0.0
    for start in range(0, n, config.batch_size):
        rows = features[start : start + config.batch_size]
        k = assigned[start : start + config.batch_size]
        margin = log_r[k] - (rows * c[k]).sum(dim=1) / config.tau
        value += float(torch.nn.functional.softplus(margin).sum())
        q = torch.sigmoid(margin)
        pull.index_add_(0, k, rows * q[:, None])
        total_q.index_add_(0, k, q)
    grad = (total_q[:, None] * weighted - pull) / (n * config.tau)
    return value / n, grad


def optimize_prototypes(
    features: torch.Tensor, m: int, config: ParametricConfig, init: torch.Tensor | np.ndarray | None = None,
) -> tuple[torch.Tensor, list[float]]:
    """The m optimised prototypes, unit rows, and the loss per iteration; `init` (m sample
    indices) replaces the seeded random initialisation."""
    n = features.shape[0]
    if not 0 < m <= n:
        raise ValueError(f"cannot select {m} of {n} samples")
    if config.loss not in LOSSES:
        raise ValueError(f"unknown parametric loss '{config.loss}' (expected one of {', '.join(LOSSES)})")
    if config.loss == "activeft" and config.reg_lambda <= 0:
        raise ValueError(f"the activeft loss needs reg_lambda (its balance) > 0, got {config.reg_lambda}")
    if init is None:
        init = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed))[:m]
    init = torch.as_tensor(np.asarray(init), dtype=torch.long)
    if init.shape != (m,):
        raise ValueError(f"init must hold {m} sample indices, got shape {tuple(init.shape)}")
    activeft = config.loss == "activeft"
    renormalize = (not activeft) if config.renormalize is None else config.renormalize
    theta = features[init].clone()
    theta.grad = torch.zeros_like(theta)
    optimizer = torch.optim.Adam([theta], lr=config.lr)
    refresh = max(1, config.refresh_every)
    use_neighbours = config.neighbors > 0 and m > config.neighbors + 1
    hold_far = use_neighbours and config.far_field == "hold"
    if hold_far and not activeft:
        # the held far field is built for activeft's one-sided repulsion: the paper form runs exact
        log.info("loss: paper has no held far field: its repulsion runs over all %d prototypes (far_field: drop "
                 "restricts it to the %d nearest)", m, config.neighbors)
        use_neighbours = hold_far = False
    use_candidates = config.candidates > 1 and refresh > 1
    neighbours = assigned = far = candidates = None
    pull = matching = None
    history: list[float] = []
    with torch.no_grad():
        for step in tqdm(range(config.iterations), desc="parametric selection", unit="it", mininterval=5):
            if renormalize:
                c, norm = theta, None
            else:
                norm = theta.norm(dim=1, keepdim=True)
                c = theta / norm
            if step % refresh == 0:
                if use_candidates:
                    best, candidates = topk_blockwise(features, c, config.candidates, config.batch_size)
                    assigned, best = candidates[:, 0], best[:, 0]
                    candidates = candidates.sort(dim=1).values  # CSR rows are sorted
                else:
                    assigned, best = assign_blockwise(features, c, config.batch_size)
                if use_neighbours:
                    if hold_far:
                        nb, far = neighbours_and_far_field(c, config.neighbors, config.tau, config.batch_size, config.self_term)
                    else:
                        _, nb = topk_blockwise(c, c, config.neighbors + 1, config.batch_size)
                    # the most similar is the prototype itself: kept as activeft's self term
                    neighbours = nb if activeft and config.self_term else nb[:, 1:]
            elif use_candidates:  # the best of each feature's candidates at the current prototypes
                best, position = sampled_products(features, c, candidates).max(dim=1)
                assigned = candidates.gather(1, position[:, None])[:, 0]
            if not activeft and (step % refresh == 0 or use_candidates):
                pull = torch.zeros_like(c).index_add_(0, assigned, features) / (n * config.tau)
                matching = -float(best.mean()) / config.tau
            if activeft:
                value, grad = activeft_value_and_grad(features, c, assigned, config, neighbours, far)
            else:
                repulsion, repulsion_grad = repulsion_and_grad(c, config.tau, config.batch_size, neighbours)
                value, grad = matching + config.reg_lambda * repulsion, config.reg_lambda * repulsion_grad - pull
            if not renormalize:  # through c = theta / |theta|: (I - c c^T) g / |theta|
                grad = (grad - c * (c * grad).sum(dim=1, keepdim=True)) / norm
            theta.grad.copy_(grad)
            optimizer.step()
            if renormalize:
                theta /= theta.norm(dim=1, keepdim=True)
            history.append(value)
    return theta / theta.norm(dim=1, keepdim=True), history


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


def select_parametric(features: np.ndarray, m: int, config: ParametricConfig, init: np.ndarray | None = None) -> np.ndarray:
    start = time.perf_counter()
    f = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    prototypes, history = optimize_prototypes(f, m, config, init)
    chosen = nearest_unique(f, prototypes, config.batch_size)
    log.info("parametric selection of %d / %d in %.1fs (loss %.4f -> %.4f)", m, len(f), time.perf_counter() - start, history[0], history[-1])
    return chosen

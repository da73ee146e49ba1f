"""Parametric selection (scoder) vs a plain reference implementation of Algorithm 1.

Selects m of n unit features (a seeded mixture of Gaussians; seed 003's setting is 10,000 of
92,000 768-dimensional features) with
- scoder's implementation (blockwise top-k refresh + scatter-add gradient, see
  scoder.subset.parametric) with `--loss` (activeft, the default, or paper), and
- the reference written plainly here for the same loss: every iteration the full n x m
  similarity, the loss (the authors' published ActiveFT form, or the printed Algorithm 1) and
  autograd through it;
then prints times, the ratio and both coverages, and K-Center's time and coverage.

    python benchmarks/select_speed.py [--n 92000] [--m 10000] [--dim 768] [--iterations 300] [--loss activeft]

The reference's cost per iteration is constant, so `--reference-iterations` (default: the
same as --iterations) can be lowered to time it on fewer iterations; its total is then
extrapolated linearly and its coverage is not reported (marked n/a).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from scoder.subset.baselines import select_kcenter, select_random
from scoder.subset.parametric import ParametricConfig, activeft_loss, nearest_unique, select_parametric
from scoder.subset.quality import coverage


def mixture(n: int, dim: int, centers: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centers, dim)).astype(np.float32)
    weights = rng.dirichlet(np.ones(centers))
    labels = rng.choice(centers, size=n, p=weights)
    x = means[labels] + 0.8 * rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def reference_algorithm_1(features: np.ndarray, m: int, iterations: int, seed: int, lr=1e-3, tau=0.07, lam=1.0):
    f = torch.from_numpy(features)
    n = f.shape[0]
    init = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:m]
    theta = f[init].clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    eye = torch.eye(m, dtype=torch.bool)
    for _ in range(iterations):
        sim = f @ theta.T / tau  # the full n x m similarity, every iteration
        max_sim = sim.max(dim=1).values
        reg = (theta @ theta.T / tau).masked_fill(eye, float("-inf"))
        loss = -max_sim.mean() + lam * torch.logsumexp(reg, dim=1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            theta /= theta.norm(dim=1, keepdim=True)
    return nearest_unique(f, theta.detach(), batch_size=8192)


def reference_activeft(features: np.ndarray, m: int, iterations: int, seed: int, lr=1e-3, tau=0.07, balance=1.0):
    """The authors' optimize_dist: Adam on unnormalised centroids, autograd through the loss."""
    f = torch.from_numpy(features)
    init = torch.randperm(f.shape[0], generator=torch.Generator().manual_seed(seed))[:m]
    theta = f[init].clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    for _ in range(iterations):
        loss = activeft_loss(f, theta, tau, balance)  # the full n x m similarity, every iteration
        opt.zero_grad()
        loss.backward()
        opt.step()
    return nearest_unique(f, torch.nn.functional.normalize(theta.detach(), dim=1), batch_size=8192)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=92000)
    parser.add_argument("--m", type=int, default=10000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--centers", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--reference-iterations", type=int, default=None)
    parser.add_argument("--skip-kcenter", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--refresh-every", type=int, default=30)
    parser.add_argument("--neighbors", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--loss", choices=["activeft", "paper"], default="activeft")
    args = parser.parse_args()
    ref_iters = args.reference_iterations or args.iterations

    features = mixture(args.n, args.dim, args.centers, args.seed)
    rows = []

    start = time.perf_counter()
    config = ParametricConfig(iterations=args.iterations, seed=args.seed, refresh_every=args.refresh_every,
                              neighbors=args.neighbors, batch_size=args.batch_size, loss=args.loss)
    ours = select_parametric(features, args.m, config)
    rows.append(("scoder parametric", time.perf_counter() - start, coverage(features, ours), args.iterations))

    start = time.perf_counter()
    reference = reference_activeft if args.loss == "activeft" else reference_algorithm_1
    ref = reference(features, args.m, ref_iters, args.seed)
    ref_seconds = time.perf_counter() - start
    if ref_iters == args.iterations:
        rows.append((f"reference ({args.loss})", ref_seconds, coverage(features, ref), ref_iters))
    else:
        rows.append((f"reference ({args.loss}, extrapolated)", ref_seconds * args.iterations / ref_iters, float("nan"), ref_iters))

    if not args.skip_kcenter:
        start = time.perf_counter()
        kc = select_kcenter(features, args.m, args.seed)
        rows.append(("k-center greedy", time.perf_counter() - start, coverage(features, kc), 0))
    rows.append(("random", 0.0, coverage(features, select_random(args.n, args.m, args.seed)), 0))

    print(f"n={args.n} m={args.m} dim={args.dim} iterations={args.iterations} threads={torch.get_num_threads()} "
          f"scoder: loss={args.loss} refresh_every={args.refresh_every} neighbors={args.neighbors} batch_size={args.batch_size}")
    print(f"{'method':<40} {'seconds':>10} {'coverage':>9} {'iters run':>9}")
    for name, seconds, cov, iters in rows:
        print(f"{name:<40} {seconds:>10.1f} {cov:>9.4f} {iters:>9}")
    print(f"reference / scoder time ratio: {rows[1][1] / rows[0][1]:.1f}x (target >= 10x at equal or better coverage)")


if __name__ == "__main__":
    main()

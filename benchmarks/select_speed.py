"""Parametric selection: scoder's default against the authors' published selector, same features.

Theirs is `data_selection/ours/select.py` of Kyle-Lyu/efficode-finetune (seed 003), read from
the bare mirror --their-repo and run as published with `.cuda()` made a no-op (see
select_quality.load_theirs: their defaults, 300 iterations, lr 1e-3, tau 0.07, balance 1,
random init). Ours is `scoder.subset.parametric` with the settings of params.yaml's
`subset.parametric` (ParametricConfig's defaults). Both get the same features and the same
torch thread count.

1. Real instruction sets (`../shared/data/instructions/`: code_alpaca_2k, about 2K records, and
   the three sets together, about 8.5K), MiniLM instruction embeddings, 10% selected: both run
   in full, --method-seeds seeds each, ours from the initial indices theirs drew for the seed
   (paired); time per run, and the quality measures of select_quality (coverage on the selection
   features, coverage on TF-IDF + LSA, MMD^2 x1e3 and cluster KL to the full set) with
   random's mean and sd over --random-seeds seeds.
2. A seeded 92,000 x 768 Gaussian mixture, 10,000 selected (seed 003's scale): ours in full;
   theirs is timed on --their-iterations iterations of their loop (constant cost per
   iteration) plus their init and final mapping (`max_iter=0`), and extrapolated to 300
   iterations. Their subset at 92K is therefore not computed and its quality not reported.

    python benchmarks/select_speed.py [--their-iterations 3] [--skip-real] [--skip-synthetic] [--json PATH] [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from select_quality import THEIR_ARGS, Measures, load_theirs, lsa_features, run_theirs  # noqa: E402

from scoder.models.features import encode_cached, instruction_text  # noqa: E402
from scoder.subset.baselines import select_random  # noqa: E402
from scoder.subset.parametric import ParametricConfig, select_parametric  # noqa: E402
from scoder.subset.quality import coverage  # noqa: E402

REAL_SETS = {
    "code_alpaca_2k": ["code_alpaca_2k"],
    "all three sets": ["code_alpaca_2k", "evol-codealpaca-2k-1", "new_codealpaca"],
}


def mixture(n: int, dim: int, centers: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centers, dim)).astype(np.float32)
    weights = rng.dirichlet(np.ones(centers))
    labels = rng.choice(centers, size=n, p=weights)
    x = means[labels] + 0.8 * rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def their_seconds_extrapolated(module, features: np.ndarray, m: int, iterations: int, seed: int, total: int = 300) -> dict:
    """Their per-iteration cost measured on `iterations` steps of their own loop, plus init and
    final mapping measured with max_iter=0; extrapolated to `total` iterations."""
    f = torch.nn.functional.normalize(torch.from_numpy(features), dim=1)
    random.seed(seed)
    _, fixed = timed(lambda: module.optimize_dist(f, m, SimpleNamespace(**THEIR_ARGS, max_iter=0)))
    random.seed(seed)
    model = module.SampleModel(f, m, THEIR_ARGS["temperature"], "random", "euclidean", THEIR_ARGS["balance"], THEIR_ARGS["slice"])
    optimizer = torch.optim.Adam(model.parameters(), lr=THEIR_ARGS["lr"])
    start = time.perf_counter()
    for _ in range(iterations):
        loss = model.get_loss()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    per_iteration = (time.perf_counter() - start) / iterations
    return {"init_and_mapping_s": fixed, "per_iteration_s": per_iteration, "iterations_timed": iterations,
            "seconds": fixed + total * per_iteration}


def fmt(mean, sd=None):
    return f"{mean:.4f}" + (f" ±{sd:.4f}" if sd is not None else "")


def real_sets(args, theirs, config: ParametricConfig) -> list[dict]:
    rows = []
    cache = Path(args.cache)
    for label, names in REAL_SETS.items():
        records = [r for name in names for r in json.loads((Path(args.data_dir) / f"{name}.json").read_text())]
        texts = [instruction_text(r, ["instruction"]) for r in records]
        features = encode_cached(texts, "minilm", cache / "features")
        n, m = len(texts), max(1, round(args.fraction * len(texts)))
        measure = Measures(features, lsa_features(texts, cache, label.replace(" ", "-")))
        rand = np.stack([measure(select_random(n, m, args.seed + s)) for s in range(args.random_seeds)])
        seeds = [args.seed + s for s in range(args.method_seeds)]
        # paired: ours starts from the initial indices theirs drew for the same seed, so the
        # difference is what our shortcuts (refresh_every, neighbors, candidates) change
        their_runs, inits = [], []
        for seed in seeds:
            (pick, init), seconds = timed(lambda seed=seed: run_theirs(theirs, features, m, seed))
            their_runs.append((pick, seconds))
            inits.append(np.array(init))
        our_runs = [timed(lambda seed=seed, init=init: select_parametric(features, m, replace(config, seed=seed), init=init))
                    for seed, init in zip(seeds, inits)]
        their_s, ours_s = np.mean([t for _, t in their_runs]), np.mean([t for _, t in our_runs])
        theirs_q = np.stack([measure(pick) for pick, _ in their_runs])
        ours_q = np.stack([measure(pick) for pick, _ in our_runs])
        sd = (lambda q: q.std(0, ddof=1).tolist()) if len(seeds) > 1 else (lambda q: [0.0] * q.shape[1])
        overlap = [len(set(a.tolist()) & set(b.tolist())) / m for (a, _), (b, _) in zip(their_runs, our_runs)]
        row = {"set": label, "n": n, "m": m, "seeds": seeds, "overlap_with_theirs": float(np.mean(overlap)), "their_s": float(their_s), "ours_s": float(ours_s),
               "ratio": float(their_s / ours_s), "random_mean": rand.mean(0).tolist(), "random_sd": rand.std(0, ddof=1).tolist(),
               "theirs_mean": theirs_q.mean(0).tolist(), "theirs_sd": sd(theirs_q),
               "ours_mean": ours_q.mean(0).tolist(), "ours_sd": sd(ours_q)}
        rows.append(row)
        print(f"\n{label}: n={n} m={m}, mean ± sd over seeds {seeds} (random: {args.random_seeds} seeds); "
              f"seconds per run; ours shares {np.mean(overlap):.1%} of theirs   (cov ^, cov-lsa ^, mmd2 x1e3 v, kl v)", flush=True)
        print(f"{'selector':<22} {'seconds':>8} {'cov':>16} {'cov-lsa':>16} {'mmd2':>16} {'kl':>16}")
        for name, seconds, mean, spread in (("random", None, row["random_mean"], row["random_sd"]),
                                            ("theirs", their_s, row["theirs_mean"], row["theirs_sd"]),
                                            ("ours (default)", ours_s, row["ours_mean"], row["ours_sd"])):
            print(f"{name:<22} {'' if seconds is None else f'{seconds:.1f}':>8} "
                  + " ".join(f"{fmt(a, b):>16}" for a, b in zip(mean, spread)), flush=True)
    return rows


def synthetic(args, theirs, config: ParametricConfig) -> dict:
    features = mixture(args.n, args.dim, args.centers, args.seed)
    ours_pick, ours_s = timed(lambda: select_parametric(features, args.m, config))
    theirs_time = their_seconds_extrapolated(theirs, features, args.m, args.their_iterations, args.seed)
    rand = [coverage(features, select_random(args.n, args.m, args.seed + s)) for s in range(3)]
    row = {"set": f"synthetic {args.n} x {args.dim}", "n": args.n, "m": args.m, "ours_s": ours_s,
           "their_s": theirs_time["seconds"], "their_timing": theirs_time, "ratio": theirs_time["seconds"] / ours_s,
           "ours_coverage": coverage(features, ours_pick), "random_coverage": float(np.mean(rand))}
    print(f"\nsynthetic mixture n={args.n} m={args.m} dim={args.dim}: ours {ours_s:.1f} s (coverage {row['ours_coverage']:.4f}, "
          f"random {row['random_coverage']:.4f}); theirs {theirs_time['seconds']:.0f} s extrapolated from "
          f"{args.their_iterations} iterations ({theirs_time['per_iteration_s']:.1f} s each, init + mapping "
          f"{theirs_time['init_and_mapping_s']:.1f} s); ratio {row['ratio']:.1f}x", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/instructions")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--random-seeds", type=int, default=10)
    parser.add_argument("--method-seeds", type=int, default=3, help="seeds per selector on the real sets")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--n", type=int, default=92000)
    parser.add_argument("--m", type=int, default=10000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--centers", type=int, default=200)
    parser.add_argument("--their-iterations", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", default="/tmp/scoder-select-quality")
    parser.add_argument("--their-repo", default="/work/.mirror/Kyle-Lyu+efficode-finetune/repo")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--json", default=None, help="write the figures here")
    parser.add_argument("--quick", action="store_true", help="a small synthetic set only (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.n, args.m, args.dim, args.their_iterations, args.skip_real = 3000, 300, 64, 1, True
    torch.set_num_threads(args.threads)
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    theirs = load_theirs(args.their_repo)
    config = ParametricConfig(seed=args.seed)
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"ours: {config}\ntorch threads {torch.get_num_threads()}, CPU capability {capability}")
    real = [] if args.skip_real else real_sets(args, theirs, config)
    synth = None if args.skip_synthetic else synthetic(args, theirs, config)
    if args.json:
        headline = synth or (real[-1] if real else None)
        out = {"name": "selection", "workload": headline["set"] if headline else None,
               "baseline": "authors' select.py on CPU" + (" (extrapolated from a few iterations)" if synth else ""),
               "baseline_value": headline["their_s"] if headline else None,
               "fast_value": headline["ours_s"] if headline else None, "unit": "seconds (lower is better)",
               "ratio": headline["ratio"] if headline else None, "identical": False,
               "check": "; ".join(f"{r['set']}: {r['overlap_with_theirs']:.1%} of their subset, coverage "
                                  f"{r['ours_mean'][0] - r['theirs_mean'][0]:+.4f}, MMD2 {r['ours_mean'][2] - r['theirs_mean'][2]:+.3f}"
                                  for r in real) or "quality not compared (no real sets)",
               "note": "approximation of their algorithm: quality on real sets in `real`",
               "config": asdict(config), "real": real, "synthetic": synth, "cpu_capability": capability,
               "threads": torch.get_num_threads()}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

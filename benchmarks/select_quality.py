"""Selection quality on real instruction sets: random, scoder's parametric forms, and the
authors' published selector run as-is on CPU.

For each dataset (JSON lists under --data-dir) the instruction texts (the subset stage's
default `text_fields: [instruction]`) are embedded once with the shipped `minilm` through
scoder.models.features (cached under --cache), and --fraction of the records is selected by
- random: --random-seeds seeds, reported as mean +- sd;
- scoder parametric with each configuration in CONFIGS (and ABLATION with --ablation);
- theirs: SampleModel / optimize_dist of Kyle-Lyu/efficode-finetune
  data_selection/ours/select.py (read from the bare mirror --their-repo, written to a temp
  dir and imported with Tensor.cuda / Module.cuda made no-ops; python `random` seeded with
  --seed as their main() does; their defaults: 300 iterations, lr 1e-3, tau 0.07, balance 1,
  random init, no scheduler). Their module turns on autograd anomaly detection at import; it is
  turned off again (it only slows autograd down);
- "ours activeft r=1, their init": our activeft form with refresh_every 1 from their initial
  indices, which should pick the same set as theirs (the overlap is printed).

Measures (arrows: the better direction):
- cov: mean over all records of the max cosine to the selected set, selection features (up);
- cov-lsa: the same on TF-IDF (sublinear tf) + TruncatedSVD 256 dims, L2-normalised, of the
  same texts: a representation the selection never saw (up);
- mmd2: squared MMD (biased, RBF kernel, bandwidth = median pairwise distance of the full set)
  between the selected and the full set, on the selection features, x 1e3 (down);
- kl: KL(selected || full) of K-means (k = 50, on the selection features) cluster
  proportions (down).

    python benchmarks/select_quality.py [--ablation] [--method-seeds 5] [--datasets evol-codealpaca-2k-1 ...]
        [--configs 'ours default' ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from scoder.models.features import encode_cached, instruction_text
from scoder.subset.baselines import select_random
from scoder.subset.parametric import ParametricConfig, select_parametric
from scoder.subset.quality import coverage

DATASETS = ("evol-codealpaca-2k-1", "code_alpaca_2k", "new_codealpaca")
BASE = ParametricConfig()
CONFIGS = {
    "ours paper r=10 (old default)": replace(BASE, loss="paper", refresh_every=10),
    "ours activeft r=1": replace(BASE, loss="activeft", refresh_every=1),
    "ours activeft r=10": replace(BASE, loss="activeft", refresh_every=10),
    "ours default": BASE,
}
ABLATION = {
    "paper r=1": replace(BASE, loss="paper", refresh_every=1),
    "paper r=1 no-renorm (grad through c)": replace(BASE, loss="paper", refresh_every=1, renormalize=False),
    "activeft r=1 renormalised": replace(BASE, loss="activeft", refresh_every=1, renormalize=True),
    "activeft r=1 no self term": replace(BASE, loss="activeft", refresh_every=1, self_term=False),
    "activeft r=30": replace(BASE, loss="activeft", refresh_every=30),
    "activeft r=10 neighbors=16 drop": replace(BASE, loss="activeft", refresh_every=10, neighbors=16, far_field="drop"),
    "activeft r=10 neighbors=32 hold": replace(BASE, loss="activeft", refresh_every=10, neighbors=32, far_field="hold"),
    "activeft r=30 neighbors=32 hold": replace(BASE, loss="activeft", refresh_every=30, neighbors=32, far_field="hold"),
    "activeft r=1 lambda=0.1": replace(BASE, loss="activeft", refresh_every=1, reg_lambda=0.1),
    "paper r=1 lambda=0.1": replace(BASE, loss="paper", refresh_every=1, reg_lambda=0.1),
}


def lsa_features(texts: list[str], cache: Path, name: str) -> np.ndarray:
    path = cache / f"{name}-tfidf-lsa256.npy"
    if path.exists():
        return np.load(path)
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(sublinear_tf=True).fit_transform(texts)
    x = TruncatedSVD(n_components=256, random_state=0).fit_transform(tfidf).astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    np.save(path, x)
    return x


class Measures:
    def __init__(self, features: np.ndarray, lsa: np.ndarray, clusters: int = 50):
        from sklearn.cluster import KMeans

        self.features, self.lsa = features, lsa
        f = torch.from_numpy(features)
        sq = torch.cdist(f, f).pow(2)
        self.gamma = 1.0 / (2 * float(sq[sq > 0].sqrt().median()) ** 2)
        self.kxx = float(torch.exp(-self.gamma * sq).mean())
        self.labels = KMeans(n_clusters=clusters, n_init=3, random_state=0).fit_predict(features)
        self.full_p = np.bincount(self.labels, minlength=clusters) / len(self.labels)

    def mmd2(self, selected: np.ndarray) -> float:
        f = torch.from_numpy(self.features)
        s = f[torch.as_tensor(selected)]
        kss = torch.exp(-self.gamma * torch.cdist(s, s).pow(2)).mean()
        ksx = torch.exp(-self.gamma * torch.cdist(s, f).pow(2)).mean()
        return float(kss + self.kxx - 2 * ksx)

    def kl(self, selected: np.ndarray) -> float:
        p = np.bincount(self.labels[selected], minlength=len(self.full_p)) / len(selected)
        nz = p > 0
        return float(np.sum(p[nz] * np.log(p[nz] / self.full_p[nz])))

    def __call__(self, selected: np.ndarray) -> np.ndarray:
        selected = np.asarray(selected, dtype=np.int64)
        return np.array([coverage(self.features, selected), coverage(self.lsa, selected), 1e3 * self.mmd2(selected), self.kl(selected)])


# their main()'s defaults (max_iter 300 given by the caller)
THEIR_ARGS = dict(temperature=0.07, init="random", distance="euclidean", balance=1.0, slice=20000,
                  lr=0.001, scheduler="none")


def load_theirs(repo: str):
    """Their select.py / utils.py from the bare mirror, importable on CPU."""
    folder = Path(tempfile.mkdtemp(prefix="efficode-select-"))
    for name in ("select.py", "utils.py"):
        text = subprocess.run(["git", "-C", repo, "show", f"HEAD:data_selection/ours/{name}"], check=True, capture_output=True, text=True).stdout
        (folder / name).write_text(text)
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    saved = sys.modules.get("utils")
    spec = importlib.util.spec_from_file_location("utils", folder / "utils.py")
    sys.modules["utils"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules["utils"])
    spec = importlib.util.spec_from_file_location("efficode_select", folder / "select.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if saved is not None:
        sys.modules["utils"] = saved
    torch.autograd.set_detect_anomaly(False)
    return module


def run_theirs(module, features: np.ndarray, m: int, seed: int) -> tuple[np.ndarray, list[int]]:
    args = SimpleNamespace(**THEIR_ARGS, max_iter=300)
    random.seed(seed)
    init = random.sample(list(range(len(features))), m)  # what SampleModel.init_centroids draws
    random.seed(seed)
    f = torch.nn.functional.normalize(torch.from_numpy(features), dim=1)
    return np.array(sorted(module.optimize_dist(f, m, args)), dtype=np.int64), init


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/instructions")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1234, help="their main() seeds only when truthy")
    parser.add_argument("--random-seeds", type=int, default=10)
    parser.add_argument("--method-seeds", type=int, default=1, help="seeds per parametric method (theirs included): mean +- sd when > 1")
    parser.add_argument("--cache", default="/tmp/scoder-select-quality")
    parser.add_argument("--their-repo", default="/work/.mirror/Kyle-Lyu+efficode-finetune/repo")
    parser.add_argument("--ablation", action="store_true")
    parser.add_argument("--skip-theirs", action="store_true")
    parser.add_argument("--configs", nargs="+", default=None, help="only these rows of CONFIGS / ABLATION (labels)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is far faster on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    theirs = None if args.skip_theirs else load_theirs(args.their_repo)
    configs = {**CONFIGS, **(ABLATION if args.ablation else {})}
    if args.configs:
        unknown = set(args.configs) - set(CONFIGS) - set(ABLATION)
        if unknown:
            parser.error(f"unknown --configs {sorted(unknown)}; known: {list(CONFIGS) + list(ABLATION)}")
        configs = {label: {**CONFIGS, **ABLATION}[label] for label in args.configs}
    print(f"default ParametricConfig: {BASE}")
    for name in args.datasets:
        records = json.loads((Path(args.data_dir) / f"{name}.json").read_text())
        texts = [instruction_text(r, ["instruction"]) for r in records]
        features = encode_cached(texts, "minilm", cache / "features")
        n = len(texts)
        m = max(1, round(args.fraction * n))
        measure = Measures(features, lsa_features(texts, cache, name))
        rows = []
        rand = np.stack([measure(select_random(n, m, args.seed + s)) for s in range(args.random_seeds)])
        rows.append((f"random ({args.random_seeds} seeds)", rand.mean(0), rand.std(0, ddof=1), 0.0, ""))
        seeds = [args.seed + s for s in range(args.method_seeds)]

        def repeated(label, pick, note=""):
            start = time.perf_counter()
            values = np.stack([measure(pick(seed)) for seed in seeds])
            sd = values.std(0, ddof=1) if len(seeds) > 1 else None
            rows.append((label, values.mean(0), sd, (time.perf_counter() - start) / len(seeds), note))

        if theirs is not None:
            their_pick, their_init = run_theirs(theirs, features, m, args.seed)
            same = select_parametric(features, m, ParametricConfig(loss="activeft", refresh_every=1), init=np.array(their_init))
            overlap = len(set(same.tolist()) & set(their_pick.tolist()))
            repeated("theirs (efficode select.py, CPU)", lambda seed: run_theirs(theirs, features, m, seed)[0])
            rows.append(("ours activeft r=1, their init", measure(same), None, 0.0, f"seed {args.seed}: {overlap}/{m} shared with theirs"))
        for label, config in configs.items():
            repeated(label, lambda seed, config=config: select_parametric(features, m, replace(config, seed=seed)))
        print(f"\n{name}: n={n} m={m} dim={features.shape[1]} threads={torch.get_num_threads()} "
              + (f"parametric rows (theirs included): mean ± sd over seeds {seeds}" if len(seeds) > 1 else f"seed {args.seed}"))
        print(f"{'method':<40} {'cov ^':>15} {'cov-lsa ^':>15} {'mmd2 x1e3 v':>15} {'kl v':>15} {'seconds':>8}")
        for label, mean, sd, seconds, note in rows:
            cells = [f"{v:.4f}" + (f" ±{s:.4f}" if sd is not None else "") for v, s in zip(mean, sd if sd is not None else mean)]
            print(f"{label:<40} " + " ".join(f"{c:>15}" for c in cells) + f" {seconds:>8.1f} {note}", flush=True)


if __name__ == "__main__":
    main()

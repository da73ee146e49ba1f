"""K-Specialist (seed 002): semantic dedup, K-means clusters of the questions, one LoRA adapter
per cluster, and routed generation.

- Semantic dedup (section 2.3): greedy in dataset order, a record is kept unless its cosine
  with an already kept record exceeds the threshold (0.95). This is the seed's "keep the
  single data point, discard the n examples more similar to it than 0.95", applied to every
  point in turn: a point still present when its turn comes is kept and discards the later
  ones. Similarities are computed in blocks against the kept set, so memory is
  O(block x kept), never N x N.
- Clusters (4.2): scikit-learn K-means (seeded, `n_init` restarts) on L2-normalised question
  embeddings. The fitted centroids are saved with the adapters; a query goes to its nearest
  centroid (Euclidean, what `KMeans.predict` does).
- Specialists (4.3): one LoRA adapter per cluster, each trained from the same base model on its
  cluster's slice; together the K slices are the whole (deduplicated) dataset.
- Inference (4.4): `batched` groups the queries by cluster and keeps one adapter at a time on
  the single base model (load, generate the group, unload; the seed merges and subtracts the
  update, which computes the same function); `online` keeps all K adapters loaded on the one
  base model and selects per request, as a server would. Both run the adapter unmerged, so
  greedy outputs are identical between the modes (tested).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from scoder.evaluation.benchmarks import EvaluateConfig
from scoder.kspecialist.dedup import normalise as _normalise, question_texts
from scoder.training.sft import TrainConfig, instruction_examples, train_sft

log = logging.getLogger(__name__)

MANIFEST = "specialists.json"
CENTROIDS = "centroids.npy"


def fit_clusters(embeddings: np.ndarray, k: int, seed: int, n_init: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(labels, centroids) of seeded K-means on the normalised embeddings."""
    from sklearn.cluster import KMeans

    e = _normalise(embeddings)
    if k < 1:
        raise ValueError(f"K must be at least 1, got {k}")
    if k > len(e):
        raise ValueError(f"K={k} clusters need at least {k} records, the dataset has {len(e)}")
    model = KMeans(n_clusters=k, random_state=seed, n_init=n_init).fit(e)
    return model.labels_.astype(int), model.cluster_centers_.astype(np.float32)


@dataclass
class Router:
    """The fitted clustering: routes a query to the cluster whose centroid is nearest."""

    centroids: np.ndarray
    embed_model: str
    prompt: str = ""

    def assign(self, embeddings: np.ndarray) -> np.ndarray:
        e = _normalise(embeddings)
        distances = ((e[:, None, :] - self.centroids[None, :, :]) ** 2).sum(-1)
        return distances.argmin(axis=1)

    def route(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        from scoder.models.embed import embed_texts, load_embedder

        return self.assign(embed_texts(load_embedder(self.embed_model), list(texts), self.prompt, batch_size))

    def save(self, folder: str | Path) -> None:
        np.save(Path(folder) / CENTROIDS, self.centroids)

    @classmethod
    def load(cls, folder: str | Path) -> "Router":
        folder = Path(folder)
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        centroids = np.load(folder / CENTROIDS)
        if centroids.shape[0] != manifest["k"]:
            raise ValueError(f"{folder}: {centroids.shape[0]} centroids but the manifest says K={manifest['k']}")
        return cls(centroids, manifest["embed_model"], manifest.get("prompt", ""))


@dataclass
class SpecialistsConfig:
    """The `specialists` params section (seed 002 section 4 and appendix A)."""

    k: int = 2  # seed 002: 1, 5, 10
    embed_model: str = "minilm"  # seed 002: intfloat/e5-base-v2 (prompt "query: ")
    prompt: str = ""
    n_init: int = 10
    seed: int = 1234
    instruction_fields: list[str] = field(default_factory=lambda: ["instruction"])
    response_fields: list[str] = field(default_factory=lambda: ["response", "output"])
    # the SFT of every adapter (method lora, one checkpoint); its model is the base every
    # adapter is trained from and loaded on (seed 002: phi-2, CodeLlama-7B-Python)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        learning_rate=2e-4, epochs=2.0, batch_size=4, grad_accum=2, max_length=1024, warmup_ratio=0.05,
        lr_scheduler="cosine", weight_decay=0.001, num_checkpoints=1))

    def train_config(self) -> TrainConfig:
        if self.train.method != "lora":
            raise ValueError(f"specialists.train.method must be lora (one adapter per cluster), got {self.train.method!r}")
        return replace(self.train, num_checkpoints=1, seed=self.seed)


def train_specialists(records: Sequence[dict], config: SpecialistsConfig, out_dir: str | Path, source: str,
                      embed: Callable[[list[str]], np.ndarray] | None = None) -> dict:
    """Cluster `records` by question, train one adapter per cluster into out_dir/cluster_<c>/,
    save the centroids and the manifest; returns the metrics."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    questions = question_texts(records, config.instruction_fields, source)
    if embed is None:
        from scoder.models.embed import embed_texts, load_embedder

        embed = lambda texts: embed_texts(load_embedder(config.embed_model), texts, config.prompt)  # noqa: E731
    labels, centroids = fit_clusters(embed(questions), config.k, config.seed, config.n_init)
    Router(centroids, config.embed_model, config.prompt).save(out_dir)
    examples = instruction_examples(list(records), config.instruction_fields, config.response_fields, source)
    clusters = []
    for cluster in range(config.k):
        members = [i for i, label in enumerate(labels) if label == cluster]
        log.info("cluster %d/%d: training its adapter on %d examples", cluster + 1, config.k, len(members))
        result = train_sft([examples[i] for i in members], config.train_config(), out_dir / f"cluster_{cluster}")
        clusters.append({"cluster": cluster, "size": len(members), "adapter": f"cluster_{cluster}/checkpoint-0",
                         "steps": result["steps"], "train_loss": round(float(result["train_loss"]), 6),
                         "dropped_too_long": result["dropped_too_long"]})
    manifest = {"k": config.k, "base_model": config.train.model, "embed_model": config.embed_model, "prompt": config.prompt,
                "clusters": clusters}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (out_dir / "assignments.jsonl").write_text(
        "".join(json.dumps({"id": e["id"], "cluster": int(c)}) + "\n" for e, c in zip(examples, labels)), encoding="utf-8")
    return manifest


def last_user_message(messages: Sequence[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message["content"]
    raise ValueError("a prompt without a user message cannot be routed")


class SpecialistLLM:
    """Routed generation over K adapters on one base model (the LLM protocol's `generate`)."""

    MODES = ("batched", "online")

    def __init__(self, folder: str | Path, engine, mode: str = "batched", cache=None):
        from scoder.models.llm.base import load_llm

        if mode not in self.MODES:
            raise ValueError(f"unknown specialist mode '{mode}' (expected one of {', '.join(self.MODES)})")
        if engine.backend != "transformers":
            raise ValueError("routed specialists run on the transformers backend (adapters switch in place)")
        self.folder = Path(folder)
        self.manifest = json.loads((self.folder / MANIFEST).read_text(encoding="utf-8"))
        self.router = Router.load(self.folder)
        self.mode = mode
        self.llm = load_llm(replace(engine, model=self.manifest["base_model"], adapter=None), cache)
        self.routed = [0] * self.manifest["k"]
        if mode == "online":
            for cluster in range(self.manifest["k"]):
                self._activate(cluster, keep_others=True)

    def _activate(self, cluster: int, keep_others: bool) -> None:
        adapter = self.folder / self.manifest["clusters"][cluster]["adapter"]
        self.llm.activate_adapter(str(adapter), f"cluster_{cluster}", keep_others=keep_others)

    def generate(self, prompts, params):
        labels = self.router.route([last_user_message(p) for p in prompts]) if prompts else []
        for label in labels:
            self.routed[int(label)] += 1
        results: list = [None] * len(prompts)
        if self.mode == "batched":
            for cluster in sorted({int(label) for label in labels}):
                members = [i for i, label in enumerate(labels) if label == cluster]
                self._activate(cluster, keep_others=False)
                for i, completion in zip(members, self.llm.generate([prompts[i] for i in members], params)):
                    results[i] = completion
        else:
            for i, label in enumerate(labels):
                self._activate(int(label), keep_others=True)
                results[i] = self.llm.generate([prompts[i]], params)[0]
        return results


    def response_nll(self, prompts: Sequence[str], texts: Sequence[str], max_length: int,
                     queries: Sequence[str] | None = None, batch_size: int = 0) -> list[float]:
        """Mean NLL per token of each text's part after its prompt under the specialist its
        query routes to (`queries`, default the prompts): see `routed_response_nll`."""
        return self.routed_response_nll(prompts, texts, max_length, queries, batch_size)[0]

    def routed_response_nll(self, prompts: Sequence[str], texts: Sequence[str], max_length: int,
                            queries: Sequence[str] | None = None, batch_size: int = 0) -> tuple[list[float], list[int]]:
        """(NLL per text, the cluster each was routed to): the queries are routed once, each
        adapter is activated once, and its texts are scored `batch_size` at a time (0: all),
        longest first."""
        from scoder.models.lm_loss import nll_in_length_batches

        labels = [int(label) for label in self.router.route(list(queries or prompts))] if prompts else []
        values: list = [None] * len(prompts)
        for cluster in sorted(set(labels)):
            members = [i for i, label in enumerate(labels) if label == cluster]
            self._activate(cluster, keep_others=self.mode == "online")
            scored = nll_in_length_batches(lambda p, t: self.llm.response_nll(p, t, max_length), [prompts[i] for i in members],
                                           [texts[i] for i in members], batch_size or len(members))
            for i, value in zip(members, scored, strict=True):
                values[i] = value
        return values, labels


@dataclass
class PassSetting:
    k: int = 1
    n: int = 1
    temperature: float = 0.2


def _seed_passes() -> list[PassSetting]:
    # seed 002 Table 3: pass@1 at temperature 0.2, pass@10 at temperature 0.8
    return [PassSetting(k=1, n=1, temperature=0.2), PassSetting(k=10, n=10, temperature=0.8)]


@dataclass
class SpecialistEvaluateConfig(EvaluateConfig):
    """The `specialist_evaluate` section: the evaluate settings, the routing mode and the
    passes (each its own n and temperature; pass@k by the unbiased estimator)."""

    mode: str = "batched"  # batched | online
    passes: list[PassSetting] = field(default_factory=_seed_passes)

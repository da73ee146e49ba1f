"""Optimizer-aware influence estimation (SCoder eq. 3-4; LESS is the reference practice).

For each sample d, the gradient of its response-only loss with respect to the reference
model's LoRA parameters:
- D_p samples (the teacher's data): the plain gradient g;
- candidates: the Adam-aware gradient g~ = m' / (sqrt(v') + eps), m' = b1 m + (1 - b1) g,
  v' = b2 v + (1 - b2) g^2, with m, v the reference model's saved Adam state (eq. 3,
  without bias correction, as printed).
Each gradient is projected to `proj_dim` dimensions with a seeded Rademacher matrix
(entries +-1/sqrt(proj_dim)) that is generated block by block, never whole. The influence
is V(d) = cos(proj(g~_d), mean_j proj(g_j) / ||proj(g_j)||) (eq. 4): the mean is over
*normalized* projected D_p gradients, as LESS does, so a few long or badly fitted D_p
samples with large gradients cannot dominate the target direction.

Three ways to the same features (`method`): `loop`, the reference, takes each sample's
gradient with autograd at batch 1 and projects every batch with a freshly generated matrix;
`batched` takes a batch's per-sample gradients from one forward/backward (every LoRA matrix
is a bias-free nn.Linear, so the gradient of sample i is sum_t dy_{i,t} x_{i,t}^T over its
own tokens, from hooks on the layer's input and output gradient; padding positions carry zero
output gradient); `fast`, the default (scoder.bootstrap.influence_fast), projects a whole
shard at once with the matrix generated once per process and kept as bits, and takes the
gradients one sample at a time on the CPU (batches of similar length elsewhere). Their
features agree to float32 rounding (tests/bootstrap/test_influence_speed_paths.py; speed and
profile: benchmarks/influence_speed.py).

Features are written in shards of `shard_batches` fixed batches (batch k always holds the
same samples), so a killed run resumes at the first missing shard, and `shard i/n` runs
compute disjoint shard files whose union equals one run's output bit for bit.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from scoder.core.io import write_npy
from scoder.models.precision import check_precision, resolve_precision

log = logging.getLogger(__name__)


@dataclass
class FeatureConfig:
    proj_dim: int = 8192
    seed: int = 1234  # of the projection
    batch_size: int = 8
    max_length: int = 768
    shard_batches: int = 4  # batches per shard file (method fast: the samples projected together)
    block_rows: int = 65536  # projection rows generated at a time (from their own generator)
    # keep the generated matrix in memory up to this size (loop, batched: int8 signs;
    # fast: bits, D * proj_dim / 8 bytes), else regenerate it for every projection
    projection_cache_mb: int = 1024
    # fast (shard at a time, see scoder.bootstrap.influence_fast) | batched (hooks, per batch)
    # | loop (batch 1 and a projection per batch: the reference)
    method: str = "fast"
    # fp32 | bf16 (autocast of the forward/backward; weights, gradients and projection stay fp32)
    # | auto (bf16 where the device has it natively, see scoder.models.precision)
    precision: str = "fp32"

    def __post_init__(self):
        check_precision(self.precision, "influence.precision")
        check_method(self.method)


METHODS = ("fast", "batched", "loop")


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown influence.method '{method}' (expected one of: {', '.join(METHODS)})")
    return method


# --- where the time goes -------------------------------------------------------------------

class Profile:
    """Wall seconds per named step of the feature computation (benchmarks/influence_speed.py)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


_profile: Profile | None = None


def timed(name: str):
    """Time the block under `name` while `profiling()` is active (otherwise nothing)."""
    return _profile.step(name) if _profile is not None else nullcontext()


@contextmanager
def profiling() -> Iterator[Profile]:
    global _profile
    previous, _profile = _profile, Profile()
    try:
        yield _profile
    finally:
        _profile = previous


# --- model and data ----------------------------------------------------------------------

def load_reference(checkpoint: str | Path, base_model: str):
    """The reference model (base + trained LoRA adapter) with trainable LoRA parameters, and
    its Adam state keyed by parameter name (None if the checkpoint has none)."""
    from peft import PeftModel
    from safetensors.torch import load_file

    from scoder.training.sft import load_trainable_model

    base, tokenizer = load_trainable_model(base_model)
    model = PeftModel.from_pretrained(base, str(checkpoint), is_trainable=True).eval()
    state_file = Path(checkpoint) / "adam_state.safetensors"
    adam = None
    if state_file.exists():
        meta = json.loads((Path(checkpoint) / "adam_state.json").read_text(encoding="utf-8"))
        adam = {"tensors": load_file(str(state_file)), "betas": meta["betas"], "eps": meta["eps"]}
    return model, tokenizer, adam


def trainable_parameters(model) -> list[tuple[str, torch.nn.Parameter]]:
    return sorted(((n, p) for n, p in model.named_parameters() if p.requires_grad), key=lambda item: item[0])


def encode_example(tokenizer, example: dict, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels of a prompt-completion example; prompt tokens are masked (-100)."""
    prompt = tokenizer.apply_chat_template(example["prompt"], add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=False)
    if not full.startswith(prompt):
        raise ValueError(f"example {example.get('id')}: the chat template does not extend the prompt")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
    ids = (prompt_ids + completion_ids)[:max_length]
    labels = ([-100] * len(prompt_ids) + completion_ids)[:max_length]
    return ids, labels


def _collate(encoded: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, (ids, lab) in enumerate(encoded):  # right padding: positions stay those of batch 1
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(lab)] = torch.tensor(lab)
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}


def response_losses(model, batch: dict[str, torch.Tensor], bf16: bool = False) -> torch.Tensor:
    """Mean next-token cross-entropy over each sample's response tokens (NaN if it has none).
    The output layer runs on response positions only: with a vocabulary of 49K, full logits
    over the prompt cost more than they tell."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    labels = batch["labels"][:, 1:]
    with torch.autocast(batch["input_ids"].device.type, dtype=torch.bfloat16, enabled=bf16):
        hidden = inner.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        rows = (labels != -100).nonzero(as_tuple=True)
        logits = inner.get_output_embeddings()(hidden[:, :-1, :][rows])
    token_loss = torch.nn.functional.cross_entropy(logits.float(), labels[rows], reduction="none")
    sums = torch.zeros(labels.shape[0], dtype=token_loss.dtype, device=token_loss.device).index_add(0, rows[0], token_loss)
    counts = (labels != -100).sum(dim=1)
    return sums / counts.clamp(min=1) + torch.where(counts == 0, float("nan"), 0.0)


# --- per-sample gradients ----------------------------------------------------------------

def batched_gradients(model, batch: dict[str, torch.Tensor], bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-sample gradients, flattened over the sorted trainable parameters: B x D; losses)."""
    params = trainable_parameters(model)
    by_param = {id(p): name for name, p in params}
    modules = {}
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, torch.nn.Linear) and weight is not None and id(weight) in by_param:
            if module.bias is not None and module.bias.requires_grad:
                raise ValueError("batched per-sample gradients need bias-free trainable Linear layers")
            modules[by_param[id(weight)]] = module
    if len(modules) != len(params):
        missing = sorted(set(by_param.values()) - set(modules))
        raise ValueError(f"trainable parameters outside bias-free Linear layers: {missing[:3]} (use loop_gradients)")
    inputs: dict[str, torch.Tensor] = {}
    out_grads: dict[str, torch.Tensor] = {}
    handles = []
    def capture(mod, args, out, name):
        # a tensor hook on the output is far cheaper than a module backward hook
        inputs[name] = args[0].detach()
        out.register_hook(lambda grad: out_grads.__setitem__(name, grad.detach()))

    for name, module in modules.items():
        handles.append(module.register_forward_hook(lambda mod, args, out, name=name: capture(mod, args, out, name)))
    try:
        model.zero_grad(set_to_none=True)
        with timed("gradient: forward"):
            losses = response_losses(model, batch, bf16)
        with timed("gradient: backward"):
            # only the hooked output gradients are needed, not the parameters' .grad
            torch.autograd.backward(torch.nansum(losses), inputs=[p for _, p in params])
    finally:
        for handle in handles:
            handle.remove()
    with timed("gradient: per-sample assembly"):
        parts = []
        for name, _ in params:
            x, dy = inputs[name].float(), out_grads[name].float()
            parts.append(torch.einsum("bto,bti->boi", dy, x).reshape(x.shape[0], -1))
        grads = torch.cat(parts, dim=1)
    model.zero_grad(set_to_none=True)
    return grads, losses.detach()


def loop_gradients(model, batch: dict[str, torch.Tensor], bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The same, one sample at a time with autograd (the reference, and the benchmark baseline)."""
    params = trainable_parameters(model)
    rows, losses = [], []
    for i in range(batch["input_ids"].shape[0]):
        length = int(batch["attention_mask"][i].sum())
        one = {k: v[i : i + 1, :length] for k, v in batch.items()}
        model.zero_grad(set_to_none=True)
        with timed("gradient: forward"):
            loss = response_losses(model, one, bf16)[0]
        with timed("gradient: backward"):
            loss.backward()
        with timed("gradient: per-sample assembly"):
            rows.append(torch.cat([p.grad.reshape(-1).float() if p.grad is not None else torch.zeros(p.numel(), device=p.device) for _, p in params]))
        losses.append(loss.detach())
    model.zero_grad(set_to_none=True)
    return torch.stack(rows), torch.stack(losses)


def adam_transform(grads: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, betas: Sequence[float], eps: float) -> torch.Tensor:
    """Eq. 3: the update direction Adam would take from its saved state after seeing `grads`."""
    b1, b2 = betas
    m = b1 * exp_avg + (1 - b1) * grads
    v = b2 * exp_avg_sq + (1 - b2) * grads * grads
    return m / (torch.sqrt(v) + eps)


def flat_adam_state(adam: dict, names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        m = torch.cat([adam["tensors"][f"{n}.exp_avg"].reshape(-1) for n in names])
        v = torch.cat([adam["tensors"][f"{n}.exp_avg_sq"].reshape(-1) for n in names])
    except KeyError as missing:
        raise KeyError(f"the reference checkpoint's Adam state has no entry {missing}: was it saved by scoder.training.sft?") from None
    return m, v


# --- projection --------------------------------------------------------------------------

class RademacherProjection:
    """x -> x R / sqrt(k) for a D x k matrix of random signs, generated in row blocks from
    (seed, block index), so any process regenerates the same matrix without storing it."""

    def __init__(self, dim: int, proj_dim: int, seed: int, block_rows: int = 65536, cache_mb: int = 1024):
        self.dim, self.proj_dim, self.seed, self.block_rows = dim, proj_dim, seed, block_rows
        self.keep = dim * proj_dim <= cache_mb * 1024 * 1024  # int8 signs
        self._blocks: dict[int, torch.Tensor] = {}

    def block(self, index: int) -> torch.Tensor:
        if index in self._blocks:
            return self._blocks[index]
        rows = min(self.block_rows, self.dim - index * self.block_rows)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        with timed("projection: sign generation"):
            signs = torch.randint(0, 2, (rows, self.proj_dim), generator=generator, dtype=torch.int8) * 2 - 1
        if self.keep:
            self._blocks[index] = signs
        return signs

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.dim:
            raise ValueError(f"projection built for dimension {self.dim}, got {x.shape[1]}")
        out = torch.zeros(x.shape[0], self.proj_dim, dtype=torch.float64)
        for index in range(math.ceil(self.dim / self.block_rows)):
            start = index * self.block_rows
            signs = self.block(index)
            with timed("projection: int8 to float32 signs"):
                block = signs.to(torch.float32)
            with timed("projection: matmul"):
                out += (x[:, start : start + block.shape[0]].to(torch.float32) @ block).to(torch.float64)
        return (out / math.sqrt(self.proj_dim)).to(torch.float32)


# --- sharded feature computation ---------------------------------------------------------

def shard_files(out_dir: Path, total_batches: int, shard_batches: int) -> list[Path]:
    count = math.ceil(total_batches / shard_batches)
    return [out_dir / f"features-{k:05d}.npz" for k in range(count)]


def features_complete(out_dir: str | Path, examples: int, config: FeatureConfig) -> bool:
    batches = math.ceil(examples / config.batch_size)
    return all(path.exists() for path in shard_files(Path(out_dir), batches, config.shard_batches))


def compute_features(model, tokenizer, examples: Sequence[dict], config: FeatureConfig, out_dir: str | Path,
                     adam: dict | None = None, shard: tuple[int, int] = (0, 1)) -> dict:
    """Write projected gradient features of `examples` in shard files under `out_dir`;
    shards already written are skipped (resume). `shard=(i, n)` computes shards k with
    k % n == i. With `adam`, candidates get the Adam-aware transform; without, plain
    gradients. Returns counts."""
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard {index}/{count} is out of range")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [n for n, _ in trainable_parameters(model)]
    dim = sum(p.numel() for _, p in trainable_parameters(model))
    fast = check_method(config.method) == "fast"
    if fast:  # the shard's samples in one projection pass over a bit-packed matrix made once per process
        from scoder.bootstrap.influence_fast import PackedRademacherProjection, shard_gradients

        projection = PackedRademacherProjection.shared(dim, config.proj_dim, config.seed, config.block_rows,
                                                       config.projection_cache_mb)
    else:
        projection = RademacherProjection(dim, config.proj_dim, config.seed, config.block_rows, config.projection_cache_mb)
    state = flat_adam_state(adam, names) if adam else None
    gradients = batched_gradients if config.method == "batched" else loop_gradients
    device = next(model.parameters()).device
    precision = resolve_precision(config.precision, device.type)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batches = [list(range(s, min(s + config.batch_size, len(examples)))) for s in range(0, len(examples), config.batch_size)]
    files = shard_files(out_dir, len(batches), config.shard_batches)
    _discard_stale_shards(out_dir, features_fingerprint(model, examples, config, adam is not None))
    mine = [k for k in range(len(files)) if k % count == index]
    todo = [k for k in mine if not files[k].exists()]
    log.info("gradient features: %d samples, %d batches, %d shards (%d for this process, %d already done), D=%d -> %d",
             len(examples), len(batches), len(files), len(mine), len(mine) - len(todo), dim, config.proj_dim)

    def transform(grads: torch.Tensor) -> torch.Tensor:
        # the projection and the Adam state live on the CPU (blocks of the matrix are cached there)
        grads = grads.float().cpu()
        if state is None:
            return grads
        with timed("adam transform"):
            return adam_transform(grads, state[0], state[1], adam["betas"], adam["eps"])

    for k in tqdm(todo, desc="gradient features", unit="shard"):
        features, losses, ids = [], [], []
        shard_batches = batches[k * config.shard_batches : (k + 1) * config.shard_batches]
        if fast:  # the whole shard: its content depends on its samples only, never on the process
            members = [i for b in shard_batches for i in b]
            encoded = [encode_example(tokenizer, examples[i], config.max_length) for i in members]
            # one sample at a time on the CPU (batches measured no faster there), batches elsewhere
            forward_batch = 1 if device.type == "cpu" else config.batch_size
            grads, shard_losses = shard_gradients(model, encoded, pad_id, forward_batch, precision == "bf16")
            features.append(projection(transform(grads)).numpy())
            losses.append(shard_losses.float().cpu().numpy())
            ids.extend(str(examples[i].get("id")) for i in members)
        else:
            for b in shard_batches:
                encoded = [encode_example(tokenizer, examples[i], config.max_length) for i in b]
                batch = {name: tensor.to(device) for name, tensor in _collate(encoded, pad_id).items()}
                grads, batch_losses = gradients(model, batch, precision == "bf16")
                features.append(projection(transform(grads)).numpy())
                losses.append(batch_losses.float().cpu().numpy())
                ids.extend(str(examples[i].get("id")) for i in b)
        tmp = files[k].with_name(files[k].name + ".tmp.npz")
        np.savez(tmp, features=np.concatenate(features), losses=np.concatenate(losses), ids=np.array(ids))
        tmp.replace(files[k])  # atomic: a killed run never leaves a half shard
    return {"samples": len(examples), "batches": len(batches), "shards": len(files), "computed_shards": len(todo), "dim": dim,
            "precision": precision}


def features_fingerprint(model, examples: Sequence[dict], config: FeatureConfig, adam_aware: bool) -> str:
    """What a shard's content depends on: the feature settings, the examples (in order), the
    reference model's trainable weights and the code computing them (this module and
    influence_fast: DVC reruns the stage when they change, and shards of the old code must not
    come back). Shards with another fingerprint are never reused. The precision enters as it
    resolved on this device (an `auto` run on another CPU may differ)."""
    import hashlib
    from dataclasses import asdict

    settings = asdict(config)
    # how the processes were started changes no shard (each is fixed batches): a run under a
    # launcher or on Ray resumes the shards of a one-process run and the other way round
    settings.pop("launcher", None)
    settings.pop("ray", None)
    device = next(model.parameters()).device
    settings["precision"] = resolve_precision(settings["precision"], device.type)
    from scoder.bootstrap import influence_fast

    code = hashlib.sha256(b"".join(Path(f).read_bytes() for f in (__file__, influence_fast.__file__))).hexdigest()
    digest = hashlib.sha256(json.dumps({"config": settings, "adam_aware": adam_aware, "code": code},
                                       sort_keys=True).encode())
    digest.update(json.dumps(list(examples), sort_keys=True, default=str).encode())
    for name, parameter in trainable_parameters(model):
        digest.update(name.encode())
        digest.update(parameter.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def _discard_stale_shards(out_dir: Path, fingerprint: str) -> None:
    """Shards persist between runs (DVC `persist: true`) so a killed stage resumes; shards of a
    run with other settings, examples or reference weights are removed first."""
    from scoder.core.io import write_text

    stamp = out_dir / "fingerprint.txt"
    if stamp.exists() and stamp.read_text(encoding="utf-8").strip() == fingerprint:
        return
    stale = sorted(out_dir.glob("features-*.npz"))
    if stale:
        log.info("gradient features: %d shards in %s come from other inputs or settings; recomputing", len(stale), out_dir)
    for path in stale:
        path.unlink()
    write_text(stamp, fingerprint + "\n")


def load_features(out_dir: str | Path, expected: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(features, losses, ids) of all shards in order; an error names a missing shard."""
    out_dir = Path(out_dir)
    files = sorted(out_dir.glob("features-*.npz"))
    if not files:
        raise FileNotFoundError(f"no feature shards in {out_dir}")
    for position, path in enumerate(files):
        if path.name != f"features-{position:05d}.npz":
            raise FileNotFoundError(f"{out_dir}: shard features-{position:05d}.npz is missing (run the remaining shards)")
    parts = [np.load(path) for path in files]
    features = np.concatenate([p["features"] for p in parts])
    losses = np.concatenate([p["losses"] for p in parts])
    ids = [str(i) for p in parts for i in p["ids"]]
    if expected is not None and len(ids) != expected:
        raise ValueError(f"{out_dir}: {len(ids)} feature rows for {expected} samples (shards missing or stale)")
    return features, losses, ids


def target_direction(dp_features: np.ndarray) -> np.ndarray:
    """Mean of the normalized projected D_p gradients (see the module docstring); samples
    without response tokens (zero gradient) are left out."""
    norms = np.linalg.norm(dp_features, axis=1, keepdims=True)
    usable = norms[:, 0] > 0
    if not usable.any():
        raise ValueError("every D_p gradient is zero: is the reference adapter trained?")
    return (dp_features[usable] / norms[usable]).mean(axis=0)


def influence_scores(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Eq. 4: cosine of each candidate's feature with the target direction (0 for a zero gradient)."""
    norms = np.linalg.norm(features, axis=1) * np.linalg.norm(target)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = features @ target / norms
    return np.where(norms > 0, cosine, 0.0)


def save_target(path: str | Path, target: np.ndarray) -> None:
    write_npy(path, target.astype(np.float32))

"""Decoding for the transformers backend that does less work than `model.generate` for the
same tokens (docs/performance.md, benchmarks/generation_speed.py):

- the prompt prefix that a call's prompts share (the synthesis and scoring templates) is
  computed once and kept for later calls (`PrefixCache`), so each prompt only computes its own
  suffix;
- a prompt asked for n samples is prefilled once and its key/values repeated n times;
- a row leaves the batch as soon as it ends (end-of-sequence, a stop string, its token limit)
  and a waiting prompt takes its place (continuous batching), so the batch stays full instead of
  padding finished rows until the longest one ends; at most `max_rows` rows are decoded
  together, as in the fixed-batch path;
- waiting prompts are admitted shortest first within a short look-ahead window, so rows
  prefilled together carry little padding.

Rows in flight have different lengths: their key/values are right-aligned in one cache with an
attention mask over the holes and explicit positions, so every row computes exactly what it
would compute alone. Greedy outputs equal `model.generate`'s, also after prompts join rows
already decoding (until 2026-12 such an admission recorded the waiting rows' pending token a
second time, so their texts drifted). Each sampled row draws from its own generator seeded by (seed, prompt index,
sample index), so a row's sample does not depend on which rows it shared a batch with.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.generation.logits_process import TopPLogitsWarper

log = logging.getLogger(__name__)


@dataclass
class Request:
    """One prompt to answer `n` times; `seed` seeds its samples (unused when greedy)."""

    ids: list[int]
    n: int
    seed: int
    key: object = None  # the caller's handle, returned with the result


@dataclass
class Row:
    request: int  # index into the requests
    sample: int
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    reason: str = ""


@dataclass
class DecodeStats:
    prefill_tokens: int = 0  # prompt tokens actually computed (shared prefixes counted once)
    prompt_tokens: int = 0  # prompt tokens of all requests
    steps: int = 0
    admissions: int = 0
    seconds: float = 0.0


class PrefixCache:
    """Key/values of prompt prefixes, least recently used first out. Valid for one set of
    weights: the owner clears it when the weights change (an adapter switch)."""

    def __init__(self, max_entries: int = 4):
        self.max_entries = max_entries
        self.entries: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()

    def clear(self) -> None:
        self.entries.clear()

    def longest_shared(self, prompts: Sequence[Sequence[int]]) -> tuple[int, ...] | None:
        """The longest stored prefix of every prompt that leaves each at least one own token."""
        shortest = min(len(p) for p in prompts)
        best = None
        for key in self.entries:
            if len(key) < shortest and (best is None or len(key) > len(best)):
                if all(tuple(p[: len(key)]) == key for p in prompts):
                    best = key
        if best is not None:
            self.entries.move_to_end(best)
        return best

    def put(self, key: tuple[int, ...], layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.entries[key] = layers
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)


def common_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    first = prompts[0]
    length = min(len(p) for p in prompts)
    for p in prompts[1:]:
        i = 0
        while i < length and p[i] == first[i]:
            i += 1
        length = i
    return length


class GrowingLayer(DynamicLayer):
    """A key/value cache layer over preallocated buffers: a new token is written in place
    instead of concatenating the whole cache every step (DynamicLayer's torch.cat was 29% of a
    decode step at 8 rows x 500 tokens). Rows are right-aligned; `begin` drops leading columns
    no row attends to any more."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, spare: int = 64):
        super().__init__()
        self.lazy_initialization(keys, values)
        b, h, t, d = keys.shape
        self.capacity = t + spare
        self.key_buffer = keys.new_empty((b, h, self.capacity, d))
        self.value_buffer = values.new_empty((b, h, self.capacity, values.shape[-1]))
        self.key_buffer[:, :, :t] = keys
        self.value_buffer[:, :, :t] = values
        self.begin, self.end = 0, t
        self._views()

    def _views(self) -> None:
        self.keys = self.key_buffer[:, :, self.begin : self.end]
        self.values = self.value_buffer[:, :, self.begin : self.end]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        n = key_states.shape[-2]
        if self.end + n > self.capacity:  # grow by doubling what is kept
            kept = self.end - self.begin
            grown = GrowingLayer(self.keys, self.values, spare=max(64, kept + n))
            self.__dict__.update(grown.__dict__)
        self.key_buffer[:, :, self.end : self.end + n] = key_states
        self.value_buffer[:, :, self.end : self.end + n] = value_states
        self.end += n
        self._views()
        return self.keys, self.values

    def select(self, index: torch.Tensor) -> "GrowingLayer":
        return GrowingLayer(self.keys[index], self.values[index])

    def trim(self, columns: int) -> None:
        self.begin += columns
        self._views()


def _layers(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _cache(layers: list[tuple[torch.Tensor, torch.Tensor]]) -> DynamicCache:
    """A cache holding these tensors as they are (no copy; the model's next update appends)."""
    cache = DynamicCache()
    for keys, values in layers:
        layer = DynamicLayer()
        layer.lazy_initialization(keys, values)
        layer.keys, layer.values = keys, values
        cache.layers.append(layer)
    return cache


def _growing_cache(layers: list[GrowingLayer]) -> DynamicCache:
    cache = DynamicCache()
    cache.layers.extend(layers)
    return cache


def _left_pad(tensor: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    missing = length - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


class Decoder:
    """Continuous-batching decoder over one causal LM (see the module docstring)."""

    def __init__(self, model, eos_token_id: int, pad_token_id: int, *, max_rows: int,
                 prefix_cache: PrefixCache | None = None, min_prefix_tokens: int = 32,
                 lookahead: int = 2, stop_check: Callable[[list[int]], bool] | None = None):
        self.model = model
        self.eos = eos_token_id
        self.pad = pad_token_id
        self.max_rows = max(1, max_rows)
        self.prefix_cache = prefix_cache if prefix_cache is not None else PrefixCache()
        self.min_prefix_tokens = min_prefix_tokens
        self.lookahead = max(1, lookahead)
        self.stop_check = stop_check
        self.stats = DecodeStats()

    # -- token choice ------------------------------------------------------------------------
    def _choose(self, logits: torch.Tensor, rows: list[Row], temperature: float, top_p: float) -> list[int]:
        logits = logits.float()
        if temperature <= 0:
            return logits.argmax(dim=-1).tolist()
        scores = logits / temperature
        if top_p < 1.0:
            scores = TopPLogitsWarper(top_p)(None, scores)
        probs = torch.softmax(scores, dim=-1)
        return [int(torch.multinomial(probs[i], 1, generator=row.generator)) for i, row in enumerate(rows)]

    # -- prefill -----------------------------------------------------------------------------
    def _prefix(self, prompts: list[list[int]], shared: int):
        """(length, key/values, first) of the prefix these prompts reuse: a stored one, or the
        call's shared prefix computed now and stored (when it is long enough to pay off). When
        computed now, `first` holds the pass over the whole of prompts[0] it was cut from
        (key/values and last logits), so that prompt is not computed again; else None."""
        stored = self.prefix_cache.longest_shared(prompts)
        if stored is not None and len(stored) >= shared - self.min_prefix_tokens:
            return len(stored), self.prefix_cache.entries[stored], None
        if shared >= self.min_prefix_tokens and shared < min(len(p) for p in prompts):
            key = tuple(prompts[0][:shared])
            cache = DynamicCache()
            # the prefix's key/values are cut from a pass over a whole prompt, not computed alone:
            # CPU kernels pick their blocking by sequence length, and a prefix-only pass rounds
            # differently from the same positions inside the prompt (greedy texts then drift);
            # the suffix of any prompt computed on top of the cut prefix equals its own full pass
            out = self.model(input_ids=torch.tensor([list(prompts[0])]), past_key_values=cache, use_cache=True, logits_to_keep=1)
            self.stats.prefill_tokens += len(prompts[0])
            full = _layers(cache)
            layers = [(k[:, :, :shared].clone(), v[:, :, :shared].clone()) for k, v in full]
            self.prefix_cache.put(key, layers)
            return shared, layers, (full, out.logits[:, -1, :])
        if stored is not None:
            return len(stored), self.prefix_cache.entries[stored], None
        return 0, None, None

    def _prefill(self, prompts: list[list[int]], shared: int):
        """Key/values, mask, next positions and last logits of `prompts` (one row each)."""
        start, prefix, first = self._prefix(prompts, shared)
        suffixes = [p[start:] for p in prompts]
        width = max(len(s) for s in suffixes)
        b = len(prompts)
        ids = torch.full((b, width), self.pad, dtype=torch.long)
        suffix_mask = torch.zeros((b, width), dtype=torch.long)
        positions = torch.zeros((b, width), dtype=torch.long)
        for i, s in enumerate(suffixes):
            ids[i, width - len(s):] = torch.tensor(s)
            suffix_mask[i, width - len(s):] = 1
            positions[i, width - len(s):] = torch.arange(start, start + len(s))
        mask = torch.cat([torch.ones((b, start), dtype=torch.long), suffix_mask], dim=1)
        lengths = torch.tensor([len(p) for p in prompts])
        rows = slice(1, b) if first is not None else slice(0, b)  # prompts[0] is done when `first` is given
        if rows.stop - rows.start == 0:
            layers, logits = [], None
        else:
            count = rows.stop - rows.start
            cache = _cache([(k.expand(count, -1, -1, -1), v.expand(count, -1, -1, -1)) for k, v in prefix]) if prefix else DynamicCache()
            out = self.model(input_ids=ids[rows], attention_mask=mask[rows], position_ids=positions[rows], past_key_values=cache,
                             use_cache=True, logits_to_keep=1)
            self.stats.prefill_tokens += sum(len(s) for s in suffixes[rows])
            layers, logits = _layers(out.past_key_values), out.logits[:, -1, :]
        if first is None:
            return layers, mask, lengths, logits
        full, first_logits = first  # prompts[0]'s own pass, placed as row 0 of the same layout
        own = len(suffixes[0])
        def row0(t: torch.Tensor) -> torch.Tensor:  # prefix, holes, own suffix (right-aligned)
            return torch.cat([t[:, :, :start], t.new_zeros((1, t.shape[1], width - own, t.shape[3])), t[:, :, start:]], dim=2)

        placed = [(row0(k), row0(v)) for k, v in full]
        if layers:
            placed = [(torch.cat([k0, k]), torch.cat([v0, v])) for (k0, v0), (k, v) in zip(placed, layers)]
        logits = torch.cat([first_logits, logits]) if logits is not None else first_logits
        return placed, mask, lengths, logits

    # -- the loop ----------------------------------------------------------------------------
    def run(self, requests: Sequence[Request], max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
            on_done: Callable[[int, list[Row]], None] | None = None) -> list[list[Row]]:
        """Decode every request; returns, per request, its n rows (tokens and finish reason).
        `on_done(request_index, rows)` is called as soon as a request's rows have all ended."""
        began = time.perf_counter()
        results: list[list[Row | None]] = [[None] * r.n for r in requests]
        remaining = [r.n for r in requests]
        self.stats.prompt_tokens += sum(len(r.ids) for r in requests)
        shared = common_prefix_length([r.ids for r in requests]) if len(requests) > 1 else 0
        waiting = list(range(len(requests)))
        active: list[Row] = []
        layers: list[GrowingLayer] = []
        mask = torch.zeros((0, 0), dtype=torch.long)
        positions = torch.zeros(0, dtype=torch.long)
        pending = torch.zeros(0, dtype=torch.long)  # each row's last token, chosen but not yet in the cache
        if max_new_tokens <= 0:
            for i, r in enumerate(requests):
                results[i] = [Row(i, j, None, [], "length") for j in range(r.n)]
                if on_done:
                    on_done(i, results[i])
            return results

        while waiting or active:
            free = self.max_rows - len(active)
            admit: list[int] = []
            # look ahead a little past the next prompts and take the shortest first (less padding)
            window = sorted(waiting[: self.lookahead * self.max_rows], key=lambda i: (len(requests[i].ids), i))
            for i in window:
                if requests[i].n <= free or (not active and not admit):
                    admit.append(i)
                    free -= requests[i].n
            if admit:
                for i in admit:
                    waiting.remove(i)
                new_layers, new_mask, new_positions, logits = self._prefill([requests[i].ids for i in admit], shared)
                counts = torch.tensor([requests[i].n for i in admit])
                new_layers = [(k.repeat_interleave(counts, dim=0), v.repeat_interleave(counts, dim=0)) for k, v in new_layers]
                new_mask = new_mask.repeat_interleave(counts, dim=0)
                new_positions = new_positions.repeat_interleave(counts, dim=0)
                logits = logits.repeat_interleave(counts, dim=0)
                new_rows = []
                for i in admit:
                    for j in range(requests[i].n):
                        generator = None
                        if temperature > 0:
                            generator = torch.Generator().manual_seed((requests[i].seed * 1_000_003 + j) % (2**63 - 1))
                        new_rows.append(Row(i, j, generator))
                chosen = self._choose(logits, new_rows, temperature, top_p)
                # merge: right-align both caches to the longer one
                width = max(mask.shape[1], new_mask.shape[1])
                if active:
                    layers = [GrowingLayer(torch.cat([_left_pad(old.keys, width, 2), _left_pad(nk, width, 2)]),
                                           torch.cat([_left_pad(old.values, width, 2), _left_pad(nv, width, 2)]))
                              for old, (nk, nv) in zip(layers, new_layers)]
                    mask = torch.cat([_left_pad(mask, width, 1), _left_pad(new_mask, width, 1)])
                else:
                    layers, mask = [GrowingLayer(k, v) for k, v in new_layers], new_mask
                positions = torch.cat([positions, new_positions])
                fresh = len(active)  # only the admitted rows chose a token now; the others wait for the next step
                active = active + new_rows
                pending = torch.cat([pending, torch.tensor(chosen, dtype=torch.long)])
                self.stats.admissions += 1
            else:
                mask = torch.cat([mask, torch.ones((len(active), 1), dtype=torch.long)], dim=1)
                out = self.model(input_ids=pending[:, None], attention_mask=mask, position_ids=positions[:, None],
                                 past_key_values=_growing_cache(layers), use_cache=True, logits_to_keep=1)
                positions = positions + 1
                pending = torch.tensor(self._choose(out.logits[:, -1, :], active, temperature, top_p), dtype=torch.long)
                fresh = 0
                self.stats.steps += 1
            # record the tokens chosen in this pass (a row waiting through an admission already
            # holds its pending token: recording it again doubled it); rows that ended leave
            keep = list(range(fresh))
            for index, (row, token) in enumerate(zip(active, pending.tolist())):
                if index < fresh:
                    continue
                row.tokens.append(token)
                if token == self.eos or (self.stop_check is not None and self.stop_check(row.tokens)):
                    row.reason = "stop"
                elif len(row.tokens) >= max_new_tokens:
                    row.reason = "length"
                else:
                    keep.append(index)
                    continue
                results[row.request][row.sample] = row
                remaining[row.request] -= 1
                if remaining[row.request] == 0 and on_done is not None:
                    on_done(row.request, results[row.request])
            if len(keep) < len(active):
                index = torch.tensor(keep, dtype=torch.long)
                active = [active[i] for i in keep]
                pending, positions, mask = pending[index], positions[index], mask[index]
                layers = [layer.select(index) for layer in layers] if active else []
                if active:  # drop the columns no remaining row attends to
                    first = int(mask.any(dim=0).nonzero()[0])
                    if first:
                        mask = mask[:, first:]
                        for layer in layers:
                            layer.trim(first)
                else:
                    layers, mask = [], torch.zeros((0, 0), dtype=torch.long)
        self.stats.seconds += time.perf_counter() - began
        return results  # type: ignore[return-value]

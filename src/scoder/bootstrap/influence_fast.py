"""The fast path of the gradient features (`influence.method: fast`, the default): the same
features as the batch-1 reference (`method: loop`) up to float32 rounding, computed shard by
shard (docs in scoder.bootstrap.influence; the speed and its profile: benchmarks/influence_speed.py).

Where the reference's time went, and what this path does instead:
- the projection regenerated the D x k sign matrix for every batch (at D=921,600, k=8192:
  7.5G signs, then an int8 and a float32 copy of every 65,536-row block). Here the matrix is
  generated once per process, with the same generators, into bits (D*k/8 bytes: 900 MiB at
  that size, kept if it fits `projection_cache_mb`, else regenerated per pass), and every
  shard is projected in one pass that turns cache-sized tiles of bits into float32 signs just
  before their matmul;
- the gradients are the reference's where that is fastest: on the CPU each sample alone at its
  own length (batching padded samples measured no faster there: the matmuls of one ~650-token
  sample are large enough, and a batch only adds padding and memory); on an accelerator the
  hooked per-sample gradients of batches of the shard's samples sorted by length (less
  padding; the order depends only on the shard's content, so a shard's features never depend
  on which process computes it). Samples without response tokens are skipped (zero gradient,
  NaN loss, as the reference gives). What is left is the forward and backward themselves: the
  backward already computes no frozen weight's gradient and the output layer runs on response
  positions only (response_losses), and fusing it with the cross-entropy measured no faster.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
import torch

from scoder.bootstrap.influence import _collate, batched_gradients, loop_gradients, timed, trainable_parameters

# float32 +1.0 / -1.0 from a sign bit: (bit << 31) ^ 0xBF800000 -> 0x3F800000 (bit 1) or 0xBF800000 (bit 0)
_SIGN_BIT = -(2**31)
_ONE_XOR = 0xBF800000 - 2**32
_SHIFTS = 31 - torch.arange(32, dtype=torch.int32)  # bit j of a word to bit 31
_GENERATE_ENTRIES = 1 << 23  # signs drawn per generator call (a bool buffer of 8 MB)
_TILE_ROWS, _TILE_WORDS = 1024, 64  # a float32 tile of 1024 x 2048 signs (8 MB) per matmul


class PackedRademacherProjection:
    """The projection of `scoder.bootstrap.influence.RademacherProjection` (same blocks from
    the same generators, so the same matrix entry for entry), with the signs held as bits:
    row d of block b packs columns 32w..32w+31 into int32 word w (bit j = column 32w+j,
    1 = +1). `bool.random_()` keeps the lowest bit of each 32-bit Mersenne Twister draw, as
    `randint(0, 2)` does, without its 64-bit modulo."""

    _shared: dict[tuple, "PackedRademacherProjection"] = {}

    def __init__(self, dim: int, proj_dim: int, seed: int, block_rows: int = 65536, cache_mb: int = 1024,
                 threads: int | None = None):
        self.dim, self.proj_dim, self.seed, self.block_rows = dim, proj_dim, seed, block_rows
        self.words = math.ceil(proj_dim / 32)
        self.blocks = math.ceil(dim / block_rows)
        self.keep = dim * self.words * 4 <= cache_mb * 1024 * 1024
        self.threads = threads or torch.get_num_threads()
        self._packed: list[torch.Tensor] | None = None

    @classmethod
    def shared(cls, dim: int, proj_dim: int, seed: int, block_rows: int = 65536, cache_mb: int = 1024):
        """One instance per process and settings (the last one asked for), so a second call of
        compute_features in the same process does not generate the matrix again."""
        key = (dim, proj_dim, seed, block_rows, cache_mb)
        if key not in cls._shared:
            cls._shared.clear()
            cls._shared[key] = cls(dim, proj_dim, seed, block_rows, cache_mb)
        return cls._shared[key]

    def block(self, index: int) -> torch.Tensor:
        """Block `index` as packed bits: (rows, 4 * words) uint8."""
        rows = min(self.block_rows, self.dim - index * self.block_rows)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        packed = np.zeros((rows, self.words * 4), dtype=np.uint8)
        step = max(1, _GENERATE_ENTRIES // self.proj_dim)
        bits = torch.empty(min(step, rows), self.proj_dim, dtype=torch.bool)
        for start in range(0, rows, step):
            chunk = bits[: min(step, rows - start)]
            chunk.random_(generator=generator)  # consumes the stream in row-major order, as randint
            packed[start : start + chunk.shape[0], : math.ceil(self.proj_dim / 8)] = np.packbits(
                chunk.numpy(), axis=1, bitorder="little")
        return torch.from_numpy(packed)

    def _blocks(self, indices: Sequence[int]) -> list[torch.Tensor]:
        """Blocks generated on `threads` threads (each block has its own generator, drawing
        releases the GIL, and block() uses numpy for the rest, so no thread starts an OpenMP
        team of its own)."""
        with timed("projection: sign generation"):
            if self.threads <= 1 or len(indices) <= 1:
                return [self.block(i) for i in indices]
            with ThreadPoolExecutor(min(self.threads, len(indices))) as pool:
                return list(pool.map(self.block, indices))

    def signs(self, index: int) -> torch.Tensor:
        """Block `index` as int8 signs (for tests: equal to RademacherProjection.block)."""
        packed = self.block(index)
        bits = np.unpackbits(packed.numpy(), axis=1, bitorder="little")[:, : self.proj_dim]
        return torch.from_numpy(bits.astype(np.int8)) * 2 - 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.dim:
            raise ValueError(f"projection built for dimension {self.dim}, got {x.shape[1]}")
        x = x.to(torch.float32)
        if self.keep and self._packed is None:
            self._packed = self._blocks(range(self.blocks))
        out = torch.zeros(x.shape[0], self.proj_dim, dtype=torch.float64)
        tiles = [(start, min(_TILE_WORDS, self.words - start)) for start in range(0, self.words, _TILE_WORDS)]
        acc = [torch.empty(x.shape[0], 32 * width) for _, width in tiles]
        buffers = {width: torch.empty(_TILE_ROWS, width, 32, dtype=torch.int32) for _, width in tiles}
        group = 1 if self.keep else self.threads  # blocks generated together when not kept
        for first in range(0, self.blocks, group):
            indices = list(range(first, min(first + group, self.blocks)))
            packed = [self._packed[i] for i in indices] if self.keep else self._blocks(indices)
            for index, block in zip(indices, packed):
                # as the reference: float32 sums within a block, float64 across blocks
                for a in acc:
                    a.zero_()
                for row in range(0, block.shape[0], _TILE_ROWS):
                    words = block[row : row + _TILE_ROWS].view(torch.int32)
                    start = index * self.block_rows + row
                    rows = x[:, start : start + words.shape[0]]
                    for (word, width), a in zip(tiles, acc):
                        tile = buffers[width][: words.shape[0]]
                        with timed("projection: bits to float32 signs"):
                            torch.bitwise_left_shift(words[:, word : word + width].unsqueeze(-1), _SHIFTS, out=tile)
                            tile.bitwise_and_(_SIGN_BIT).bitwise_xor_(_ONE_XOR)
                        with timed("projection: matmul"):
                            a.addmm_(rows, tile.view(torch.float32).view(tile.shape[0], 32 * width))
                with timed("projection: matmul"):
                    out += torch.cat(acc, dim=1)[:, : self.proj_dim]
        return (out / math.sqrt(self.proj_dim)).to(torch.float32)


# --- per-sample gradients of a shard -------------------------------------------------------

def shard_gradients(model, encoded: Sequence[tuple[list[int], list[int]]], pad_id: int, batch_size: int,
                    bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-sample gradients of the response-only losses, n x D over the sorted trainable
    parameters; losses) of one shard's encoded samples, in their order. Samples without a
    response token get a zero gradient and a NaN loss without a forward. `batch_size` 1: each
    sample alone at its own length (loop_gradients, the reference's arithmetic); larger: the
    hooked per-sample gradients of batched_gradients on batches of the shard's samples sorted
    by length (ties by position), so the batches depend on the shard's content only."""
    params = trainable_parameters(model)
    device = next(model.parameters()).device
    grads = torch.zeros(len(encoded), sum(p.numel() for _, p in params), dtype=torch.float32, device=device)
    losses = torch.full((len(encoded),), float("nan"), dtype=torch.float32, device=device)
    usable = [i for i, (_, labels) in enumerate(encoded) if any(label != -100 for label in labels[1:])]
    order = sorted(usable, key=lambda i: (-len(encoded[i][0]), i))
    gradients = loop_gradients if batch_size == 1 else batched_gradients
    for start in range(0, len(order), batch_size):
        members = order[start : start + batch_size]
        batch = {key: value.to(device) for key, value in _collate([encoded[i] for i in members], pad_id).items()}
        rows = torch.tensor(members, device=device)
        grads[rows], losses[rows] = (t.float() for t in gradients(model, batch, bf16))
    return grads, losses

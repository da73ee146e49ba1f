"""MinHash LSH near-deduplication with datasketch.

Signatures are computed where the functions are extracted (in the worker processes), from
shingles of `ngram` consecutive code tokens; deduplication then runs once, in a stable
order, keeping the first member of every near-duplicate group. LSH only proposes
candidates, so each candidate is confirmed by its estimated Jaccard similarity.
"""

from __future__ import annotations

import re
import zlib
from typing import Iterable

import numpy as np
from datasketch import MinHash, MinHashLSH
from datasketch.minhash import _fmix  # datasketch is pinned (2.0.0); the test compares with MinHash

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
MINHASH_SEED = 1  # fixed: signatures must be comparable across runs and processes
MINHASH_SCHEME = "affine32"  # datasketch 2 default; stated so stored signatures stay comparable
_MAX_HASH = np.uint32((1 << 32) - 1)  # affine32's empty value


def crc32_hash(data: bytes) -> int:
    # datasketch's default (sha1) is several times slower per shingle; 32 bits are enough
    # for shingle identity and crc32 is deterministic across processes, unlike hash().
    return zlib.crc32(data)


def shingles(code: str, ngram: int) -> set[bytes]:
    tokens = TOKEN_RE.findall(code)
    if len(tokens) <= ngram:
        return {" ".join(tokens).encode("utf-8", "surrogatepass")}
    # the windows tokens[i : i + ngram], joined in C by map over zip; encoded once per distinct one
    windows = set(map(" ".join, zip(*(tokens[k:] for k in range(ngram)))))
    return {window.encode("utf-8", "surrogatepass") for window in windows}


_PERMUTATIONS: dict[int, np.ndarray] = {}


def _permutations(num_perm: int) -> np.ndarray:
    """MinHash's permutations for `num_perm` at MINHASH_SEED, drawn once per process (drawing
    them is most of a fresh MinHash's cost); the same arrays every new MinHash would draw."""
    if num_perm not in _PERMUTATIONS:
        _PERMUTATIONS[num_perm] = MinHash(num_perm=num_perm, seed=MINHASH_SEED, scheme=MINHASH_SCHEME).permutations
    return _PERMUTATIONS[num_perm]


def signature(code: str, num_perm: int, ngram: int) -> np.ndarray:
    """The MinHash hash values of `code`'s shingles: what MinHash(num_perm, seed=MINHASH_SEED,
    hashfunc=crc32_hash, scheme=MINHASH_SCHEME).update_batch(shingles) holds, computed as
    datasketch 2.0's update_batch does (crc32 of each shingle, its fmix pre-mix, the affine
    permutations, the minimum) with the hashing in one C-level map and the permutations drawn
    once (tests/bootstrap/pool/test_prescan.py checks it against MinHash itself)."""
    a, b = _permutations(num_perm)
    grams = shingles(code, ngram)
    hashes = np.fromiter(map(zlib.crc32, grams), dtype=np.uint32, count=len(grams)).reshape(-1, 1)
    return np.minimum(np.full(num_perm, _MAX_HASH, dtype=np.uint32), (_fmix(hashes, 32) * a + b).min(axis=0))


def near_dedup(
    items: Iterable[tuple[str, np.ndarray]], threshold: float, num_perm: int
) -> tuple[list[str], dict[str, str]]:
    """Return (kept ids in input order, {dropped id: id of the earliest kept near-duplicate}).

    The LSH is datasketch's MinHashLSH banding (its bands for `threshold` and `num_perm`):
    the candidates of a signature are the kept ones that equal it on a whole band, as
    `MinHashLSH.query` returns them, here from one dict per band keyed by the band's bytes
    (3x faster than MinHashLSH's storage layers); the first candidate in input order whose
    estimated Jaccard similarity (`MinHash.jaccard`: the share of equal hash values) reaches
    the threshold is the match (tests/bootstrap/pool/test_dedup.py compares with MinHashLSH)."""
    bands = MinHashLSH(threshold=threshold, num_perm=num_perm).hashranges
    tables: list[dict[bytes, list[int]]] = [{} for _ in bands]
    kept: list[str] = []
    values: list[np.ndarray] = []  # hash values of kept[i]
    dropped: dict[str, str] = {}
    for item_id, hashvalues in items:
        hashvalues = np.asarray(hashvalues, dtype=np.uint32)
        if len(hashvalues) != num_perm:
            raise ValueError(f"signature of {item_id} has {len(hashvalues)} values, expected {num_perm}")
        keys = [hashvalues[start:end].tobytes() for start, end in bands]
        candidates: set[int] = set()
        for table, key in zip(tables, keys):
            found = table.get(key)
            if found:
                candidates.update(found)
        match = None
        # a set's order follows hashing; checking candidates in input order makes the match reproducible
        for position in sorted(candidates):
            if float(np.count_nonzero(hashvalues == values[position])) / float(num_perm) >= threshold:
                match = kept[position]
                break
        if match is None:
            for table, key in zip(tables, keys):
                table.setdefault(key, []).append(len(kept))
            values.append(hashvalues)
            kept.append(item_id)
        else:
            dropped[item_id] = match
    return kept, dropped

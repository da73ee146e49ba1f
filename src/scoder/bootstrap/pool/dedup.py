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
from datasketch import LeanMinHash, MinHash, MinHashLSH

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
MINHASH_SEED = 1  # fixed: signatures must be comparable across runs and processes
MINHASH_SCHEME = "affine32"  # datasketch 2 default; stated so stored signatures stay comparable


def crc32_hash(data: bytes) -> int:
    # datasketch's default (sha1) is several times slower per shingle; 32 bits are enough
    # for shingle identity and crc32 is deterministic across processes, unlike hash().
    return zlib.crc32(data)


def shingles(code: str, ngram: int) -> set[bytes]:
    tokens = TOKEN_RE.findall(code)
    if len(tokens) <= ngram:
        return {" ".join(tokens).encode("utf-8", "surrogatepass")}
    return {
        " ".join(tokens[i : i + ngram]).encode("utf-8", "surrogatepass")
        for i in range(len(tokens) - ngram + 1)
    }


def signature(code: str, num_perm: int, ngram: int) -> np.ndarray:
    minhash = MinHash(num_perm=num_perm, seed=MINHASH_SEED, hashfunc=crc32_hash, scheme=MINHASH_SCHEME)
    minhash.update_batch(list(shingles(code, ngram)))
    return minhash.hashvalues


def near_dedup(
    items: Iterable[tuple[str, np.ndarray]], threshold: float, num_perm: int
) -> tuple[list[str], dict[str, str]]:
    """Return (kept ids in input order, {dropped id: id of the earliest kept near-duplicate})."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept: list[str] = []
    signatures: dict[str, LeanMinHash] = {}
    position: dict[str, int] = {}
    dropped: dict[str, str] = {}
    for item_id, hashvalues in items:
        minhash = LeanMinHash(seed=MINHASH_SEED, hashvalues=hashvalues, scheme=MINHASH_SCHEME)
        match = None
        # LSH answers with a set, whose order follows the per-process string hash seed;
        # checking candidates in input order makes the reported match reproducible
        for candidate in sorted(lsh.query(minhash), key=position.__getitem__):
            if minhash.jaccard(signatures[candidate]) >= threshold:
                match = candidate
                break
        if match is None:
            lsh.insert(item_id, minhash, check_duplication=False)
            signatures[item_id] = minhash
            position[item_id] = len(kept)
            kept.append(item_id)
        else:
            dropped[item_id] = match
    return kept, dropped

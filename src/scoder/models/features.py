"""Instruction features for selection: sentence embeddings, cached by model and data hash."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from scoder.models.embed import embed_texts, load_embedder
from scoder.core.io import write_npy

log = logging.getLogger(__name__)


def instruction_text(record: dict, fields: Sequence[str]) -> str:
    """The first non-empty of `fields` (e.g. instruction + input for Code Alpaca style)."""
    for name in fields:
        value = record.get(name)
        if isinstance(value, str) and value.strip():
            return value
    raise ValueError(f"record {record.get('id', '?')} has none of the text fields {list(fields)}")


def encode_cached(texts: list[str], model: str, cache_dir: str | Path, batch_size: int = 64) -> np.ndarray:
    digest = hashlib.sha256()
    digest.update(model.encode())
    for text in texts:
        digest.update(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
    path = Path(cache_dir) / f"features-{digest.hexdigest()[:20]}.npy"
    if path.exists():
        log.info("features from cache %s", path)
        return np.load(path)
    vectors = embed_texts(load_embedder(model), texts, batch_size=batch_size, progress=True)
    write_npy(path, vectors)
    return vectors

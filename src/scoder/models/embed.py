"""Sentence embeddings with sentence-transformers (MiniLM shipped offline, any hub model).

INSTRUCTOR checkpoints are loaded with sentence-transformers itself (InstructorEmbedding
1.0.1 is broken with sentence-transformers >= 3): the instruction goes in as `prompt=` and,
as INSTRUCTOR was trained, mean pooling excludes the prompt tokens.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

from scoder.models.registry import resolve

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def load_embedder(reference: str, pool_without_prompt: bool = False, device: str = "cpu"):
    import torch
    from sentence_transformers import SentenceTransformer

    resolved = resolve(reference)
    try:
        # fp32, not the checkpoint's dtype (transformers' default): no params section names a
        # precision for embeddings, and clustering and selection should not vary with it
        model = SentenceTransformer(resolved.path, device=device, model_kwargs={"dtype": torch.float32})
    except Exception as exc:  # the library raises many types (OSError, ValueError, HTTP errors)
        raise ValueError(
            f"cannot load embedding model '{reference}' (resolved to '{resolved.path}'): {exc}"
        ) from exc
    if pool_without_prompt:
        model.set_pooling_include_prompt(False)
    log.info("embedding model %s loaded (dim %d)", reference, model.get_embedding_dimension())
    return model


def embed_texts(
    model, texts: list[str], prompt: str = "", batch_size: int = 64, progress: bool = False
) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text."""
    if not texts:
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    vectors = model.encode(
        texts,
        prompt=prompt or None,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=progress,
    )
    return np.asarray(vectors, dtype=np.float32)

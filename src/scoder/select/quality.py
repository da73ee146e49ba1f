"""Selection quality of any subset, from L2-normalised features."""

from __future__ import annotations

import numpy as np
import torch


def max_similarity_to(features: torch.Tensor, subset: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    """For every feature, its highest cosine to a row of `subset` (blockwise over features)."""
    out = torch.empty(features.shape[0], dtype=features.dtype)
    for start in range(0, features.shape[0], batch_size):
        block = features[start : start + batch_size] @ subset.T
        out[start : start + batch_size] = block.max(dim=1).values
    return out


def coverage(features: np.ndarray, selected: np.ndarray, batch_size: int = 8192) -> float:
    """Mean over the dataset of the max cosine to the subset (higher covers better)."""
    f = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    return float(max_similarity_to(f, f[torch.as_tensor(selected)], batch_size).mean())


def diversity(features: np.ndarray, selected: np.ndarray) -> float:
    """Mean pairwise cosine inside the subset, self-pairs excluded (lower is more diverse)."""
    s = torch.from_numpy(np.ascontiguousarray(features[np.asarray(selected)], dtype=np.float32))
    m = s.shape[0]
    if m < 2:
        return 0.0
    total = (s.sum(dim=0) @ s.sum(dim=0)).item() - float((s * s).sum())
    return total / (m * (m - 1))

"""Selection quality of any subset, from L2-normalised features."""

from __future__ import annotations

import numpy as np
import torch

from scoder.subset.parametric import topk_blockwise


def coverage(features: np.ndarray, selected: np.ndarray, batch_size: int = 8192) -> float:
    """Mean over the dataset of the max cosine to the subset (higher covers better)."""
    f = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    best, _ = topk_blockwise(f, f[torch.as_tensor(selected)], 1, batch_size)
    return float(best.mean())


def diversity(features: np.ndarray, selected: np.ndarray) -> float:
    """Mean pairwise cosine inside the subset, self-pairs excluded (lower is more diverse)."""
    s = torch.from_numpy(np.ascontiguousarray(features[np.asarray(selected)], dtype=np.float32))
    m = s.shape[0]
    if m < 2:
        return 0.0
    total = (s.sum(dim=0) @ s.sum(dim=0)).item() - float((s * s).sum())
    return total / (m * (m - 1))

"""Small summaries of numbers for metrics files."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def distribution(values: Sequence[float]) -> dict:
    """count, mean and quartiles of a list of numbers (metrics of scores and influences)."""
    if not values:
        return {"count": 0}
    a = np.asarray(values, dtype=float)
    q = np.percentile(a, [0, 25, 50, 75, 100])
    return {"count": len(values), "mean": round(float(a.mean()), 4), "min": round(float(q[0]), 4), "p25": round(float(q[1]), 4),
            "median": round(float(q[2]), 4), "p75": round(float(q[3]), 4), "max": round(float(q[4]), 4)}

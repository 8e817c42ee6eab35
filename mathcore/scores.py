"""Score normalisation shared by the stages that put two scales on one footing.

Hybrid search (the givens agreement over fused scores), the cross-scorer's fusion with the
first stage and reranker training all z-score a query's candidates the same way.

Example:
    >>> zscores([1.0, 2.0, 3.0]).round(4).tolist()
    [-1.2247, 0.0, 1.2247]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def zscores(values: Sequence[float] | np.ndarray,
            over: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """*values* less the mean of *over*, divided by its (population) standard deviation.

    Args:
        values: the scores to normalise.
        over: the scores whose mean and spread define the scale (default: *values*), e.g. a
            query's first candidates when deeper ones are put on the same scale.

    Returns:
        float64 z-scores, one per value; all 0 when *over* is constant, has one value or
        is empty.
    """
    v = np.asarray(values, dtype=np.float64)
    ref = v if over is None else np.asarray(over, dtype=np.float64)
    spread = ref.std() if ref.size else 0.0
    return (v - ref.mean()) / spread if spread > 0 else np.zeros_like(v)

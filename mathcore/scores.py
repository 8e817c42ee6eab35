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


def check_weight(weight: float, what: str) -> float:
    """*weight* itself if it is usable as the weight of a rescoring term (finite, 0 or more).

    Raises:
        ValueError: for a negative or non-finite weight, naming *what* it weighs.
    """
    if not np.isfinite(weight) or weight < 0:
        raise ValueError(f"the {what} weight must be a non-negative number, got {weight}")
    return weight


def rank_with_terms(scores: np.ndarray, rows: np.ndarray, terms: np.ndarray,
                    k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first *k* candidates of each row by z(score) + term (z over the row's live
    candidates, row id >= 0; ties keep the given order).

    Returns:
        ``(scores [n, k] float64, rows [n, k] int64)``; padding has row id -1 and score -inf.
    """
    scores = np.asarray(scores, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    n = rows.shape[0]
    out_s = np.full((n, k), -np.inf)
    out_r = np.full((n, k), -1, dtype=np.int64)
    for i in range(n):
        live = np.flatnonzero(rows[i] >= 0)
        if not live.size:
            continue
        fused = zscores(scores[i, live]) + terms[i, live]
        order = np.argsort(-fused, kind="stable")[:k]
        out_s[i, :order.size] = fused[order]
        out_r[i, :order.size] = rows[i, live[order]]
    return out_s, out_r

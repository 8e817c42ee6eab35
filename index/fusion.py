"""Fusion of several rankings of the same queries (e.g. BM25 + dense) into one.

A ranking is the ``(scores [n, m], ids [n, m])`` pair that every index ``search`` returns: row
``i`` holds query ``i``'s candidates, id -1 marks padding (ignored). Rankings may have different
widths ``m`` but must cover the same ``n`` queries; ids must be unique within a row. Everything
is vectorised over the whole batch (one sort of all candidates), so fusing 1000 queries x a few
hundred candidates costs milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from index._common import check_k

NORMALIZATIONS = ("minmax", "zscore")
Ranking = tuple[np.ndarray, np.ndarray]


def _check_rankings(rankings: Sequence[Ranking]) -> list[tuple[np.ndarray, np.ndarray]]:
    if not isinstance(rankings, (list, tuple)) or len(rankings) == 0:
        raise ValueError("rankings must be a non-empty list of (scores, ids) pairs")
    out = []
    for i, pair in enumerate(rankings):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"ranking {i} must be a (scores, ids) pair")
        scores, ids = np.asarray(pair[0], dtype=np.float64), np.asarray(pair[1])
        if scores.ndim != 2 or scores.shape != ids.shape:
            raise ValueError(
                f"ranking {i}: scores {scores.shape} and ids {ids.shape} must be equal 2-D shapes"
            )
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"ranking {i}: ids must be integers, got {ids.dtype}")
        if scores.shape[0] != np.shape(rankings[0][0])[0]:
            raise ValueError(
                f"ranking {i} has {scores.shape[0]} queries, "
                f"ranking 0 has {np.shape(rankings[0][0])[0]}"
            )
        out.append((scores, ids.astype(np.int64, copy=False)))
    return out


def _check_weights(weights: Sequence[float] | None, m: int) -> np.ndarray:
    if weights is None:
        return np.ones(m)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (m,) or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(
            f"weights must be {m} finite non-negative numbers (one per ranking), got {weights!r}"
        )
    return w


def _ranks(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ids of each row sorted best first (padding last) and their 1-based ranks (0 = padding)."""
    valid = ids >= 0
    order = np.lexsort((-scores, ~valid), axis=-1)
    sorted_ids = np.take_along_axis(ids, order, axis=1)
    ranks = np.broadcast_to(np.arange(1, ids.shape[1] + 1), ids.shape)
    return sorted_ids, np.where(sorted_ids >= 0, ranks, 0)


def _group_sum(ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sums ``values`` per (row, id) over ids >= 0; returns (rows, ids, sums)."""
    n, m = ids.shape
    order = np.argsort(ids, axis=1, kind="stable")
    flat_ids = np.take_along_axis(ids, order, axis=1).ravel()
    flat_v = np.take_along_axis(values, order, axis=1).ravel()
    rows = np.repeat(np.arange(n), m)
    keep = flat_ids >= 0
    flat_ids, flat_v, rows = flat_ids[keep], flat_v[keep], rows[keep]
    if flat_ids.size == 0:
        return rows, flat_ids, flat_v
    first = np.ones(flat_ids.size, dtype=bool)
    first[1:] = (flat_ids[1:] != flat_ids[:-1]) | (rows[1:] != rows[:-1])
    starts = np.flatnonzero(first)
    return rows[starts], flat_ids[starts], np.add.reduceat(flat_v, starts)


def _top_k(
    n: int, k: int, rows: np.ndarray, ids: np.ndarray, scores: np.ndarray, pad: float
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` (row, id, score) triples per row; ties broken by the smaller id."""
    out_s = np.full((n, k), pad, dtype=np.float64)
    out_i = np.full((n, k), -1, dtype=np.int64)
    if rows.size == 0:
        return out_s, out_i
    order = np.lexsort((ids, -scores, rows))
    rows, ids, scores = rows[order], ids[order], scores[order]
    counts = np.bincount(rows, minlength=n)
    pos = np.arange(rows.size) - (np.cumsum(counts) - counts)[rows]
    keep = pos < k
    out_s[rows[keep], pos[keep]] = scores[keep]
    out_i[rows[keep], pos[keep]] = ids[keep]
    return out_s, out_i


def rrf(
    rankings: Sequence[Ranking], k: int, c: int = 60, weights: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal rank fusion (Cormack et al., 2009): ``score(d) = sum_i w_i / (c + rank_i(d))``.

    Ranks are 1-based positions by descending score within each row, padding ignored, so this
    equals ``ranx.fuse(runs, method="rrf", params={"k": c})`` for unit weights.

    Args:
        rankings: ``(scores, ids)`` pairs, one per system.
        k: fused results per query.
        c: rank offset (60 in the paper and in ranx).
        weights: one non-negative weight per ranking (default 1).

    Returns:
        ``(scores [n, k] float64, ids [n, k] int64)``, best first, ties by smaller id; padding
        has id -1 and score 0.
    """
    k = check_k(k)
    if isinstance(c, bool) or not isinstance(c, (int, float)) or c < 0:
        raise ValueError(f"c must be a number >= 0, got {c!r}")
    rankings = _check_rankings(rankings)
    w = _check_weights(weights, len(rankings))
    all_ids, contrib = [], []
    for (scores, ids), weight in zip(rankings, w, strict=True):
        sorted_ids, ranks = _ranks(scores, ids)
        all_ids.append(sorted_ids)
        contrib.append(np.where(ranks > 0, weight / (c + np.maximum(ranks, 1)), 0.0))
    n = rankings[0][0].shape[0]
    rows, ids, sums = _group_sum(np.concatenate(all_ids, axis=1), np.concatenate(contrib, axis=1))
    return _top_k(n, k, rows, ids, sums, pad=0.0)


def _normalise(scores: np.ndarray, valid: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-row normalised scores (0 on padding) and each row's normalised minimum (0 if empty)."""
    count = valid.sum(axis=1)
    has = count > 0
    with np.errstate(invalid="ignore", over="ignore"):
        if how == "minmax":
            lo = np.where(has, np.where(valid, scores, np.inf).min(axis=1), 0.0)
            hi = np.where(has, np.where(valid, scores, -np.inf).max(axis=1), 0.0)
            ok = hi > lo  # a row whose candidates all score the same (or has one) maps them to 1
            norm = np.where(
                ok[:, None], (scores - lo[:, None]) / np.where(ok, hi - lo, 1.0)[:, None], 1.0
            )
        else:
            mean = np.where(valid, scores, 0.0).sum(axis=1) / np.maximum(count, 1)
            centred = np.where(valid, scores - mean[:, None], 0.0)
            std = np.sqrt((centred**2).sum(axis=1) / np.maximum(count, 1))
            ok = std > 0
            norm = np.where(ok[:, None], centred / np.where(ok, std, 1.0)[:, None], 0.0)
    norm = np.where(valid, norm, 0.0)
    row_min = np.where(has, np.where(valid, norm, np.inf).min(axis=1), 0.0)
    return norm, row_min


def convex(
    rankings: Sequence[Ranking],
    k: int,
    weights: Sequence[float] | None = None,
    normalize: str = "minmax",
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted sum of per-query normalised scores (convex combination when weights sum to 1).

    Each system's scores are normalised per query over its own candidates (``"minmax"`` to
    [0, 1], or ``"zscore"``); a candidate missing from a system's list gets that list's minimum
    normalised score for the query (0 for an empty list).

    Args:
        rankings: ``(scores, ids)`` pairs, one per system.
        k: fused results per query.
        weights: one non-negative weight per ranking (default 1).
        normalize: ``"minmax"`` or ``"zscore"``.

    Returns:
        ``(scores [n, k] float64, ids [n, k] int64)``, best first, ties by smaller id; padding
        has id -1 and score -inf.
    """
    k = check_k(k)
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    rankings = _check_rankings(rankings)
    w = _check_weights(weights, len(rankings))
    n = rankings[0][0].shape[0]
    base = np.zeros(n)
    all_ids, contrib = [], []
    for (scores, ids), weight in zip(rankings, w, strict=True):
        valid = ids >= 0
        norm, row_min = _normalise(scores, valid, normalize)
        base += weight * row_min
        all_ids.append(ids)
        contrib.append(np.where(valid, weight * (norm - row_min[:, None]), 0.0))
    rows, ids, sums = _group_sum(np.concatenate(all_ids, axis=1), np.concatenate(contrib, axis=1))
    return _top_k(n, k, rows, ids, sums + base[rows], pad=-np.inf)

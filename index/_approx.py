"""Approximate FAISS indexes (HNSW, IVF, IVF-PQ) for :class:`index.vectors.VectorIndex`.

FAISS labels are *positions* (row numbers into the caller-id array ``ids.npy``), not the
caller's ids: a removed id can then be added again without its old vector resurfacing from
an HNSW graph, which cannot delete nodes.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from index._common import require_faiss
from index._exact import pad_results

logger = logging.getLogger(__name__)

HNSW_DEFAULTS: dict[str, Any] = {"M": 32, "efConstruction": 200, "efSearch": 128}
IVF_DEFAULTS: dict[str, Any] = {"nlist": None, "nprobe": 16, "train_size": None, "seed": 0}
IVFPQ_DEFAULTS: dict[str, Any] = {**IVF_DEFAULTS, "pq_m": None, "pq_bits": 8}
PQ_DIMS_PER_CODE = 8
"""Default ``pq_m``: one code per 8 dimensions (48 one-byte codes for 384 dimensions)."""
MIN_POINTS_PER_LIST = 39
"""FAISS warns when k-means gets fewer training points than this per centroid."""
TRAIN_POINTS_PER_LIST = 64


def default_nlist(n: int) -> int:
    """About ``4 * sqrt(n)`` lists, but never fewer than 39 training points per list."""
    return int(max(1, min(round(4 * math.sqrt(n)), n // MIN_POINTS_PER_LIST)))


def new_hnsw(dim: int, params: dict[str, Any]) -> Any:
    """An empty ``IndexHNSWFlat`` with inner-product metric."""
    faiss = require_faiss()
    index = faiss.IndexHNSWFlat(dim, int(params["M"]), faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = int(params["efConstruction"])
    index.hnsw.efSearch = int(params["efSearch"])
    return index


def new_ivf(dim: int, vectors: np.ndarray, params: dict[str, Any], pq: bool = False) -> Any:
    """An ``IndexIVFFlat`` (inner product, spherical k-means) trained on ``vectors``, or with
    *pq* an ``IndexIVFPQ`` (its product quantizer trained on the same sample).

    ``params["nlist"]`` None becomes :func:`default_nlist` of the training set and is written
    back into ``params`` (``pq_m`` None likewise becomes ``dim / 8``). k-means sees at most
    ``train_size`` vectors (default 64 per list, and for PQ at least 64 per code value), a
    seeded random sample, so building stays affordable at millions of vectors.

    Raises:
        ValueError: fewer vectors than lists (or than PQ code values), or ``pq_m`` not
            dividing ``dim``.
    """
    faiss = require_faiss()
    n = vectors.shape[0]
    kind = "ivfpq" if pq else "ivf"
    nlist = params["nlist"] if params["nlist"] is not None else default_nlist(n)
    if nlist > n:
        raise ValueError(
            f"kind={kind!r} needs at least nlist={nlist} vectors in its first add, got {n}"
        )
    params["nlist"] = int(nlist)
    train_size = params["train_size"] or TRAIN_POINTS_PER_LIST * nlist
    if pq:
        m = params["pq_m"] if params["pq_m"] is not None else max(1, dim // PQ_DIMS_PER_CODE)
        if dim % m:
            raise ValueError(f"pq_m={m} must divide the dimension {dim}")
        params["pq_m"] = int(m)
        codes = 1 << int(params["pq_bits"])
        if n < codes:
            raise ValueError(f"kind='ivfpq' with pq_bits={params['pq_bits']} needs at least "
                             f"{codes} vectors in its first add, got {n}")
        train_size = params["train_size"] or max(train_size, TRAIN_POINTS_PER_LIST * codes)
    sample = vectors
    if n > train_size:
        rng = np.random.default_rng(params["seed"])
        sample = vectors[np.sort(rng.choice(n, size=int(train_size), replace=False))]
    quantizer = faiss.IndexFlatIP(dim)
    if pq:
        index = faiss.IndexIVFPQ(quantizer, dim, int(nlist), int(params["pq_m"]),
                                 int(params["pq_bits"]), faiss.METRIC_INNER_PRODUCT)
        index.pq.cp.seed = int(params["seed"])
    else:
        index = faiss.IndexIVFFlat(quantizer, dim, int(nlist), faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = int(params["seed"])
    logger.info("training %s: %d lists on %d vectors", kind, nlist, sample.shape[0])
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return index


def add(index: Any, kind: str, vectors: np.ndarray, positions: np.ndarray) -> None:
    """Adds vectors under the given positions."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if kind == "hnsw":
        # HNSW labels are implicit (0..ntotal-1); positions are appended in order, so they match.
        if int(index.ntotal) != int(positions[0]):
            raise RuntimeError(f"HNSW index holds {index.ntotal} rows, expected {positions[0]}")
        index.add(x)
    else:
        index.add_with_ids(x, np.ascontiguousarray(positions, dtype=np.int64))


def remove(index: Any, kind: str, positions: np.ndarray) -> None:
    """Drops positions from an IVF index; HNSW cannot delete, its rows stay as tombstones."""
    if kind != "hnsw" and positions.size:
        index.remove_ids(np.ascontiguousarray(positions, dtype=np.int64))


def search(
    index: Any,
    kind: str,
    params: dict[str, Any],
    queries: np.ndarray,
    k: int,
    alive: np.ndarray,
    n_tombstones: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Searches a FAISS index, dropping tombstoned positions.

    With ``n_tombstones`` dead rows still inside the index (HNSW), it asks FAISS for
    ``k + n_tombstones`` results so that ``k`` live ones survive the filter.

    Returns:
        ``(scores [n, k] float32, positions [n, k] int64)``, best first, -1 / -inf padded.
    """
    n = queries.shape[0]
    out_s, out_p = pad_results(n, k)
    kk = min(k + n_tombstones, int(index.ntotal))
    if kk == 0 or n == 0:
        return out_s, out_p
    if kind == "hnsw":
        index.hnsw.efSearch = max(int(params["efSearch"]), kk)
    else:
        index.nprobe = min(int(params["nprobe"]), int(index.nlist))
    scores, labels = index.search(queries, kk)
    valid = labels >= 0
    valid &= alive[np.clip(labels, 0, None)]
    # Stable sort on "invalid" moves live hits to the front, keeping FAISS's score order.
    order = np.argsort(~valid, axis=1, kind="stable")[:, :k]
    keep = np.take_along_axis(valid, order, axis=1)
    width = order.shape[1]
    out_s[:, :width] = np.where(keep, np.take_along_axis(scores, order, axis=1), -np.inf)
    out_p[:, :width] = np.where(keep, np.take_along_axis(labels, order, axis=1), -1)
    return out_s, out_p

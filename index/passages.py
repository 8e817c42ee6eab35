"""Passage vectors: a long answer held as several vectors, one per window of the encoder.

An encoder reads a fixed number of tokens (all-MiniLM-L6-v2: 256); an answer longer than that
is otherwise encoded by its first window only.  A *passage index* (``index build --passages``)
holds one vector per overlapping window instead (:meth:`retriever.encoder.Encoder.encode_passages`),
and a record scores by its best passage.

The map from passage to record lives in the vector ids themselves::

    passage id = rowid * SLOTS + passage number      (0 <= passage number < MAX_PASSAGES)
    rowid      = passage id // SLOTS

so ``dense/`` keeps its files (``ids.npy`` holds passage ids), removing a record removes every id
in its range, and pending chunks of an interrupted build hold passage ids from which their
records are known.  An index without passages (no ``passages`` in its manifest's ``dense``
section) holds one vector per record under the record's rowid, as before.

Example:
    >>> passage_ids(np.array([7, 9]), np.array([2, 1]))
    array([448, 449, 576])
    >>> record_rows(np.array([449, 576, -1]), passages=True)
    array([ 7,  9, -1])
"""

from __future__ import annotations

import numpy as np

SLOTS = 64
"""Passage ids per record: ``rowid * SLOTS + passage number``."""
MAX_PASSAGES = 32
"""Passages kept per record: the first 32 windows (with MiniLM's 254 tokens at the default
stride of 127, the first ~4,100 tokens, some 12,000 characters); the rest of a longer answer is
not encoded. At most :data:`SLOTS`."""


def passage_ids(rowids: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The passage ids of records *rowids* holding *counts* passages each, record by record.

    Raises:
        ValueError: for a count outside 1..MAX_PASSAGES.
    """
    rowids = np.asarray(rowids, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    if counts.size and (counts.min() < 1 or counts.max() > MAX_PASSAGES):
        raise ValueError(f"passages per record must be 1..{MAX_PASSAGES}, got "
                         f"{int(counts.min())}..{int(counts.max())}")
    starts = np.repeat(rowids * SLOTS, counts)
    offsets = np.arange(starts.size) - np.repeat(np.cumsum(counts) - counts, counts)
    return starts + offsets


def record_rows(ids: np.ndarray, passages: bool) -> np.ndarray:
    """The store rowids of vector ids (the ids themselves without passages); -1 stays -1."""
    ids = np.asarray(ids, dtype=np.int64)
    if not passages:
        return ids
    return np.where(ids >= 0, ids // SLOTS, -1)


def best_per_record(scores: np.ndarray, ids: np.ndarray,
                    k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Passage hits to record hits: each record once, scored by its best passage.

    Args:
        scores, ids: ``[n, depth]`` passage search results, best first (-1 pads).
        k: records per query.

    Returns:
        ``(scores [n, k] float32, rowids [n, k] int64, complete [n] bool)``: best first, -inf /
        -1 padded; *complete* says a row found k distinct records. Because the passages come
        best first, a record's first passage is its best among them, and when k records were
        found no record left out could score higher (its best passage is below all of these).
    """
    rows = record_rows(ids, passages=True)
    n = rows.shape[0]
    out_s = np.full((n, k), -np.inf, dtype=np.float32)
    out_r = np.full((n, k), -1, dtype=np.int64)
    complete = np.zeros(n, dtype=bool)
    for i in range(n):
        live = np.flatnonzero(rows[i] >= 0)
        _, first = np.unique(rows[i, live], return_index=True)
        take = live[np.sort(first)[:k]]
        out_s[i, :take.size] = scores[i, take]
        out_r[i, :take.size] = rows[i, take]
        complete[i] = take.size == k
    return out_s, out_r, complete

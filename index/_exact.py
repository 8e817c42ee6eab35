"""Exact (brute-force) inner-product top-k kernels: numpy on CPU, torch or FAISS on GPU.

All kernels work on *positions*: rows numbered 0..N-1 across a list of vector blocks (the
caller maps positions to its own ids). ``alive`` is an optional boolean mask over positions;
dead rows never appear in results. Results are sorted by score, best first, and padded with
position -1 and score -inf.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from index._common import require_faiss

logger = logging.getLogger(__name__)

SCORE_BUDGET = 1 << 24
"""Most float32 scores held at once per query block on CPU (64 MiB)."""
MIN_CHUNK, MAX_CHUNK = 4096, 262144
"""Bounds on corpus rows per matrix product on CPU (see ``benchmarks/search_speed.py``)."""
DENSE_FRACTION = 8
"""Fall back to argpartition when a row has more than chunk/8 candidates above its threshold."""
SMALL_BATCH = 8
"""Up to this many queries, BLAS runs on one thread: a few matrix-vector products are bound by
memory, and waking OpenBLAS's threads cost more than they gave (single query over 10k vectors
on 2 busy cores: p50 8.0 ms with 2 threads, 1.2 ms with 1)."""
HALF_CHUNK = 16384
"""Most corpus rows per product when the vectors are float16: each chunk is converted to a
float32 buffer for BLAS (there is no half-precision BLAS on CPU); 24 MiB at 384 dimensions."""
GPU_CHUNK, GPU_QUERY_BLOCK = 131072, 2048
FAISS_GPU_MAX_K = 2048


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def _blas_threads_for(n_queries: int) -> contextlib.AbstractContextManager:
    """One BLAS thread for small batches when threadpoolctl is installed, else no change."""
    controller = _blas_controller() if n_queries <= SMALL_BATCH else None
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def pad_results(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Empty results: scores -inf, positions -1."""
    return np.full((n, k), -np.inf, dtype=np.float32), np.full((n, k), -1, dtype=np.int64)


def plan_blocks(n_queries: int, chunk_size: int | None) -> tuple[int, int]:
    """Chooses (corpus rows per chunk, queries per block) so one score block stays bounded."""
    if chunk_size is None:
        chunk = int(np.clip(SCORE_BUDGET // max(n_queries, 1), MIN_CHUNK, MAX_CHUNK))
    else:
        chunk = int(chunk_size)
    q_block = int(max(1, min(n_queries, SCORE_BUDGET // chunk)))
    return chunk, q_block


def _merge(best_s: np.ndarray, best_p: np.ndarray, cand_s: np.ndarray, cand_p: np.ndarray, k: int):
    s = np.concatenate((best_s, cand_s), axis=1)
    p = np.concatenate((best_p, cand_p), axis=1)
    m = s.shape[1]
    if m > k:
        sel = np.argpartition(s, m - k, axis=1)[:, m - k :]
        s = np.take_along_axis(s, sel, axis=1)
        p = np.take_along_axis(p, sel, axis=1)
    return s, p


class _RunningTopK:
    """Top-k of a block of queries, fed one score chunk at a time.

    After the first chunk every row has a k-th best score; later chunks are reduced to the few
    entries above it with one comparison pass (``S > threshold``) instead of a partition of the
    whole chunk. That makes the top-k nearly free next to the matrix product.
    """

    def __init__(self, n: int, k: int) -> None:
        self.k = k
        self.s, self.p = pad_results(n, k)

    def push(self, scores: np.ndarray, start: int) -> None:
        n, c = scores.shape
        thr = self.s.min(axis=1)
        if not np.isneginf(thr).any():
            flat = np.flatnonzero(scores > thr[:, None])
            if flat.size == 0:
                return
            rows = flat // c
            counts = np.bincount(rows, minlength=n)
            width = int(counts.max())
            if width * DENSE_FRACTION <= c:
                offsets = np.arange(flat.size) - (np.cumsum(counts) - counts)[rows]
                cand_s = np.full((n, width), -np.inf, dtype=np.float32)
                cand_p = np.full((n, width), -1, dtype=np.int64)
                cand_s[rows, offsets] = scores.ravel()[flat]
                cand_p[rows, offsets] = flat - rows * c + start
                self.s, self.p = _merge(self.s, self.p, cand_s, cand_p, self.k)
                return
        kk = min(self.k, c)
        if kk < c:
            sel = np.argpartition(scores, c - kk, axis=1)[:, c - kk :]
            cand_s = np.take_along_axis(scores, sel, axis=1)
        else:
            sel = np.broadcast_to(np.arange(c), (n, c))
            cand_s = scores
        self.s, self.p = _merge(self.s, self.p, cand_s, sel + start, self.k)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(-self.s, axis=1, kind="stable")
        return np.take_along_axis(self.s, order, axis=1), np.take_along_axis(self.p, order, axis=1)


def topk_numpy(
    queries: np.ndarray,
    blocks: Sequence[np.ndarray],
    k: int,
    alive: np.ndarray | None = None,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product with BLAS matrix products over corpus chunks.

    Memory stays bounded (one ``queries_block x chunk`` score matrix) whatever the corpus size,
    and blocks may be read-only memory maps, float32 or float16 (converted a chunk at a time).

    Args:
        queries: ``[n, d]`` float32, C-contiguous.
        blocks: corpus blocks ``[m_i, d]`` float32; positions run across blocks in order.
        k: results per query.
        alive: optional boolean mask over all positions; False rows are skipped.
        chunk_size: corpus rows per product; None picks it from the number of queries.

    Returns:
        ``(scores [n, k] float32, positions [n, k] int64)``, best first, -1 / -inf padded.
    """
    n = queries.shape[0]
    chunk, q_block = plan_blocks(n, chunk_size)
    if chunk_size is None and any(b.dtype != np.float32 for b in blocks):
        chunk = min(chunk, HALF_CHUNK)
    with _blas_threads_for(n):
        out_s, out_p = _topk_numpy(queries, blocks, k, alive, chunk, q_block)
    out_p[np.isneginf(out_s)] = -1  # dead rows kept as -inf filler when fewer than k are alive
    return out_s, out_p


def _topk_numpy(
    queries: np.ndarray,
    blocks: Sequence[np.ndarray],
    k: int,
    alive: np.ndarray | None,
    chunk: int,
    q_block: int,
) -> tuple[np.ndarray, np.ndarray]:
    n = queries.shape[0]
    out_s, out_p = pad_results(n, k)
    for q0 in range(0, n, q_block):
        q = queries[q0 : q0 + q_block]
        top = _RunningTopK(q.shape[0], k)
        buf = conv = None
        start = 0
        for block in blocks:
            for r0 in range(0, block.shape[0], chunk):
                x = block[r0 : r0 + chunk]
                c = x.shape[0]
                if x.dtype != np.float32:  # mixed types would bypass BLAS: convert first
                    if conv is None:
                        conv = np.empty((chunk, x.shape[1]), dtype=np.float32)
                    conv[:c] = x
                    x = conv[:c]
                # Reusing one output buffer avoids page-faulting a fresh 64 MiB array per chunk.
                if c == chunk and buf is None:
                    buf = np.empty((q.shape[0], chunk), dtype=np.float32)
                s = buf if c == chunk else np.empty((q.shape[0], c), dtype=np.float32)
                if q.shape[0] <= SMALL_BATCH:
                    # A few queries (one BLAS thread): OpenBLAS computes chunk @ queries.T
                    # about twice as fast as queries @ chunk.T (4 queries over 15k 384-d
                    # vectors: 2.0 ms against 4.2); for larger batches the other way round
                    # is faster (64 queries: 6.8 ms against 15).
                    np.copyto(s, np.matmul(x, q.T).T)
                else:
                    np.matmul(q, x.T, out=s)
                if alive is not None:
                    dead = ~alive[start + r0 : start + r0 + c]
                    if dead.any():
                        s[:, dead] = -np.inf
                top.push(s, start + r0)
            start += block.shape[0]
        out_s[q0 : q0 + q_block], out_p[q0 : q0 + q_block] = top.result()
    return out_s, out_p


class TorchExact:
    """Exact search on a CUDA device with torch: chunked matrix product + ``torch.topk``.

    The corpus is copied to the device once (as float16 when ``fp16``) and reused until the
    index changes. Scores come back as float32; with ``fp16`` they carry float16 rounding.
    """

    def __init__(
        self, blocks: Sequence[np.ndarray], alive: np.ndarray | None, device: str, fp16: bool
    ) -> None:
        import torch

        self.device = torch.device(device)
        self.dtype = torch.float16 if fp16 else torch.float32
        self.chunks: list[tuple[int, Any, Any]] = []
        start = 0
        for block in blocks:
            for r0 in range(0, block.shape[0], GPU_CHUNK):
                x = np.ascontiguousarray(block[r0 : r0 + GPU_CHUNK], dtype=np.float32)
                xt = torch.from_numpy(x).to(self.device, dtype=self.dtype)
                dead = None
                if alive is not None:
                    a = alive[start + r0 : start + r0 + x.shape[0]]
                    if not a.all():
                        dead = torch.from_numpy(~a).to(self.device)
                self.chunks.append((start + r0, xt, dead))
            start += block.shape[0]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        n = queries.shape[0]
        out_s, out_p = pad_results(n, k)
        with torch.inference_mode():
            for q0 in range(0, n, GPU_QUERY_BLOCK):
                q = torch.from_numpy(queries[q0 : q0 + GPU_QUERY_BLOCK]).to(
                    self.device, dtype=self.dtype
                )
                best_s = torch.full((q.shape[0], k), float("-inf"), device=self.device)
                best_p = torch.full((q.shape[0], k), -1, dtype=torch.int64, device=self.device)
                for start, x, dead in self.chunks:
                    s = (q @ x.T).float()
                    if dead is not None:
                        s.masked_fill_(dead, float("-inf"))
                    v, i = torch.topk(s, min(k, s.shape[1]), dim=1)
                    cat_s = torch.cat((best_s, v), dim=1)
                    cat_p = torch.cat((best_p, i + start), dim=1)
                    best_s, j = torch.topk(cat_s, k, dim=1)
                    best_p = torch.gather(cat_p, 1, j)
                rows = slice(q0, q0 + q.shape[0])
                out_s[rows] = best_s.cpu().numpy()
                out_p[rows] = best_p.cpu().numpy()
        out_p[np.isneginf(out_s)] = -1
        return out_s, out_p


class FaissGpuExact:
    """Exact search with GPU FAISS (``GpuIndexFlatIP``); used when ``faiss.get_num_gpus() > 0``.

    Only live rows are copied to the GPU; FAISS labels (0..n-1) map back to positions.
    FAISS on GPU handles ``k <= 2048``.
    """

    def __init__(
        self, blocks: Sequence[np.ndarray], alive: np.ndarray | None, dim: int, device: str
    ) -> None:
        faiss = require_faiss()
        config = faiss.GpuIndexFlatConfig()
        config.device = int(device.split(":", 1)[1]) if ":" in device else 0
        self.resources = faiss.StandardGpuResources()
        self.index = faiss.GpuIndexFlatIP(self.resources, dim, config)
        positions = []
        start = 0
        for block in blocks:
            for r0 in range(0, block.shape[0], GPU_CHUNK):
                x = block[r0 : r0 + GPU_CHUNK]
                pos = np.arange(start + r0, start + r0 + x.shape[0], dtype=np.int64)
                if alive is not None:
                    keep = alive[pos]
                    x, pos = x[keep], pos[keep]
                self.index.add(np.ascontiguousarray(x, dtype=np.float32))
                positions.append(pos)
            start += block.shape[0]
        self.positions = np.concatenate(positions) if positions else np.empty(0, dtype=np.int64)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = queries.shape[0]
        out_s, out_p = pad_results(n, k)
        kk = min(k, int(self.index.ntotal))
        if kk == 0:
            return out_s, out_p
        scores, labels = self.index.search(queries, kk)
        valid = labels >= 0
        out_s[:, :kk] = np.where(valid, scores, -np.inf)
        out_p[:, :kk] = np.where(valid, self.positions[np.clip(labels, 0, None)], -1)
        return out_s, out_p

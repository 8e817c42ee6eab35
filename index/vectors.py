"""Dense vector index over L2-normalised float32 vectors, scored by inner product.

Four kinds behind one class:

* ``"exact"`` (default): brute force with numpy/BLAS over corpus chunks on CPU, or torch /
  GPU FAISS on CUDA. Results equal a full ``Q @ X.T`` ranking. ``dtype="float16"`` stores the
  vectors in half precision (half the memory and disk; scores carry float16 rounding).
* ``"hnsw"``: FAISS ``IndexHNSWFlat`` (params ``M``, ``efConstruction``, ``efSearch``).
* ``"ivf"``: FAISS ``IndexIVFFlat`` (params ``nlist``, ``nprobe``, ``train_size``), trained on
  the first batch added.
* ``"ivfpq"``: FAISS ``IndexIVFPQ``, as ``"ivf"`` with each vector compressed to ``pq_m``
  codes of ``pq_bits`` bits (48 bytes for 384 dimensions by default).

:func:`choose_kind` picks one for a corpus size.

A saved index is a folder: ``vector_index.json`` (kind, dim, count, params), ``ids.npy`` and
either ``vectors.npy`` (exact) or ``faiss.index`` (approximate). No pickle.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from index import _approx
from index._common import (
    FORMAT_VERSION,
    atomic_write,
    check_ids,
    check_k,
    faiss_gpu_count,
    first_duplicate,
    load_json,
    load_npy,
    require_faiss,
    save_json,
    save_npy,
)
from index._exact import FAISS_GPU_MAX_K, FaissGpuExact, TorchExact, pad_results, topk_numpy
from mathcore.device import resolve_device

logger = logging.getLogger(__name__)

KINDS = ("exact", "hnsw", "ivf", "ivfpq")
DTYPES = ("float32", "float16")
EXACT_DEFAULTS: dict[str, Any] = {"chunk_size": None, "fp16": False, "dtype": "float32"}
DEFAULTS = {"exact": EXACT_DEFAULTS, "hnsw": _approx.HNSW_DEFAULTS, "ivf": _approx.IVF_DEFAULTS,
            "ivfpq": _approx.IVFPQ_DEFAULTS}
# Corpus sizes where choose_kind moves from exact to HNSW, and from HNSW to IVF-PQ (see
# docs/scale.md: measured by benchmarks/scale.py at 1M records on 2 cores).
EXACT_UP_TO, HNSW_UP_TO = 200_000, 5_000_000
META_FILE, IDS_FILE, VECTORS_FILE, FAISS_FILE, REMOVED_FILE = (
    "vector_index.json",
    "ids.npy",
    "vectors.npy",
    "faiss.index",
    "removed.npy",
)
FORMAT = "mathmatch.vector_index"
NORM_TOLERANCE = 1e-2


def _check_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(DEFAULTS[kind]))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for kind={kind!r}; allowed: {sorted(DEFAULTS[kind])}"
        )
    merged = {**DEFAULTS[kind], **params}
    for name, value in merged.items():
        if name == "dtype":
            if value not in DTYPES:
                raise ValueError(f"dtype must be one of {DTYPES}, got {value!r}")
        elif name == "fp16":
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"fp16 must be True or False, got {value!r}")
            merged[name] = bool(value)
        elif value is not None:  # every other parameter is an integer (None = automatic)
            low = 0 if name == "seed" else 1
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
            merged[name] = int(value)
    return merged


def choose_kind(n: int) -> str:
    """The vector index kind for a corpus of *n* vectors: ``exact`` up to
    :data:`EXACT_UP_TO` (a single CPU query stays in the tens of milliseconds), ``hnsw`` up to
    :data:`HNSW_UP_TO` (its float32 vectors and graph still fit in memory), ``ivfpq`` beyond
    (48 bytes a vector).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return "exact" if n <= EXACT_UP_TO else "hnsw" if n <= HNSW_UP_TO else "ivfpq"


class VectorIndex:
    """Inner-product index over caller-owned int64 row ids.

    Removal marks rows dead (a mask applied at search time); an exact index drops them for good
    on :meth:`save`, an IVF index deletes them from FAISS, and an HNSW index keeps them as
    tombstones (FAISS cannot delete HNSW nodes) filtered by searching ``k + tombstones`` deep.
    Rebuild an HNSW index that has accumulated many removals.

    Example:
        >>> index = VectorIndex(384); index.add(ids, vectors); scores, hits = index.search(q, 10)
    """

    def __init__(self, dim: int, kind: str = "exact", device: str = "cpu", **params: Any) -> None:
        """Creates an empty index.

        Args:
            dim: vector dimension.
            kind: ``"exact"``, ``"hnsw"``, ``"ivf"`` or ``"ivfpq"``.
            device: ``"cpu"``, ``"cuda"`` (``"cuda:N"``) or ``"auto"``; CUDA is for exact only.
            **params: kind-specific settings (see ``DEFAULTS``): exact ``chunk_size`` (corpus rows
                per product, None = automatic), ``fp16`` (torch on CUDA only) and ``dtype``
                (storage: ``float32`` or ``float16``); hnsw ``M``, ``efConstruction``,
                ``efSearch``; ivf ``nlist`` (None = about 4*sqrt(n)), ``nprobe``,
                ``train_size`` (k-means sample, None = 64 per list), ``seed``; ivfpq those of
                ivf and ``pq_m`` (codes per vector, None = dim / 8), ``pq_bits``.

        Raises:
            ValueError: bad dim, kind, device or parameter.
            RuntimeError: ``device="cuda"`` without CUDA.
        """
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.dim, self.kind = int(dim), kind
        self.params = _check_params(kind, params)
        if kind != "exact" and device != "cpu":
            if device != "auto":
                raise ValueError(
                    f"device={device!r}: GPU search is only implemented for kind='exact'"
                )
            logger.info("kind=%r searches on CPU (device='auto')", kind)
            device = "cpu"
        self.device = resolve_device(device, numbered=True, purpose="searching")
        self._ids = np.empty(0, dtype=np.int64)  # position -> caller id
        self._alive = np.empty(0, dtype=bool)  # position -> not removed
        self._n_alive = 0
        self._blocks: list[np.ndarray] = []  # exact only: vectors, positions run across blocks
        self._faiss: Any = None  # hnsw / ivf only
        self._gpu: Any = None  # cached device copy for exact CUDA search
        if kind != "exact":
            require_faiss()

    def __len__(self) -> int:
        return self._n_alive

    def __repr__(self) -> str:
        return (
            f"VectorIndex(kind={self.kind!r}, dim={self.dim}, count={self._n_alive}, "
            f"device={self.device!r})"
        )

    @property
    def n_tombstones(self) -> int:
        """Removed rows still held in memory (dropped by ``save`` for exact, kept for HNSW)."""
        return int(self._ids.size - self._n_alive)

    def _check_vectors(self, vectors: Any, ids: np.ndarray) -> np.ndarray:
        x = np.asarray(vectors)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"vectors must have shape [n, {self.dim}], got {x.shape}")
        if x.shape[0] != ids.shape[0]:
            raise ValueError(f"got {ids.shape[0]} ids for {x.shape[0]} vectors")
        if x.size and not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"vectors must be floating point, got dtype {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))  # no [n, dim] temporary
        bad = np.flatnonzero(~(np.abs(norms - 1.0) <= NORM_TOLERANCE))
        if bad.size:
            raise ValueError(
                f"vector for id {int(ids[bad[0]])} has L2 norm {norms[bad[0]]:.4f}; "
                f"vectors must be L2-normalised and finite ({bad.size} bad rows)"
            )
        return x

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Appends vectors under caller row ids.

        An exact index keeps a reference to ``vectors`` when they already are C-contiguous
        float32 (no copy): do not modify them afterwards.

        Raises:
            ValueError: malformed input, unnormalised vector, or an id already in the index
                (or repeated within ``ids``); the message names the id.
        """
        ids = check_ids(ids)
        x = self._check_vectors(vectors, ids)
        if ids.size == 0:
            return
        dup = first_duplicate(ids)
        if dup is None:
            present = np.isin(ids, self._ids[self._alive])
            dup = int(ids[np.argmax(present)]) if present.any() else None
        if dup is not None:
            raise ValueError(
                f"id {dup} is already in the index (or repeated in this batch); remove it first"
            )
        positions = np.arange(self._ids.size, self._ids.size + ids.size, dtype=np.int64)
        if self.kind == "exact":
            half = self.params["dtype"] == "float16"
            self._blocks.append(x.astype(np.float16) if half else x)
        else:
            if self._faiss is None:
                self._faiss = (
                    _approx.new_hnsw(self.dim, self.params)
                    if self.kind == "hnsw"
                    else _approx.new_ivf(self.dim, x, self.params, pq=self.kind == "ivfpq")
                )
            _approx.add(self._faiss, self.kind, x, positions)
        self._ids = np.concatenate((self._ids, ids))
        self._alive = np.concatenate((self._alive, np.ones(ids.size, dtype=bool)))
        self._n_alive += int(ids.size)
        self._gpu = None

    def remove(self, ids: Any) -> int:
        """Removes ids; unknown ids are ignored.

        Returns:
            How many rows were removed.
        """
        ids = check_ids(ids)
        hit = np.flatnonzero(np.isin(self._ids, ids) & self._alive)
        if hit.size == 0:
            return 0
        self._alive[hit] = False
        self._n_alive -= int(hit.size)
        if self._faiss is not None:
            _approx.remove(self._faiss, self.kind, hit)
        self._gpu = None
        return int(hit.size)

    def ids(self) -> np.ndarray:
        """The live row ids, in the order they were added (a copy)."""
        return np.array(self._ids[self._alive], dtype=np.int64)

    def vectors_of(self, ids: Any) -> np.ndarray:
        """The stored vectors of live ids, in the order asked.

        Raises:
            KeyError: naming an id that is not in the index.
        """
        ids = check_ids(ids)
        live = np.flatnonzero(self._alive)
        order = np.argsort(self._ids[live], kind="stable")
        sorted_ids = self._ids[live][order]
        where = np.searchsorted(sorted_ids, ids)
        found = (where < sorted_ids.size) & (sorted_ids[np.minimum(where, sorted_ids.size - 1)]
                                             == ids) if sorted_ids.size else np.zeros(0, bool)
        if ids.size and (not sorted_ids.size or not found.all()):
            missing = ids[0] if not sorted_ids.size else ids[np.argmin(found)]
            raise KeyError(f"id {int(missing)} is not in the index")
        positions = live[order[where]]
        if self.kind != "exact":
            return np.vstack([self._faiss_vector(int(p)) for p in positions]) if positions.size \
                else np.zeros((0, self.dim), np.float32)
        starts = np.cumsum([0] + [b.shape[0] for b in self._blocks])
        out = np.empty((positions.size, self.dim), dtype=np.float32)
        for i, p in enumerate(positions):
            b = int(np.searchsorted(starts, p, side="right") - 1)
            out[i] = self._blocks[b][p - starts[b]]
        return out

    def _faiss_vector(self, position: int) -> np.ndarray:
        if self.kind in ("ivf", "ivfpq") and not getattr(self, "_direct_map", False):
            # Labels are positions with gaps after removals: a hash table, not an array.
            self._faiss.set_direct_map_type(require_faiss().DirectMap.Hashtable)
            self._direct_map = True
        return self._faiss.reconstruct(position)

    def _check_queries(self, queries: Any) -> np.ndarray:
        q = np.asarray(queries)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries must have shape [n, {self.dim}], got {np.shape(queries)}")
        q = np.ascontiguousarray(q, dtype=np.float32)
        if not np.isfinite(q).all():
            raise ValueError("queries contain NaN or infinite values")
        return q

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k ids by inner product.

        Args:
            queries: ``[n, dim]`` (or one ``[dim]`` vector).
            k: results per query.

        Returns:
            ``(scores [n, k] float32, ids [n, k] int64)``, best first; slots beyond the number of
            live rows have id -1 and score -inf.
        """
        k = check_k(k)
        q = self._check_queries(queries)
        if self._n_alive == 0 or q.shape[0] == 0:
            return pad_results(q.shape[0], k)
        alive = None if self._n_alive == self._ids.size else self._alive
        if self.kind != "exact":
            scores, pos = _approx.search(
                self._faiss, self.kind, self.params, q, k, self._alive, self._faiss_tombstones()
            )
        elif self.device == "cpu":
            scores, pos = topk_numpy(q, self._blocks, k, alive, self.params["chunk_size"])
        else:
            scores, pos = self._gpu_searcher(k).search(q, k)
        return scores, np.where(pos >= 0, self._ids[np.clip(pos, 0, None)], -1)

    def _faiss_tombstones(self) -> int:
        return self.n_tombstones if self.kind == "hnsw" else 0

    def _gpu_searcher(self, k: int) -> Any:
        alive = None if self._n_alive == self._ids.size else self._alive
        want = "faiss" if faiss_gpu_count() > 0 and k <= FAISS_GPU_MAX_K else "torch"
        if self._gpu is None or self._gpu[0] != want:
            if want == "faiss":
                searcher = FaissGpuExact(self._blocks, alive, self.dim, self.device)
            else:
                searcher = TorchExact(self._blocks, alive, self.device, bool(self.params["fp16"]))
            self._gpu = (want, searcher)
            logger.info("exact search on %s with %s", self.device, want)
        return self._gpu[1]

    def save(self, directory: Path) -> dict:
        """Writes the index into ``directory`` (created if needed).

        Exact indexes are compacted (removed rows dropped). Files are written through temporary
        names, so saving over the folder an index was memory-mapped from is safe.

        Returns:
            Facts for a manifest: format, kind, dim, metric, count, params and files.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files = [META_FILE, IDS_FILE]
        if self.kind == "exact":
            save_npy(directory / IDS_FILE, self._ids[self._alive])
            self._save_vectors(directory / VECTORS_FILE)
            files.append(VECTORS_FILE)
        else:
            faiss = require_faiss()
            save_npy(directory / IDS_FILE, self._ids)
            if self._faiss is not None:
                atomic_write(
                    directory / FAISS_FILE, lambda tmp: faiss.write_index(self._faiss, str(tmp))
                )
                files.append(FAISS_FILE)
            if self.n_tombstones:
                save_npy(directory / REMOVED_FILE, np.flatnonzero(~self._alive).astype(np.int64))
                files.append(REMOVED_FILE)
            else:
                (directory / REMOVED_FILE).unlink(missing_ok=True)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "dim": self.dim,
            "metric": "inner_product",
            "count": self._n_alive,
            "params": dict(self.params),
            "files": sorted(files),
            "numpy_version": np.__version__,
        }
        if self.kind != "exact":
            meta["faiss_version"] = require_faiss().__version__
        save_json(directory / META_FILE, meta)
        logger.info("saved %r to %s", self, directory)
        return meta

    def _save_vectors(self, path: Path) -> None:
        def write(tmp: Path) -> None:
            out = np.lib.format.open_memmap(
                tmp, mode="w+", dtype=np.dtype(self.params["dtype"]),
                shape=(self._n_alive, self.dim)
            )
            row, start = 0, 0
            for block in self._blocks:
                keep = self._alive[start : start + block.shape[0]]
                part = block if keep.all() else block[keep]
                out[row : row + part.shape[0]] = part
                row += part.shape[0]
                start += block.shape[0]
            out.flush()
            del out

        atomic_write(path, write)

    @classmethod
    def load(cls, directory: Path, mmap: bool = True, device: str = "cpu") -> VectorIndex:
        """Opens a saved index.

        Args:
            directory: folder written by :meth:`save`.
            mmap: memory-map ``vectors.npy`` / ``ids.npy`` read-only instead of reading them
                (FAISS indexes are always read into memory).
            device: as in the constructor.

        Raises:
            FileNotFoundError: a file is missing.
            ValueError: the files disagree with ``vector_index.json`` or with each other.
        """
        directory = Path(directory)
        meta = load_json(directory / META_FILE, FORMAT)
        index = cls(int(meta["dim"]), meta["kind"], device=device, **meta["params"])
        ids = load_npy(directory / IDS_FILE, mmap)
        if ids.ndim != 1 or ids.dtype != np.int64:
            raise ValueError(
                f"{directory / IDS_FILE}: expected a 1-D int64 array, got {ids.dtype} {ids.shape}"
            )
        index._ids = ids
        index._alive = np.ones(ids.size, dtype=bool)
        if index.kind == "exact":
            vectors = load_npy(directory / VECTORS_FILE, mmap)
            dtype = index.params["dtype"]
            if (
                vectors.dtype != np.dtype(dtype)
                or vectors.ndim != 2
                or vectors.shape != (ids.size, index.dim)
            ):
                raise ValueError(
                    f"{directory / VECTORS_FILE}: expected {dtype} [{ids.size}, {index.dim}], "
                    f"got {vectors.dtype} {vectors.shape}"
                )
            index._blocks = [vectors] if ids.size else []
        else:
            removed_path = directory / REMOVED_FILE
            if removed_path.is_file():
                index._alive[load_npy(removed_path, mmap=False)] = False
            if (directory / FAISS_FILE).is_file():
                index._faiss = require_faiss().read_index(str(directory / FAISS_FILE))
                expected = ids.size if index.kind == "hnsw" else int(index._alive.sum())
                if index._faiss.d != index.dim or index._faiss.ntotal != expected:
                    raise ValueError(
                        f"{directory / FAISS_FILE}: holds {index._faiss.ntotal} vectors of dim "
                        f"{index._faiss.d}, expected {expected} of dim {index.dim}"
                    )
            elif ids.size:
                raise FileNotFoundError(f"{directory / FAISS_FILE} not found")
        index._n_alive = int(index._alive.sum())
        if index._n_alive != meta["count"]:
            raise ValueError(
                f"{directory}: {index._n_alive} live rows, but {META_FILE} says {meta['count']}"
            )
        return index


def recall_against_exact(
    index: VectorIndex, exact: VectorIndex, queries: np.ndarray, k: int
) -> float:
    """Mean recall@k of ``index`` against the ``exact`` top-k (the overlap of the id sets).

    Queries for which the exact index finds nothing are left out.
    """
    _, got = index.search(queries, k)
    _, truth = exact.search(queries, k)
    hits, total = 0, 0
    for g, t in zip(got, truth, strict=True):
        t = t[t >= 0]
        if t.size:
            hits += np.intersect1d(g[g >= 0], t).size
            total += t.size
    return hits / total if total else 1.0

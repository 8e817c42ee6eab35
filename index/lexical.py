"""BM25 over pre-tokenised documents, backed by bm25s (sparse eager scores, mmap-able files).

Tokens are produced by the caller (the same tokenizer for documents and queries); this module
maps them through the vocabulary built at :meth:`LexicalIndex.build` time, which is saved with
the index (``vocab.index.json``) so that a loaded index maps query tokens identically.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index._common import (
    FORMAT_VERSION,
    check_ids,
    check_k,
    first_duplicate,
    load_json,
    load_npy,
    save_json,
    save_npy,
)

logger = logging.getLogger(__name__)

METHODS = ("robertson", "lucene")
BACKENDS = ("numpy", "numba")
META_FILE, IDS_FILE = "lexical_index.json", "ids.npy"
BM25S_FILES = (
    "data.csc.index.npy",
    "indices.csc.index.npy",
    "indptr.csc.index.npy",
    "vocab.index.json",
    "params.index.json",
)
FORMAT = "mathmatch.lexical_index"
QUERY_BATCH = 4096


def _check_docs(ids: np.ndarray, docs: Sequence[Any]) -> None:
    if len(docs) != ids.size:
        raise ValueError(f"got {ids.size} ids for {len(docs)} token lists")
    for row, doc in enumerate(docs):
        if isinstance(doc, (str, bytes)) or not isinstance(doc, (list, tuple)):
            raise ValueError(
                f"tokens for id {int(ids[row])} must be a list of strings, got {type(doc).__name__}"
            )
        if not all(type(t) is str and t for t in doc):
            bad = next(t for t in doc if type(t) is not str or not t)
            raise ValueError(
                f"tokens for id {int(ids[row])} must be non-empty strings, found {bad!r}"
            )


class LexicalIndex:
    """BM25 index over caller row ids and their token lists.

    ``method="robertson"`` scores with the classic Okapi BM25 formula
    ``idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avglen))`` with
    ``idf = log((N - df + 0.5) / (df + 0.5))`` floored at 0 (as ``rank_bm25.BM25Okapi`` with
    ``epsilon=0``). bm25s leaves out the constant factor ``k1 + 1``; it is put back here.
    ``method="lucene"`` is Lucene's BM25 (``idf = log(1 + (N - df + 0.5) / (df + 0.5))``,
    no ``k1 + 1``), exactly as bm25s computes it.

    Only documents with a positive score are returned: a document that shares no token with
    the query (or only tokens whose Robertson idf is 0) is not a hit. Adding or removing
    documents means calling :meth:`build` again with all of them (BM25 statistics are global).

    Example:
        >>> bm25 = LexicalIndex(); bm25.build(ids, [["area", "circle"], ...])
        >>> scores, hits = bm25.search([["circle", "area"]], k=10)
    """

    def __init__(
        self,
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "robertson",
        backend: str = "numpy",
        n_threads: int = 0,
    ) -> None:
        """Creates an empty index.

        Args:
            k1: term-frequency saturation, >= 0.
            b: length normalisation, in [0, 1].
            method: ``"robertson"`` or ``"lucene"``.
            backend: ``"numpy"``, or ``"numba"``: bm25s's JIT-compiled scorer, parallel over
                queries, about 4x faster on large query batches but it compiles for ~20 s the
                first time it is used in a process.
            n_threads: threads for the numba backend (0 = all cores); the numpy backend runs
                single-threaded (threads do not help it).
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if not k1 >= 0:
            raise ValueError(f"k1 must be >= 0, got {k1!r}")
        if not 0 <= b <= 1:
            raise ValueError(f"b must be in [0, 1], got {b!r}")
        if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 0:
            raise ValueError(f"n_threads must be an integer >= 0, got {n_threads!r}")
        self.k1, self.b, self.method = float(k1), float(b), method
        self.backend, self.n_threads = backend, n_threads
        self._ids = np.empty(0, dtype=np.int64)
        self._position: dict[int, int] | None = None  # id -> position, made by scores_of
        self._bm25: Any = None  # None while no document has a token

    def __len__(self) -> int:
        return int(self._ids.size)

    def __repr__(self) -> str:
        return f"LexicalIndex(method={self.method!r}, k1={self.k1}, b={self.b}, count={len(self)})"

    @property
    def vocab_size(self) -> int:
        """Distinct tokens in the index (bm25s adds one empty token ``""``)."""
        return 0 if self._bm25 is None else len(self._bm25.vocab_dict)

    @property
    def _scale(self) -> float:
        return self.k1 + 1.0 if self.method == "robertson" else 1.0

    def build(
        self, ids: np.ndarray, docs_tokens: Iterable[list[str]], show_progress: bool = False
    ) -> None:
        """(Re)builds the index from all documents, replacing what was there.

        Args:
            ids: caller row ids, unique, >= 0.
            docs_tokens: one token list per id, in the same order.
            show_progress: show bm25s's progress bars.

        Raises:
            ValueError: mismatched lengths, a repeated id, or a document that is not a list of
                strings (the message names the id).
        """
        import bm25s

        ids = check_ids(ids)
        docs = docs_tokens if isinstance(docs_tokens, list) else list(docs_tokens)
        _check_docs(ids, docs)
        dup = first_duplicate(ids)
        if dup is not None:
            raise ValueError(f"id {dup} occurs more than once")
        self._ids = ids.copy()
        self._position = None
        self._bm25 = None
        if not any(docs):
            logger.info(
                "lexical index over %d documents without tokens: every search is empty", ids.size
            )
            return
        model = bm25s.BM25(k1=self.k1, b=self.b, method=self.method, backend="numpy")
        model.index([list(d) for d in docs], show_progress=show_progress)
        self._bm25 = model
        logger.info("built %r, vocabulary %d", self, self.vocab_size)

    def _token_ids(self, queries_tokens: Sequence[Sequence[str]]) -> list[list[int]]:
        vocab = self._bm25.vocab_dict
        out = []
        for row, query in enumerate(queries_tokens):
            if isinstance(query, (str, bytes)) or not isinstance(query, (list, tuple)):
                raise ValueError(
                    f"query {row} must be a list of token strings, got {type(query).__name__}"
                )
            # "" is bm25s's placeholder token: in the vocabulary but not in the score matrix.
            out.append([int(vocab[t]) for t in query if t and t in vocab])
        return out

    def search(
        self, queries_tokens: Sequence[Sequence[str]], k: int, show_progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k documents per query by BM25.

        Args:
            queries_tokens: one token list per query; tokens unknown to the vocabulary are ignored.
            k: results per query.
            show_progress: show bm25s's progress bar.

        Returns:
            ``(scores [n, k] float32, ids [n, k] int64)``, best first; slots without a matching
            document have id -1 and score 0 (a query with no known token gets only those).
        """
        k = check_k(k)
        n = len(queries_tokens)
        scores = np.zeros((n, k), dtype=np.float32)
        ids = np.full((n, k), -1, dtype=np.int64)
        if self._bm25 is None or n == 0:
            return scores, ids
        kk = min(k, len(self))
        self._bm25.backend = self.backend  # the numba scorer compiles on its first use only
        for q0 in range(0, n, QUERY_BATCH):
            token_ids = self._token_ids(queries_tokens[q0 : q0 + QUERY_BATCH])
            rows = np.array([q0 + i for i, t in enumerate(token_ids) if t], dtype=np.int64)
            if rows.size == 0:
                continue  # no known token in this batch: all padding
            docs, s = self._bm25.retrieve(
                [t for t in token_ids if t],
                k=kk,
                show_progress=show_progress,
                n_threads=(self.n_threads or -1) if self.backend == "numba" else 0,
            )
            s = np.asarray(s, dtype=np.float32) * np.float32(self._scale)
            hit = s > 0
            scores[rows, :kk] = np.where(hit, s, 0.0)
            ids[rows, :kk] = np.where(hit, self._ids[np.asarray(docs, dtype=np.int64)], -1)
        return scores, ids

    def scores_of(self, query_tokens: Sequence[str], ids: Sequence[int]) -> np.ndarray:
        """BM25 scores of one query for the documents *ids* (0 for an id not indexed), as
        :meth:`search` scores them, without ranking the whole collection."""
        out = np.zeros(len(ids), dtype=np.float32)
        token_ids = self._token_ids([query_tokens])[0] if self._bm25 is not None else []
        if not token_ids or not len(ids):
            return out
        if self._position is None:
            self._position = {int(d): i for i, d in enumerate(self._ids)}
        where = [(i, self._position.get(int(d))) for i, d in enumerate(ids)]
        where = [(i, p) for i, p in where if p is not None]
        if where:
            every = np.asarray(self._bm25.get_scores(token_ids), dtype=np.float32)
            slots, positions = zip(*where, strict=True)
            out[list(slots)] = every[list(positions)] * np.float32(self._scale)
        return out

    def save(self, directory: Path) -> dict:
        """Writes bm25s's files (sparse scores, vocabulary, params), ``ids.npy`` and
        ``lexical_index.json`` into ``directory``.

        Returns:
            Facts for a manifest: format, method, k1, b, count, vocab_size and files.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files = [META_FILE, IDS_FILE]
        if self._bm25 is not None:
            self._bm25.backend = "numpy"  # saved in params.index.json; loading must not compile
            self._bm25.save(directory, show_progress=False)
            files += BM25S_FILES
        save_npy(directory / IDS_FILE, self._ids)
        import bm25s

        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "k1": self.k1,
            "b": self.b,
            "count": len(self),
            "vocab_size": self.vocab_size,
            "files": sorted(files),
            "bm25s_version": bm25s.__version__,
        }
        save_json(directory / META_FILE, meta)
        logger.info("saved %r to %s", self, directory)
        return meta

    @classmethod
    def load(
        cls, directory: Path, mmap: bool = True, backend: str = "numpy", n_threads: int = 0
    ) -> LexicalIndex:
        """Opens a saved index; with ``mmap`` the score arrays and ids are memory-mapped.

        Raises:
            FileNotFoundError: a file is missing.
            ValueError: the files disagree with ``lexical_index.json``.
        """
        import bm25s

        directory = Path(directory)
        meta = load_json(directory / META_FILE, FORMAT)
        index = cls(meta["k1"], meta["b"], meta["method"], backend=backend, n_threads=n_threads)
        ids = load_npy(directory / IDS_FILE, mmap)
        if ids.ndim != 1 or ids.dtype != np.int64 or ids.size != meta["count"]:
            raise ValueError(
                f"{directory / IDS_FILE}: expected {meta['count']} int64 ids, "
                f"got {ids.dtype} {ids.shape}"
            )
        index._ids = ids
        if meta["vocab_size"]:
            for path in sorted(directory.glob("*.npy")):  # bm25s's own files: named if damaged
                load_npy(path, mmap=True)
            model = bm25s.BM25.load(directory, mmap=mmap, load_corpus=False, show_progress=False)
            # bm25s slices its score arrays once per query token: numpy.memmap's slicing (a
            # Python __getitem__ and __array_finalize__ a slice) cost more than the scoring
            # (dev corpus: 0.9 ms of a query's 1.5). Plain views of the same mapped memory.
            for key in ("data", "indices", "indptr"):
                if isinstance(model.scores.get(key), np.memmap):
                    model.scores[key] = model.scores[key].view(np.ndarray)
            num_docs = model.scores["num_docs"]
            if num_docs != ids.size or model.method != meta["method"]:
                raise ValueError(
                    f"{directory}: bm25s files hold {num_docs} documents ({model.method}), "
                    f"{META_FILE} says {ids.size} ({meta['method']})"
                )
            index._bm25 = model
        return index

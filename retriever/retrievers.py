"""Dense, BM25 and hybrid retrievers over an index folder's parts.

Example:
    >>> dense = DenseRetriever(VectorIndex.load(d / "dense"), Encoder())  # doctest: +SKIP
    >>> scores, rowids = dense.search_texts(["x^2 = 4"], k=10)  # doctest: +SKIP
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from mathcore.tokens import analyze

if TYPE_CHECKING:
    from retriever.formulas import FormulaAgreement
    from retriever.givens import GivensAgreement

MODES = ("dense", "bm25", "hybrid")


class _Keeping:
    """A retriever that can keep the rankings it made: inside :meth:`keeping`, each text's
    ranking at each depth is kept, and asking for it again returns it without searching (the
    server explains a batch's hits with the very rankings the batch was searched with)."""

    _kept: dict | None = None

    @contextmanager
    def keeping(self) -> Iterator[None]:
        """Keep the rankings made in the block (one thread's; forgotten when it ends)."""
        self._kept = {}
        try:
            yield
        finally:
            self._kept = None

    def search_texts(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores [n, k], rowids [n, k])`` of each text, best first, -1 padded."""
        kept = self._kept
        if kept is None:
            return self._search(texts, k)
        new = [t for t in dict.fromkeys(texts) if (t, k) not in kept]
        if new:
            scores, ids = self._search(new, k)
            kept.update(zip([(t, k) for t in new], zip(scores, ids, strict=True), strict=True))
            if len(new) == len(texts):  # all new, none twice: as searched
                return scores, ids
        if len(texts) == 1:  # a view of the row kept
            scores, ids = kept[texts[0], k]
            return scores[None], ids[None]
        if not texts:
            return self._search(texts, k)
        return (np.stack([kept[t, k][0] for t in texts]),
                np.stack([kept[t, k][1] for t in texts]))

    def _search(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class DenseRetriever(_Keeping):
    """Encode queries, search the vector index by inner product.

    Args:
        vectors: a :class:`index.VectorIndex`.
        encoder: the encoder its vectors were made with.
        passages: the vectors are passages (:mod:`index.passages`): a record scores by its
            best passage, and each record comes back once.
    """

    # Passages searched per record asked for, and the growth of that depth while fewer than
    # k distinct records come back.
    PASSAGE_DEPTH = 4

    def __init__(self, vectors: Any, encoder: Any, passages: bool = False) -> None:
        self.vectors = vectors
        self.encoder = encoder
        self.passages = passages

    def _search(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = self.encoder.encode(texts)
        if not self.passages:
            return self.vectors.search(queries, k)
        return self.search_records(queries, k)

    def search_records(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The top *k* records of a passage index by their best passage: ``(scores [n, k],
        rowids [n, k])``, -inf / -1 padded.

        ``k * PASSAGE_DEPTH`` passages are searched, then (for the queries that found fewer
        than k distinct records) four times as many, until k are found or every passage was.
        """
        from index.passages import best_per_record

        n = queries.shape[0]
        out_s = np.full((n, k), -np.inf, dtype=np.float32)
        out_r = np.full((n, k), -1, dtype=np.int64)
        todo = np.arange(n)
        total = len(self.vectors)
        depth = k * self.PASSAGE_DEPTH
        while todo.size:
            depth = max(1, min(depth, total))
            scores, ids = self.vectors.search(queries[todo], depth)
            s, r, complete = best_per_record(scores, ids, k)
            done = complete | (depth >= total)
            out_s[todo[done]], out_r[todo[done]] = s[done], r[done]
            todo = todo[~done]
            depth *= self.PASSAGE_DEPTH
        return out_s, out_r


class LexicalRetriever(_Keeping):
    """BM25 over mathcore's analyzer (the same analysis as the indexed answers)."""

    def __init__(self, index: Any) -> None:
        self.index = index

    def _search(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search([self.tokens(t) for t in texts], k)

    def tokens(self, text: str) -> list[str]:
        """The BM25 tokens of a query text (kept, inside :meth:`keeping`)."""
        kept = self._kept
        if kept is None:
            return analyze(text)
        if (text, None) not in kept:
            kept[text, None] = analyze(text)
        return kept[text, None]


FUSIONS = ("zscore", "minmax", "rrf")
# Chosen on the dev match task (README, "Retrieval quality"): z-scored scores weighted 0.7 dense
# / 0.3 BM25 beat RRF (equal weights, c = 60) by 0.04 MRR@10, and were best on both halves of
# the queries.
DEFAULT_FUSION = "zscore"
DEFAULT_WEIGHTS = (0.7, 0.3)


def fusion_weights(fusion: str) -> tuple[float, float]:
    """The (dense, BM25) weights of a fusion: equal for RRF, :data:`DEFAULT_WEIGHTS` for the
    score fusions."""
    return (1.0, 1.0) if fusion == "rrf" else DEFAULT_WEIGHTS


class HybridRetriever:
    """Fusion of a dense and a BM25 ranking, each taken *depth* deep, then (with *givens* or
    *formulas*) the fused first *depth* rescored by their answers' agreement with the question's
    numbers and formulas.

    Args:
        dense: a :class:`DenseRetriever`.
        lexical: a :class:`LexicalRetriever`.
        depth: candidates taken from each ranking before fusion (at least k).
        fusion: ``zscore`` or ``minmax`` (a weighted sum of per-query normalised scores; a
            document missing from one ranking gets that ranking's lowest score), or ``rrf``
            (reciprocal rank fusion, rank offset *c*).
        weights: (dense, bm25) weights.
        c: the RRF rank offset.
        givens: a :class:`retriever.givens.GivensAgreement`, or None to return the fusion as it
            is.
        formulas: a :class:`retriever.formulas.FormulaAgreement` (its term added to the givens
            term), or None.
    """

    def __init__(self, dense: DenseRetriever, lexical: LexicalRetriever, depth: int = 100,
                 fusion: str = DEFAULT_FUSION,
                 weights: tuple[float, float] = DEFAULT_WEIGHTS, c: int = 60,
                 givens: GivensAgreement | None = None,
                 formulas: FormulaAgreement | None = None) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.dense, self.lexical = dense, lexical
        self.depth, self.fusion, self.weights, self.c = depth, fusion, weights, c
        self.givens, self.formulas = givens, formulas

    def search_texts(self, texts: Sequence[str], k: int,
                     questions: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The *k* best rows of each linear query text; *questions* (the queries with their
        MathML, default: *texts*) are what the formula agreement reads."""
        if k <= self.depth:
            return self._search(texts, k, self.depth, questions)
        # Deeper than the fusion depth: the first `depth` are those of any smaller k (the
        # fusion's normalisation and candidates depend on the depth), the rest follow.
        head = self._search(texts, self.depth, self.depth, questions)
        full = self._search(texts, k, k, questions)
        return _extend(head, full, k)

    def _search(self, texts: Sequence[str], k: int, depth: int,
                questions: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:
        from index import convex, rrf

        rankings = [self.dense.search_texts(texts, depth), self.lexical.search_texts(texts, depth)]
        rescored = self.givens is not None or self.formulas is not None
        fused_k = depth if rescored else k
        if self.fusion == "rrf":
            fused = rrf(rankings, k=fused_k, c=self.c, weights=self.weights)
        else:
            fused = convex(rankings, k=fused_k, weights=self.weights, normalize=self.fusion)
        if not rescored:
            return fused
        if self.formulas is None:
            return self.givens.rescore(texts, *fused, k)
        return self.formulas.rescore(texts if questions is None else questions, *fused, k,
                                     givens=self.givens, texts=texts)


def _extend(head: tuple[np.ndarray, np.ndarray], full: tuple[np.ndarray, np.ndarray],
            k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row of *head* followed by the rows of *full* it lacks, *k* in all; the added
    scores are capped at the head's last, so every row stays sorted best first."""
    from index import PAD_ID

    (hs, hi), (fs, fi) = head, full
    scores = np.full((hs.shape[0], k), -np.inf, dtype=np.float32)
    ids = np.full((hs.shape[0], k), PAD_ID, dtype=np.int64)
    for q in range(hs.shape[0]):
        valid = hi[q] >= 0
        n = int(valid.sum())
        scores[q, :n], ids[q, :n] = hs[q][valid], hi[q][valid]
        seen = set(hi[q][valid].tolist())
        floor = float(hs[q][valid][-1]) if n else np.inf
        for s_, i in zip(fs[q], fi[q], strict=True):
            if n >= k:
                break
            if i >= 0 and int(i) not in seen:
                scores[q, n], ids[q, n] = min(float(s_), floor), i
                n += 1
    return scores, ids

"""Why a record ranked: the parts of its first-stage score, as the pipeline computed them.

Hybrid search (:class:`retriever.retrievers.HybridRetriever`) fuses a dense and a BM25 ranking
of the first ``depth`` candidates (:func:`index.convex` of per-query normalised scores, or
:func:`index.rrf`), z-scores the fused scores over those candidates and adds the givens term
(``weight x`` the share of the question's numbers the answer has; :mod:`retriever.givens`).
The fused score is a sum over the two rankings, so its z-score is too: :func:`explain`
rebuilds both rankings for the query from the searcher's own parts (or takes them as the
search made them, when the parts keep their rankings: :meth:`retriever.retrievers.DenseRetriever
.keeping`) and gives, for each returned record, what each ranking adds, next to the raw numbers
behind it (the cosine of query and answer vectors, the BM25 score, their ranks); the parts add
up to the first-stage score.

Example:
    >>> with Pipeline("idx") as p:  # doctest: +SKIP
    ...     explain(p, "What is 12 + 30?", rows=[17], answers=["12 + 30 = 42"], searched=10)
    [{'first_stage': 4.1, 'dense': {'score': 0.71, 'rank': 1, 'part': 0.9}, ...}]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mathcore.scores import zscores
from mathmatch.pipeline import Pipeline
from retriever.givens import coverage, numbers
from retriever.retrievers import DenseRetriever, HybridRetriever, LexicalRetriever
from retriever.searcher import search_text

QUERY_ID = "q"  # the id the server gives the one query of a request


def dense_of(retriever: Any) -> DenseRetriever | None:
    """The dense retriever of a dense or hybrid retriever (None for BM25)."""
    if isinstance(retriever, HybridRetriever):
        return retriever.dense
    return retriever if isinstance(retriever, DenseRetriever) else None


def _contributions(ranking: tuple, cands: np.ndarray, fusion: str, weight: float,
                   c: int) -> np.ndarray:
    """What one ranking adds to each fused candidate's score (:func:`index.convex` and
    :func:`index.rrf`: a candidate it lacks gets its lowest normalised score, resp. 0)."""
    scores, ids = np.asarray(ranking[0][0], dtype=np.float64), np.asarray(ranking[1][0])
    s, d = scores[ids >= 0], ids[ids >= 0]
    if fusion == "rrf":
        order = np.argsort(-s, kind="stable")
        value = {x: weight / (c + r) for r, x in enumerate(d[order].tolist(), 1)}
        floor = 0.0
    else:
        if fusion == "zscore":
            norm = zscores(s)
        else:
            lo, hi = (s.min(), s.max()) if s.size else (0.0, 0.0)
            norm = (s - lo) / (hi - lo) if hi > lo else np.ones_like(s)
        value = dict(zip(d.tolist(), (weight * norm).tolist(), strict=True))
        floor = weight * float(norm.min()) if norm.size else 0.0
    return np.array([value.get(x, floor) for x in np.asarray(cands).tolist()], dtype=np.float64)


def _cosine(dense: DenseRetriever, qv: np.ndarray, row: int) -> float | None:
    """The query's inner product with a record's vector (its best passage's)."""
    from index.passages import record_rows

    vectors = dense.vectors
    try:
        if dense.passages:
            ids = vectors.ids()
            ids = ids[record_rows(ids, True) == row]
            if not ids.size:
                return None
            return float((vectors.vectors_of(ids) @ qv[0]).max())
        return float(vectors.vectors_of([row])[0] @ qv[0])
    except KeyError:
        return None


def _number_order(n: str) -> tuple[float, str]:
    return float(n), n


def explain(pipeline: Pipeline, question: str, rows: list[int], answers: list[str],
            searched: int) -> list[dict]:
    """Why each record ranked for *question* (text with MathML, as the pipeline searched it).

    Args:
        pipeline: the pipeline that ranked them (its searcher's parts are used).
        rows: the records' store row ids, in rank order.
        answers: their linear answer texts (the store's ``answer_text``).
        searched: how deep the first stage searched (the ranks of dense and BM25 modes).

    Returns:
        One dict per record: ``first_stage`` (the first stage's score), ``dense`` and
        ``bm25`` (``score``: the cosine of query and answer vectors, resp. the BM25 score;
        ``rank`` in that ranking, None past its first ``depth``; ``part``: what it adds to
        ``first_stage``), ``givens`` (``coverage``, ``weight``, ``part`` and the ``numbers``
        of the question the answer has) and ``formulas`` in hybrid mode, None where a part is
        not used; ``rerank`` is left None for the caller.
    """
    retriever = pipeline.searcher.retriever
    hybrid = isinstance(retriever, HybridRetriever)
    dense = dense_of(retriever)
    lexical = retriever.lexical if hybrid else \
        retriever if isinstance(retriever, LexicalRetriever) else None
    depth = retriever.depth if hybrid else searched
    linear = search_text(QUERY_ID, question)
    out = [{"first_stage": 0.0, "dense": None, "bm25": None, "givens": None, "formulas": None,
            "rerank": None} for _ in rows]
    qv = None
    rankings = []
    for name in ("dense", "bm25"):
        part = dense if name == "dense" else lexical
        if part is None:
            continue
        found = part.search_texts([linear], depth)  # kept from the search, when it keeps
        rankings.append(found)
        listed = [(r, s) for s, r in zip(found[0][0].tolist(), found[1][0].tolist(),
                                          strict=True) if r >= 0]
        ranks = {r: i for i, (r, _) in enumerate(listed, 1)}
        scores = dict(listed)
        missing = [r for r in rows if r not in scores] if name == "bm25" else []
        if missing:  # past the ranking's depth: their own scores
            found_scores = lexical.index.scores_of(lexical.tokens(linear), missing)
            scores.update(zip(missing, map(float, found_scores), strict=True))
        for slot, row in zip(out, rows, strict=True):
            if name == "dense" and row not in scores and qv is None:
                qv = dense.encoder.encode([linear])
            value = scores.get(row, 0.0) if name == "bm25" or row in scores else \
                _cosine(dense, qv, row)
            slot[name] = {"score": value, "rank": ranks.get(row), "part": None}
    if not hybrid:
        name = "dense" if dense is not None else "bm25"
        for slot in out:
            slot[name]["part"] = slot["first_stage"] = slot[name]["score"]
        return out
    from index import convex, rrf

    if retriever.fusion == "rrf":
        fused = rrf(rankings, k=depth, c=retriever.c, weights=retriever.weights)
    else:
        fused = convex(rankings, k=depth, weights=retriever.weights,
                       normalize=retriever.fusion)
    live = fused[1][0] >= 0
    cands, fused_scores = fused[1][0][live], fused[0][0][live]
    parts = np.array([_contributions(found, cands, retriever.fusion, w, retriever.c)
                      for found, w in zip(rankings, retriever.weights, strict=True)])
    if retriever.givens is not None or retriever.formulas is not None:
        # The terms are added to the fused scores z-scored over the candidates.
        spread = fused_scores.std()
        parts = (parts - parts.mean(axis=1, keepdims=True)) / spread if spread > 0 else \
            np.zeros_like(parts)
    where = {int(r): i for i, r in enumerate(cands)}
    formula_cov = retriever.formulas.coverages([question], cands[None, :])[0] \
        if retriever.formulas is not None else None
    asked = numbers(linear)
    for slot, row, answer in zip(out, rows, answers, strict=True):
        i = where.get(row)
        if i is None:  # not among the fused candidates (only past `depth`)
            continue
        slot["dense"]["part"], slot["bm25"]["part"] = float(parts[0, i]), float(parts[1, i])
        total = float(parts[:, i].sum())
        if retriever.givens is not None:
            has = numbers(answer)
            cov = coverage(asked, has)
            slot["givens"] = {"coverage": cov, "weight": retriever.givens.weight,
                              "part": retriever.givens.weight * cov,
                              "numbers": sorted(asked & has, key=_number_order)}
            total += slot["givens"]["part"]
        if formula_cov is not None:
            cov = float(formula_cov[i])
            slot["formulas"] = {"coverage": cov, "weight": retriever.formulas.weight,
                                "part": retriever.formulas.weight * cov}
            total += slot["formulas"]["part"]
        slot["first_stage"] = total
    return out

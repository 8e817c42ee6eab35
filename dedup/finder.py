"""Finding duplicate problems in an index: for given questions, or mined within the corpus.

Candidates are the nearest stored questions by embedding (:mod:`index.questions`); each is
then scored by :func:`dedup.features.pair_features` -- same givens, same question -- and
called a duplicate at ``score >= threshold``. Mining compares every stored question with its
``k`` nearest neighbours only (paraphrase mining, not all pairs) and joins the duplicate pairs
into groups (union-find).

Example:
    >>> finder = DuplicateFinder(QuestionIndex.open(Path("idx")))  # doctest: +SKIP
    >>> finder.find([("q1", "Ann has 3 apples ...")])[0][0].duplicate  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Collection, Iterable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from dedup.features import Candidate, Side, fitted, score_pairs
from mathcore.device import backend_option, device_option
from mathcore.options import option
from mathcore.runs import batched, iter_queries_with_finals, linear_query
from retriever.questions import QuestionIndex

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DedupConfig:
    """Settings of ``mathmatch dedup``.

    Args:
        index: the index folder.
        queries: questions to check (a queries file as for ``match``); None mines the corpus.
        threshold: duplicate score at or above which a pair is called a duplicate (None:
            the fitted one, :func:`dedup.features.fitted`).
        k: candidates per question (nearest stored questions).
        min_cosine: mining only scores neighbour pairs at least this similar.
        device: ``auto``, ``cpu`` or ``cuda`` for encoding.
        batch_size: questions encoded at a time.

    The command-line fields own their flags and help (``mathmatch dedup``:
    :func:`mathcore.options.add_options`).
    """

    index: Path
    queries: Path | None = None
    queries_format: str = "auto"  # how *queries* is read (mathcore.runs.QUERY_FORMATS)
    threshold: float | None = option(None, "duplicate score from which a pair is a duplicate",
                                     metavar="T", default_text="chosen on dev pairs")
    k: int = option(10, "candidates per question")
    min_cosine: float = option(0.6, "mining: neighbours less similar than C are not scored",
                               metavar="C")
    device: str = device_option()
    backend: str = backend_option()
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.threshold is None:  # the fitted one (dedup/models/duplicates.json)
            object.__setattr__(self, "threshold", fitted().threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if not -1.0 <= self.min_cosine <= 1.0:
            raise ValueError(f"min_cosine must be in [-1, 1], got {self.min_cosine}")


class DuplicateFinder:
    """Duplicates of questions among the records of an index.

    Args:
        questions: the index's question vectors.
        threshold: duplicate score for the ``duplicate`` verdict (None: the fitted one).
        judge: the insertion judge (:mod:`dedup.judge`); None: the shipped one, loaded
            when first needed.
        judge_all: whether :meth:`find` asks the judge about every candidate (exact scores
            throughout, as ``mathmatch dedup`` prints them); False asks it only where it can
            change a verdict (:func:`dedup.features.score_pairs` with the threshold as floor),
            for callers that use only the duplicates among the candidates. Verdicts, and the
            scores of duplicates, are the same either way; :meth:`mine` always does the latter.
    """

    def __init__(self, questions: QuestionIndex, threshold: float | None = None,
                 judge: Any = None, judge_all: bool = True) -> None:
        self.questions = questions
        self.store = questions.store
        self.threshold = fitted().threshold if threshold is None else threshold
        self.judge, self.judge_all = judge, judge_all
        self._sides: dict[int, tuple[str, Side]] = {}

    def _side(self, rowids: Iterable[int]) -> dict[int, tuple[str, Side]]:
        todo = sorted({int(r) for r in rowids if r >= 0} - self._sides.keys())
        for rec in self.store.get(todo):
            self._sides[rec.rowid] = (rec.record.id, Side.of(
                rec.question_text, rec.record.question, rec.record.final))
        if len(self._sides) > 200_000:  # bound the cache on very large corpora
            self._sides.clear()
            return self._side(rowids)
        return {int(r): self._sides[int(r)] for r in rowids if int(r) in self._sides}

    def find(self, queries: Sequence[tuple[str, str]], k: int = 10,
             exclude: Mapping[str, Collection[str]] | None = None,
             finals: Mapping[str, str | None] | None = None) -> list[list[Candidate]]:
        """Candidate duplicates of each ``(query_id, question)``, best score first.

        Args:
            queries: question ids and texts (text with inline MathML, or plain text).
            k: candidates per question.
            exclude: record ids never to return for a query id (e.g. the record a query was
                taken from).
            finals: final answers (MathML or text) of query ids, where known: a candidate
                whose own final answer differs is not a duplicate
                (:func:`dedup.features.answers_differ`).
        """
        if not queries:
            return []
        linear = [linear_query(qid, text) for qid, text in queries]
        extra = max((len(v) for v in (exclude or {}).values()), default=0)
        scores, rows = self.questions.search(linear, k + extra)
        sides = self._side(rows.ravel().tolist())
        kept: list[list[tuple[str, float]]] = []
        pairs: list[tuple[Side, Side, float]] = []
        for (qid, text), lin, srow, rrow in zip(queries, linear, scores, rows, strict=True):
            query = Side.of(lin, text, (finals or {}).get(qid))
            banned = set((exclude or {}).get(qid, ()))
            kept.append([])
            for s, r in zip(srow, rrow, strict=True):
                if r < 0 or int(r) not in sides or sides[int(r)][0] in banned:
                    continue
                doc_id, side = sides[int(r)]
                kept[-1].append((doc_id, float(s)))
                pairs.append((side, query, float(s)))
        scored = iter(score_pairs(pairs, self.judge,
                                  floor=0.0 if self.judge_all else self.threshold))
        out = []
        for row in kept:
            cands = []
            for doc_id, s in row:
                score = next(scored)
                cands.append(Candidate(doc_id, round(score, 6), score >= self.threshold,
                                       round(s, 6)))
            cands.sort(key=lambda c: -c.score)
            out.append(cands[:k])
        return out

    def mine(self, k: int = 10, min_cosine: float = 0.6, block: int = 512,
             progress: bool = False) -> list[tuple[list[str], dict[str, float]]]:
        """Duplicate groups within the corpus: each stored question against its k neighbours.

        Returns:
            Groups of two or more record ids (sorted), each with the best pair score that
            joined each member; groups in order of their first id.
        """
        ids, vecs = self.questions.all_vectors()
        vecs = np.asarray(vecs, dtype=np.float32)
        parent = list(range(len(ids)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        best: dict[int, float] = {}
        self._side(ids.tolist())  # read every question once
        kk = min(k + 1, len(ids))
        bar = tqdm(total=len(ids), unit="q", desc="mine", disable=not progress)
        for start in range(0, len(ids), block):
            sims = vecs[start:start + block] @ vecs.T
            top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
            found: list[tuple[int, int]] = []
            pairs: list[tuple[Side, Side, float]] = []
            for r, row in enumerate(top):
                i = start + r
                for j in row:
                    j = int(j)
                    if j <= i or sims[r, j] < min_cosine:
                        continue  # each pair once (from its lower index)
                    sides = self._side([int(ids[i]), int(ids[j])])
                    if len(sides) < 2:
                        continue
                    found.append((i, j))
                    pairs.append((sides[int(ids[i])][1], sides[int(ids[j])][1],
                                  float(sims[r, j])))
            # Only verdicts matter here: the judge is asked about pairs it could make duplicates.
            for (i, j), score in zip(found, score_pairs(pairs, self.judge,
                                                        floor=self.threshold), strict=True):
                if score >= self.threshold:
                    parent[root(i)] = root(j)
                    best[i] = max(best.get(i, 0.0), score)
                    best[j] = max(best.get(j, 0.0), score)
            bar.update(len(top))
        bar.close()
        groups: dict[int, list[int]] = {}
        for i in best:
            groups.setdefault(root(i), []).append(i)
        names = self.store.ids_of([int(ids[i]) for i in best])
        out = []
        for members in groups.values():
            named = sorted((names[int(ids[i])], best[i]) for i in members)
            out.append(([n for n, _ in named], {n: round(s, 6) for n, s in named}))
        out.sort(key=lambda g: g[0][0])
        return out


def write_candidates(fh: IO[str], qid: str, cands: Sequence[Candidate]) -> None:
    """One JSONL row ``{"query_id", "candidates": [{"doc_id", "score", "duplicate"}]}``."""
    fh.write(json.dumps({"query_id": qid, "candidates": [
        {"doc_id": c.doc_id, "score": c.score, "duplicate": c.duplicate} for c in cands]},
        ensure_ascii=False) + "\n")


def run_dedup(cfg: DedupConfig, out: IO[str], progress: bool = False) -> dict:
    """``mathmatch dedup``: check the questions of ``cfg.queries``, or mine the corpus.

    Returns:
        Counts: questions (or groups) written and duplicates found.
    """

    finder = DuplicateFinder(QuestionIndex.open(cfg.index, device=cfg.device, progress=progress,
                                                backend=cfg.backend), cfg.threshold)
    try:
        if cfg.queries is None:
            groups = finder.mine(cfg.k, cfg.min_cosine, progress=progress)
            for members, scores in groups:
                head, rest = members[0], members[1:]
                write_candidates(out, head, [Candidate(m, scores[m], True, 0.0) for m in rest])
            return {"groups": len(groups), "records": sum(len(g) for g, _ in groups)}
        n = dups = 0
        bar = tqdm(unit="q", desc="dedup", disable=not progress)
        queries = iter_queries_with_finals(cfg.queries, cfg.queries_format)
        for batch in batched(queries, cfg.batch_size):
            finals = {qid: final for qid, _, final in batch if final}
            found = finder.find([(qid, text) for qid, text, _ in batch], cfg.k, finals=finals)
            for (qid, _, _), cands in zip(batch, found, strict=True):
                write_candidates(out, qid, cands)
                dups += sum(c.duplicate for c in cands)
            n += len(batch)
            bar.update(len(batch))
        bar.close()
        return {"questions": n, "duplicates": dups}
    finally:
        finder.questions.close()

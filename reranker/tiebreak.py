"""Breaking near-ties of a ranking with symbolic evidence about the candidates' final answers.

A retriever's scores often differ by less than they can be trusted to: two answers 0.001
apart are a tie. :class:`TieBreaker` reorders only such near-ties, by evidence SymPy can give
about each candidate record's ``final`` answer:

1. the answer checker (:func:`mathcore.symbolic.verify`): a ``VERIFIED`` candidate first, a
   ``REFUTED`` one last;
2. agreement with the final answers of the query's *duplicates* in the corpus (found by
   :class:`dedup.finder.DuplicateFinder`): more equivalent duplicate answers first;
3. consensus: more candidates of the same ranking with an equivalent final answer first;
4. otherwise the original order (the sort is stable).

**Near-tie groups.** Walking down the ranking, a group starts at the first candidate not yet
in a group (its *head*) and takes every following candidate whose score is within ``margin``
of the head's score; the next candidate starts the next group. Candidates reorder only inside
their group, and keep the group's scores in rank order, so a candidate alone in its group never
moves and the scores stay non-increasing. ``margin=0`` groups only exact ties.

Every symbolic call runs in the worker pool of :mod:`mathcore.symbolic.runtime` under
``timeout`` seconds, and a query spends at most ``budget`` seconds on evidence: what is not
decided by then counts as unknown.

Example:
    >>> tb = TieBreaker(margin=0.05)  # doctest: +SKIP
    >>> tb.rerank({"q1": "Solve 2*x = 4 for x."}, {"q1": {"a": 0.90, "b": 0.88}}, store)
    ... # doctest: +SKIP
    {'q1': {'b': 0.9, 'a': 0.88}}
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Collection, Mapping, Sequence

from mathcore.runs import Run
from mathcore.symbolic import Check, Verdict, WorkerPool, equivalent, verify

logger = logging.getLogger(__name__)

# Chosen on the even-numbered dev match queries (python -m benchmarks.tiebreak; README,
# "Symbolic checks"), per retrieval mode since their score scales differ: no margin above 0
# raised MRR@10 there by the required 0.002 in either mode, so only exact ties are broken
# (bm25 was not measured and follows).
DEFAULT_MARGINS = {"hybrid": 0.0, "dense": 0.0, "bm25": 0.0}
DEFAULT_MARGIN = DEFAULT_MARGINS["hybrid"]
_TIER = {Check.VERIFIED: 0, Check.UNKNOWN: 1, Check.REFUTED: 2}
_MIN_CALL = 0.05  # seconds: below this a call is not worth starting
# Scores are floats: "within margin" allows for rounding (1.0 - 0.98 > 0.02 in binary).


@dataclass(frozen=True)
class Evidence:
    """What is known of one candidate's final answer."""

    check: Check = Check.UNKNOWN
    agreement: int = 0
    consensus: int = 0

    def key(self) -> tuple[int, int, int]:
        """Sort key: verified first, refuted last, then more agreement, more consensus."""
        return (_TIER[self.check], -self.agreement, -self.consensus)


def near_tie_groups(scores: Sequence[float], margin: float) -> list[tuple[int, int]]:
    """``[start, end)`` spans of the near-tie groups of scores given in rank order.

    Example:
        >>> near_tie_groups([1.0, 0.99, 0.9, 0.5, 0.49], 0.02)
        [(0, 2), (2, 3), (3, 5)]
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    spans, i = [], 0
    while i < len(scores):
        j = i + 1
        while j < len(scores) and abs(scores[i] - scores[j]) <= margin + 1e-12:
            j += 1
        spans.append((i, j))
        i = j
    return spans


def reorder(ranking: Mapping[str, float], margin: float,
            evidence: Mapping[str, Evidence]) -> dict[str, float]:
    """One query's ranking with each near-tie group sorted by evidence (stable).

    Candidates without evidence count as unknown. The scores of a group are given back in
    rank order to its reordered members.
    """
    docs, scores = list(ranking), list(ranking.values())
    out: dict[str, float] = {}
    for start, end in near_tie_groups(scores, margin):
        members = docs[start:end]
        if end - start > 1:
            members = sorted(members, key=lambda d: evidence.get(d, Evidence()).key())
        for doc, score in zip(members, scores[start:end], strict=True):
            out[doc] = score
    return out


class TieBreaker:
    """Reorder near-ties of a run by symbolic evidence (see the module docstring).

    Args:
        margin: scores within this of a group's head are a near-tie (0: exact ties only).
        timeout: seconds for one symbolic call (verification or equivalence).
        budget: seconds of symbolic work per query.
        pool: worker pool (default: the shared one).
        finder: a :class:`dedup.finder.DuplicateFinder` over the same index, for the
            agreement with duplicates' answers (None: that evidence is skipped).
        duplicates: duplicate candidates looked at per query.

    Example:
        >>> TieBreaker(margin=0.01).margin
        0.01
    """

    def __init__(self, margin: float = DEFAULT_MARGIN, timeout: float = 2.0,
                 budget: float = 10.0, pool: WorkerPool | None = None, finder: Any = None,
                 duplicates: int = 5) -> None:
        if margin < 0 or timeout <= 0 or budget <= 0 or duplicates < 1:
            raise ValueError("margin must be >= 0; timeout, budget and duplicates > 0")
        self.margin, self.timeout, self.budget = margin, timeout, budget
        self.pool, self.finder, self.duplicates = pool, finder, duplicates
        self.stats = {"queries": 0, "moved": 0, "verified": 0, "refuted": 0}
        self._memo: dict[tuple[str, str], bool] = {}  # equivalence of two final answers

    def _time(self, deadline: float) -> float | None:
        left = deadline - time.monotonic()
        return min(self.timeout, left) if left >= _MIN_CALL else None

    def _same(self, a: str, b: str, deadline: float) -> bool:
        if a == b:
            return True
        key = (a, b) if a < b else (b, a)
        if key in self._memo:
            return self._memo[key]
        t = self._time(deadline)
        if t is None:
            return False
        verdict = equivalent(a, b, timeout=t, pool=self.pool)
        if verdict is not Verdict.UNKNOWN:  # an undecided pair may be retried with more time
            self._memo[key] = verdict is Verdict.EQUIVALENT
            if len(self._memo) > 100_000:
                self._memo.clear()
        return verdict is Verdict.EQUIVALENT

    def gather(self, question: str, finals: Mapping[str, str | None], wanted: Collection[str],
               duplicate_finals: Sequence[str]) -> dict[str, Evidence]:
        """Evidence for the *wanted* candidates of one query.

        Args:
            question: the query text.
            finals: final answer (MathML) of every candidate of the ranking, None if unknown.
            wanted: candidates to gather evidence for (members of near-tie groups).
            duplicate_finals: final answers of the query's duplicates in the corpus.
        """
        deadline = time.monotonic() + self.budget
        checks: dict[str, Check] = {}
        for doc in wanted:
            t = self._time(deadline)
            final = finals.get(doc)
            checks[doc] = verify(question, final, timeout=t, pool=self.pool) \
                if final and t is not None else Check.UNKNOWN
        out = {}
        for doc in wanted:
            final = finals.get(doc)
            if not final:
                out[doc] = Evidence(checks[doc])
                continue
            agree = sum(self._same(final, d, deadline) for d in duplicate_finals)
            consensus = sum(self._same(final, f, deadline)
                            for other, f in finals.items() if other != doc and f)
            out[doc] = Evidence(checks[doc], agree, consensus)
        return out

    def rerank(self, queries: Mapping[str, str], run: Mapping[str, Mapping[str, float]],
               store: Any, exclude: Mapping[str, Collection[str]] | None = None) -> Run:
        """The run with the near-ties of each query broken; other candidates never move.

        Args:
            queries: query id -> question text (queries missing here are left as they are).
            run: ``{query_id: {doc_id: score}}`` in rank order.
            store: the index's :class:`mathcore.store.Store` (for the final answers).
            exclude: record ids not to count as duplicates of a query (e.g. the record the
                query was taken from, when measuring).
        """
        todo = {q: {d for s, e in near_tie_groups(list(r.values()), self.margin)
                    if e - s > 1 for d in list(r)[s:e]}
                for q, r in run.items() if q in queries}
        todo = {q: w for q, w in todo.items() if w}
        dup_finals = self._duplicate_finals(queries, todo, store, exclude)
        out: Run = {}
        for qid, ranking in run.items():
            if qid not in todo:
                out[qid] = dict(ranking)
                continue
            finals = {}
            for doc in ranking:
                rec = store.by_id(doc)
                finals[doc] = rec.record.final if rec else None
            ev = self.gather(queries[qid], finals, todo[qid], dup_finals.get(qid, []))
            out[qid] = reorder(ranking, self.margin, ev)
            self._count(ranking, out[qid], ev)
        logger.info("tie-break (margin %g): %d of %d queries had near-ties; %d candidates "
                    "moved; %d verified, %d refuted", self.margin, len(todo), len(run),
                    self.stats["moved"], self.stats["verified"], self.stats["refuted"])
        return out

    def _duplicate_finals(self, queries: Mapping[str, str], todo: Mapping[str, Any], store: Any,
                          exclude: Mapping[str, Collection[str]] | None) -> dict[str, list[str]]:
        if self.finder is None or not todo:
            return {}
        pairs = [(q, queries[q]) for q in todo]
        found = self.finder.find(pairs, k=self.duplicates, exclude=exclude)
        out = {}
        for (qid, _), cands in zip(pairs, found, strict=True):
            finals = []
            for c in cands:
                rec = store.by_id(c.doc_id) if c.duplicate else None
                if rec is not None and rec.record.final:
                    finals.append(rec.record.final)
            out[qid] = finals
        return out

    def _count(self, before: Mapping[str, float], after: Mapping[str, float],
               ev: Mapping[str, Evidence]) -> None:
        self.stats["queries"] += 1
        self.stats["moved"] += sum(a != b for a, b in zip(before, after, strict=True))
        self.stats["verified"] += sum(e.check is Check.VERIFIED for e in ev.values())
        self.stats["refuted"] += sum(e.check is Check.REFUTED for e in ev.values())

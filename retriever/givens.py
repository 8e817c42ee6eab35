"""Givens agreement: how many of a question's numbers a candidate answer works with.

A solution restates the numbers of its problem as it uses them (``100 - 60 = 40``,
``51 = 3 · 17``), while the solution of a neighbouring problem -- the same topic, the same
wording, other numbers -- does not.  Neither the bi-encoder nor BM25 weighs that: to the
encoder ``60%`` and ``25%`` are close, and BM25 scores a number like any rare word.  So hybrid
search adds, to each of its first candidates, ``weight`` times the share of the question's
numbers that occur in the candidate's answer (:func:`coverage`), over the fused scores
z-normalised among those candidates.  On the dev match task this lifts MRR@10 by about 0.02
(README, "Retrieval quality"); a question without numbers is left in its fused order.

Numbers are read from linear text as digit strings (``1,360`` is ``1360``; ``3,4,5`` stays three
numbers); a number written in words is not read (``three`` in a question, ``3`` in its
solution), which keeps the check to a regular expression per answer.

Example:
    >>> coverage(numbers("A cup weighs 100 g and has 3 g of protein; he eats 200 g."),
    ...          numbers("He eats 200/100 = 2 cups, so 2 × 3 = 6 g"))
    1.0
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import numpy as np

from mathcore.scores import check_weight as check_term_weight
from mathcore.scores import rank_with_terms

# Chosen on the even-numbered dev match queries over the fused top 100 (odd ones held out;
# README, "Retrieval quality"): weights 3-4 are best on both halves, 6 and more lose.
DEFAULT_GIVENS_WEIGHT = 3.0
# The --givens-weight help of every command that searches in hybrid mode (match, bench, tune
# reranker): written once here.
GIVENS_WEIGHT_HELP = ("hybrid mode: add W times the share of the question's numbers found in a "
                      "candidate's answer to its z-scored fused score (the first --depth "
                      "candidates); 0 turns it off")

_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def check_weight(weight: float) -> float:
    """*weight* itself if it is a usable givens weight (finite, 0 or more).

    Raises:
        ValueError: for a negative or non-finite weight.
    """
    return check_term_weight(weight, "givens")


def numbers(text: str) -> frozenset[str]:
    """The distinct numbers of a linear text, as digit strings (thousands commas dropped)."""
    return frozenset(_NUMBER_RE.findall(_THOUSANDS_RE.sub("", text)))


def coverage(question: frozenset[str], answer: frozenset[str]) -> float:
    """Share of the *question*'s numbers that the *answer* has too (both :func:`numbers`);
    0 for a question without numbers."""
    if not question:
        return 0.0
    return len(question & answer) / len(question)


class GivensAgreement:
    """Rescore a ranking by the agreement of each candidate answer with the question's numbers.

    Args:
        answers: the linear answer texts of store row ids, in the order asked (for an index
            folder, ``store.texts``).
        weight: the weight of :func:`coverage` against the z-normalised first-stage scores.

    Example:
        >>> agree = GivensAgreement(store.texts)  # doctest: +SKIP
        >>> scores, rows = agree.rescore(["What is 12 + 30?"], scores, rows, k=10)  # doctest: +SKIP
    """

    CACHED = 200_000  # rows whose numbers are kept

    def __init__(self, answers: Callable[[Sequence[int]], list[str]],
                 weight: float = DEFAULT_GIVENS_WEIGHT) -> None:
        self.answers = answers
        self.weight = check_weight(weight)
        # The numbers of answers read so far, by row: a row's text never changes (an added or
        # replaced record gets a new row), and a server asks for the same answers again and
        # again. Emptied when it reaches CACHED rows.
        self._numbers: dict[int, frozenset[str]] = {}

    def rescore(self, texts: Sequence[str], scores: np.ndarray, rows: np.ndarray,
                k: int) -> tuple[np.ndarray, np.ndarray]:
        """The first *k* of each query's candidates by z(score) + weight x coverage.

        Args:
            texts: the queries' linear texts.
            scores, rows: ``[n, depth]`` first-stage scores and row ids (best first; padding
                has row id -1), every candidate of a row rescored.
            k: results per query.

        Returns:
            ``(scores [n, k] float64, rows [n, k] int64)``, best first; ties keep the
            first-stage order; padding has row id -1 and score -inf.
        """
        rows = np.asarray(rows, dtype=np.int64)
        return rank_with_terms(scores, rows, self.weight * self.coverages(texts, rows), k)

    def coverages(self, texts: Sequence[str], rows: np.ndarray) -> np.ndarray:
        """``[n, depth]``: :func:`coverage` of each candidate answer of each query (0 for
        padding); each answer's numbers are read once, however many queries it serves."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros(rows.shape, dtype=np.float64)
        wanted = sorted({int(r) for r in rows.ravel() if r >= 0} - self._numbers.keys())
        if len(self._numbers) + len(wanted) > self.CACHED:
            self._numbers.clear()
            wanted = sorted({int(r) for r in rows.ravel() if r >= 0})
        self._numbers.update((r, numbers(t)) for r, t in
                             zip(wanted, self.answers(wanted) if wanted else [], strict=True))
        found = self._numbers
        for i, text in enumerate(texts):
            asked = numbers(text)
            for j, r in enumerate(rows[i]):
                if r >= 0:
                    out[i, j] = coverage(asked, found[int(r)])
        return out

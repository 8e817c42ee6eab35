"""Candidate answers and how they are compared with what a question computes.

A candidate arrives as MathML, as the ``srepr`` of a SymPy object made by the parent, or as
ASCII math; it is read into a :class:`Candidate` (its SymPy value and its normalised text, for
answers such as ``9:33 AM`` or base-14 numerals). Comparisons go through
:func:`mathcore.symbolic.equivalence.compare_in_process`: this code runs inside a worker.

Imports: parsing (:mod:`~mathcore.symbolic.ascii`, :mod:`~mathcore.symbolic.builders`,
:mod:`~mathcore.symbolic.convert`), comparison (:mod:`~mathcore.symbolic.equivalence`,
:mod:`~mathcore.symbolic.comparison_tasks` for ``from_srepr``) and
:mod:`~mathcore.symbolic.word_problems`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from mathcore.linear import to_linear
from mathcore.mathml import MathMLError, parse_math
from mathcore.symbolic.ascii import parse_ascii
from mathcore.symbolic.builders import Unsupported
from mathcore.symbolic.comparison_tasks import from_srepr
from mathcore.symbolic.convert import to_sympy
from mathcore.symbolic.equivalence import DIFFERENT, EQUIVALENT, compare_in_process
from mathcore.symbolic.word_problems import Question

VERIFIED, REFUTED, UNKNOWN = "verified", "refuted", "unknown"


@dataclass(frozen=True)
class Candidate:
    """A candidate answer: its SymPy value (None if unreadable) and its text."""

    expr: sp.Basic | None
    text: str


def read_candidate(payload: dict) -> Candidate:
    """A :class:`Candidate` from ``{"mathml": ...}``, ``{"srepr": ...}`` or ``{"ascii": ...}``."""
    if "mathml" in payload:
        try:
            el = parse_math(payload["mathml"])
        except MathMLError:
            return Candidate(None, "")
        conv = to_sympy(el)
        return Candidate(conv.expr, normal_text(to_linear(el)))
    if "srepr" in payload:
        expr = from_srepr(payload["srepr"])
        return Candidate(expr, normal_text(str(expr)))
    conv = parse_ascii(payload.get("ascii", ""))
    return Candidate(conv.expr, normal_text(payload.get("ascii", "")))


def normal_text(text: str) -> str:
    """Text without spaces, lower case, ASCII minus: ``9:33 AM`` -> ``9:33am``."""
    return "".join(text.replace("\u2212", "-").split()).lower()


def from_verdict(verdict) -> str:
    """An equivalence verdict as a check result."""
    return VERIFIED if verdict is EQUIVALENT else REFUTED if verdict is DIFFERENT else UNKNOWN


def candidate_value(q: Question, cand: Candidate,
                    letters: frozenset = frozenset()) -> sp.Basic | None:
    """The candidate with letters of the question replaced by their values.

    MathML readers take ``i`` and ``e`` for constants; when the question uses them as letters
    (a value of its context, or a letter of the expected answer, *letters*), they are letters.
    """
    if cand.expr is None:
        return None
    expr = cand.expr
    swap = {}
    for const, name in ((sp.I, "i"), (sp.E, "e")):
        letter = sp.Symbol(name)
        if expr.has(const) and (letter in q.env.values or letter in letters):
            swap[const] = letter
    if swap:
        expr = expr.xreplace(swap)
    return q.env.resolve(expr)


def same(q: Question, expected: sp.Basic, cand: Candidate, *, positive: bool = False) -> str:
    """Compare the candidate with the expected value (``positive``: letters are positive)."""
    value = candidate_value(q, cand, frozenset(getattr(expected, "free_symbols", ())))
    if value is None:
        return UNKNOWN
    return from_verdict(compare_in_process(expected, value, assume_positive=positive))


def same_bool(truth: bool, cand: Candidate) -> str:
    """Compare a True/False candidate with the truth of a yes/no question."""
    if cand.expr is None:
        return UNKNOWN
    if isinstance(cand.expr, sp.logic.boolalg.BooleanAtom):
        return VERIFIED if bool(cand.expr) == truth else REFUTED
    return REFUTED  # a number or expression is no answer to a yes/no question


def number(x: sp.Basic, what: str) -> sp.Expr:
    """*x* if it is a real number, else :class:`Unsupported` naming *what*."""
    if not (isinstance(x, sp.Expr) and x.is_number and x.is_real):
        raise Unsupported(f"{what} is not a real number")
    return x


def integer(x: sp.Basic, what: str) -> int:
    """*x* as an int if it is an integer, else :class:`Unsupported` naming *what*."""
    if not (isinstance(x, sp.Expr) and x.is_Integer):
        raise Unsupported(f"{what} is not an integer")
    return int(x)


def list_values(q: Question, text: str) -> list[sp.Expr]:
    """The values of a comma-separated list of numbers or letters."""
    return [number(q.env.parse(t), "list item") for t in re.split(r",\s*|\s+and\s+", text)]


def choose(q: Question, values: list, index: int, cand: Candidate) -> str:
    """The candidate names option *index*: by its label, its value, or a letter's value."""
    if q.options:
        labels = [lab for lab, _ in q.options]
        if isinstance(cand.expr, sp.Symbol) and cand.expr.name in labels:
            return VERIFIED if labels.index(cand.expr.name) == index else REFUTED
    if any(values[index] == v for i, v in enumerate(values) if i != index):
        return UNKNOWN
    return same(q, values[index], cand)

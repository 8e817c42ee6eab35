"""The comparison's worker tasks: ``equal`` and ``same_set``, registered with the runtime.

:mod:`mathcore.symbolic.equivalence` sends them (or, inside a worker, calls them in process)
when structure and numbers did not decide. Each takes JSON values -- expressions as
``sympy.srepr`` strings made by the parent -- and returns a short JSON value (``"equal"``,
``"different"``, ``"unknown"``), so that nothing the worker computes is ever parsed back by the
parent.

Imports: :mod:`~mathcore.symbolic.runtime` (to register the tasks),
:mod:`~mathcore.symbolic.numeric_compare`.
"""

from __future__ import annotations

import sympy as sp
from sympy.parsing.sympy_parser import parse_expr

from mathcore.symbolic import numeric_compare as numeric
from mathcore.symbolic.runtime import task

EQUAL, DIFFERENT, UNKNOWN = "equal", "different", "unknown"


def from_srepr(text: str) -> sp.Basic:
    """Rebuild an expression from the ``srepr`` the parent produced (never from user text)."""
    return parse_expr(text, evaluate=False)


def _positive(expr: sp.Basic) -> sp.Basic:
    return expr.xreplace({s: sp.Dummy(s.name, positive=True) for s in expr.free_symbols})


def symbolic_zero(d: sp.Expr, assume_positive: bool = False) -> bool:
    """True when SymPy proves ``d == 0`` (expand, simplify, then ``equals``)."""
    if d == 0:
        return True
    if assume_positive:
        d = _positive(d)
    if sp.expand(d) == 0:
        return True
    if sp.simplify(d) == 0:
        return True
    return d.equals(0) is True


@task("equal")
def equal(a_srepr: str, b_srepr: str, options: dict) -> str:
    """Compare two expressions: numeric first when asked, then symbolic.

    Options: ``numeric`` (run the numeric stage here), ``trust_numeric`` (numeric agreement
    decides), ``assume_positive``, ``seed``.
    """
    a, b = from_srepr(a_srepr), from_srepr(b_srepr)
    positive = bool(options.get("assume_positive"))
    if options.get("numeric"):
        verdict = numeric.compare(a, b, seed=int(options.get("seed", 0)), positive_only=positive)
        if verdict == numeric.DIFFERENT_:
            return DIFFERENT
        if verdict == numeric.EQUAL and options.get("trust_numeric"):
            return EQUAL
    return EQUAL if symbolic_zero(a - b, positive) else UNKNOWN


def _as_set(value: sp.Basic, symbol: sp.Symbol) -> sp.Set:
    if isinstance(value, sp.FiniteSet) and value.args and all(
        isinstance(v, sp.Eq) for v in value.args
    ):
        return sp.Union(*[_as_set(v, symbol) for v in value.args])
    if isinstance(value, sp.Set):
        return value
    if isinstance(value, sp.Eq):
        return sp.solveset(value.lhs - value.rhs, symbol, sp.S.Reals)
    return value.as_set()


@task("same_set")
def same_set(a_srepr: str, b_srepr: str, symbol: str) -> str:
    """Compare two sets of real numbers, each a set, an equation or an inequality in *symbol*."""
    x = sp.Symbol(symbol)
    a = _as_set(from_srepr(a_srepr), x)
    b = _as_set(from_srepr(b_srepr), x)
    if a == b:
        return EQUAL
    left, right = sp.Complement(a, b), sp.Complement(b, a)
    if left is sp.EmptySet and right is sp.EmptySet:
        return EQUAL
    for part in (left, right):
        if isinstance(part, (sp.FiniteSet, sp.Interval)) and part is not sp.EmptySet:
            return DIFFERENT
    return UNKNOWN

"""Numeric comparison of two expressions at seeded random points.

Two expressions are evaluated (30 significant digits, SymPy's ``evalf`` with exact
substitution, so cancellation is handled) at the same points: positive reals first, then
complex points. The outcome is one of:

* ``DIFFERENT_`` -- they differ clearly at a positive real point (or, without symbols, at all);
* ``EQUAL`` -- they agree at every point, at least :data:`MIN_POINTS` of them: for exact
  inputs, SymPy's strict evaluation cannot tell their difference from zero (it certifies the
  digits of any nonzero value, however small); with binary floats in an input, they agree to
  ``1e-12`` relative;
* ``BRANCH`` -- they agree on positive reals but not at complex points (``sqrt(x**2)`` and
  ``x``): equal only under assumptions, so not decided here;
* ``INCONCLUSIVE`` -- too few points could be evaluated (undefined functions, poles), or the
  difference is in the grey zone between the two tolerances.

This module runs both in the parent (for small expressions) and in the worker processes
(:mod:`mathcore.symbolic.comparison_tasks`).

Imports: nothing of :mod:`mathcore.symbolic` (the bottom of the comparison layer).
"""

from __future__ import annotations

import random

import mpmath
import sympy as sp
from sympy.core.evalf import PrecisionExhausted

EQUAL = "equal"
DIFFERENT_ = "different"
BRANCH = "branch"
INCONCLUSIVE = "inconclusive"

MIN_POINTS = 3
DIGITS = 30
# Working precision (digits) strict evaluation may climb to before calling a difference zero.
MAX_PRECISION = 200
_TINY = mpmath.mpf("1e-40")


def _tolerances(a: sp.Basic, b: sp.Basic) -> tuple[float, float]:
    """(agree below, differ above) relative tolerances."""
    if a.has(sp.Float) or b.has(sp.Float):
        return 1e-12, 1e-6
    return 1e-20, 1e-10


def _to_mpc(value: sp.Basic) -> mpmath.mpc | None:
    if not getattr(value, "is_number", False) or value.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        return None
    try:
        re, im = value.as_real_imag()
        if not (re.is_Float or re.is_zero or re.is_Rational):
            return None
        if not (im.is_Float or im.is_zero or im.is_Rational):
            return None
        with mpmath.workprec(120):
            return mpmath.mpc(mpmath.mpf(sp.Float(re, DIGITS)._mpf_),
                              mpmath.mpf(sp.Float(im, DIGITS)._mpf_))
    except (TypeError, ValueError, AttributeError):
        return None


def evaluate(expr: sp.Expr, point: dict) -> mpmath.mpc | None:
    """The value of *expr* at *point* as an mpmath complex, or None when it has none."""
    try:
        value = expr.evalf(DIGITS, subs=point) if point else expr.evalf(DIGITS)
    except (TypeError, ValueError, ArithmeticError, AttributeError, RecursionError):
        return None
    return _to_mpc(value)


def sample_points(symbols: list[sp.Symbol], seed: int, count: int,
                  complex_points: bool) -> list[dict]:
    """Seeded points: values in [0.5, 3] (positive reals) or of modulus 0.5..3 (complex)."""
    rng = random.Random(seed)
    points = []
    for _ in range(count):
        point = {}
        for s in symbols:
            if complex_points:
                re, im = rng.uniform(-2.0, 2.0), rng.choice([-1, 1]) * rng.uniform(0.3, 2.0)
                point[s] = sp.Float(re, DIGITS) + sp.I * sp.Float(im, DIGITS)
            else:
                point[s] = sp.Float(rng.uniform(0.5, 3.0), DIGITS)
        points.append(point)
    return points


def _zero_at(d: sp.Expr, point: dict) -> bool | None:
    """Whether ``d`` vanishes at *point*: evalf in strict mode either certifies digits of a
    nonzero value or fails to tell the value from zero (None: not a number there)."""
    try:
        value = d.evalf(DIGITS, subs=point, strict=True, maxn=MAX_PRECISION) if point else (
            d.evalf(DIGITS, strict=True, maxn=MAX_PRECISION))
    except PrecisionExhausted:
        return True
    except (TypeError, ValueError, ArithmeticError, AttributeError, RecursionError):
        return None
    v = _to_mpc(value)
    if v is None:
        return None
    return v == 0


def _compare_at(a: sp.Expr, b: sp.Expr, d: sp.Expr | None, point: dict, tol_eq: float,
                tol_diff: float) -> str:
    va, vb = evaluate(a, point), evaluate(b, point)
    if va is None or vb is None:
        return INCONCLUSIVE
    if d is not None:
        # Exact inputs: decide on the difference itself, so that x + 10**30 and x + 10**30 + 1
        # (equal to 30 digits) still differ.
        zero = _zero_at(d, point)
        if zero is None:
            return INCONCLUSIVE
        return EQUAL if zero else DIFFERENT_
    with mpmath.workprec(120):
        scale = max(abs(va), abs(vb))
        if scale == 0:
            return EQUAL
        if scale < _TINY:
            return INCONCLUSIVE
        rel = abs(va - vb) / scale
    if rel <= tol_eq:
        return EQUAL
    if rel > tol_diff:
        return DIFFERENT_
    return INCONCLUSIVE


def _variables(a: sp.Expr, b: sp.Expr) -> list[sp.Symbol]:
    return sorted(a.free_symbols | b.free_symbols, key=lambda s: s.name)


def compare(a: sp.Expr, b: sp.Expr, *, seed: int = 0, points: int = 4,
            positive_only: bool = False) -> str:
    """Compare two expressions numerically; see the module docstring for the outcomes."""
    tol_eq, tol_diff = _tolerances(a, b)
    exact = not (a.has(sp.Float) or b.has(sp.Float))
    d = a - b if exact else None
    symbols = _variables(a, b)
    if not symbols:
        return _compare_at(a, b, d, {}, tol_eq, tol_diff)
    real = [_compare_at(a, b, d, p, tol_eq, tol_diff)
            for p in sample_points(symbols, seed, points, complex_points=False)]
    if DIFFERENT_ in real:
        return DIFFERENT_
    if positive_only:
        return EQUAL if real.count(EQUAL) >= MIN_POINTS else INCONCLUSIVE
    cplx = [_compare_at(a, b, d, p, tol_eq, tol_diff)
            for p in sample_points(symbols, seed + 1, points, complex_points=True)]
    if DIFFERENT_ in cplx:
        return BRANCH if real.count(EQUAL) >= MIN_POINTS else INCONCLUSIVE
    if real.count(EQUAL) + cplx.count(EQUAL) >= 2 * MIN_POINTS and INCONCLUSIVE not in cplx:
        return EQUAL
    if real.count(EQUAL) >= MIN_POINTS and cplx.count(EQUAL) >= MIN_POINTS:
        return EQUAL
    return INCONCLUSIVE


def proportional(a: sp.Expr, b: sp.Expr, *, seed: int = 0, points: int = 5) -> bool | None:
    """Whether ``a = c*b`` for a nonzero constant c (two equations with the same solutions).

    Returns None when too few points could be evaluated.
    """
    symbols = _variables(a, b)
    if not symbols:
        return None
    ratios = []
    for p in sample_points(symbols, seed, points, complex_points=True):
        va, vb = evaluate(a, p), evaluate(b, p)
        if va is None or vb is None or abs(vb) < _TINY or abs(va) < _TINY:
            continue
        ratios.append(va / vb)
    if len(ratios) < MIN_POINTS:
        return None
    first = ratios[0]
    with mpmath.workprec(120):
        return all(abs(r - first) <= 1e-15 * abs(first) for r in ratios[1:])

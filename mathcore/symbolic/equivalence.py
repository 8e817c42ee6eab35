"""Are two answers the same mathematical object? A three-way verdict under a hard time limit.

:func:`equivalent` takes SymPy objects, MathML (elements or strings) or ASCII math and returns
:class:`Verdict` ``EQUIVALENT``, ``DIFFERENT`` or ``UNKNOWN`` -- never a hang:

* structure first: equations (``x = 2`` vs ``2 = x``; ``2x = 4`` vs ``x = 2`` as proportional
  equations or, in one variable, as solution sets), inequalities, finite sets (equal up to the
  equivalence of their elements), intervals and unions, tuples and matrices (elementwise, in
  order), booleans. ``x = 2`` against a bare ``2`` compares ``2``; a one-element set or tuple
  against a value compares the element.
* expressions: exact comparison of rationals (``0.5``, ``1/2`` and ``50%`` are all 1/2), then
  numeric evaluation at seeded random points (:mod:`mathcore.symbolic.numeric_compare`), then
  -- only when that does not decide -- ``expand``/``simplify``/``equals`` in a worker process
  that is killed when the time is up (the tasks of :mod:`mathcore.symbolic.comparison_tasks`
  run by the pool of :mod:`mathcore.symbolic.runtime`).

Verdicts are cached (LRU) by the ``srepr`` of both sides, in either order.

Imports: parsing (:mod:`~mathcore.symbolic.ascii`, :mod:`~mathcore.symbolic.convert`), the
comparison steps (:mod:`~mathcore.symbolic.numeric_compare`,
:mod:`~mathcore.symbolic.comparison_tasks`) and the pool (:mod:`~mathcore.symbolic.runtime`);
nothing of verification.

Example:
    >>> equivalent("sqrt(8)", "2*sqrt(2)")
    <Verdict.EQUIVALENT: 'equivalent'>
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Iterator, Union

import sympy as sp
from lxml import etree

from mathcore.linear import to_linear
from mathcore.mathml import MathMLError, parse_math
from mathcore.symbolic import comparison_tasks
from mathcore.symbolic import numeric_compare as numeric
from mathcore.symbolic.ascii import parse_ascii
from mathcore.symbolic.convert import Conversion, to_sympy
from mathcore.symbolic.runtime import TIMEOUT, WorkerPool, default_pool

logger = logging.getLogger(__name__)

Answer = Union[sp.Basic, etree._Element, str, int, Fraction]
MAX_SET_SIZE = 50
# Expressions up to this many nodes are evaluated numerically in the calling process.
MAX_LOCAL_NODES = 400
# The worker tasks, called directly by compare_in_process (already inside a worker).
_IN_PROCESS = {"equal": comparison_tasks.equal, "same_set": comparison_tasks.same_set}


class Verdict(enum.Enum):
    """The answer of :func:`equivalent`."""

    EQUIVALENT = "equivalent"
    DIFFERENT = "different"
    UNKNOWN = "unknown"


EQUIVALENT, DIFFERENT, UNKNOWN = Verdict.EQUIVALENT, Verdict.DIFFERENT, Verdict.UNKNOWN


@dataclass
class _Context:
    deadline: float
    pool: WorkerPool | None
    trust_numeric: bool
    assume_positive: bool
    seed: int
    timed_out: bool = False
    in_process: bool = False

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def get_pool(self) -> WorkerPool:
        if self.pool is None:
            self.pool = default_pool()
        return self.pool


class _LRU:
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return None

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0


_CACHE = _LRU(4096)


def cache_info() -> dict:
    """Hits, misses and size of the verdict cache."""
    return {"hits": _CACHE.hits, "misses": _CACHE.misses, "size": len(_CACHE._data)}


def cache_clear() -> None:
    """Empty the verdict cache."""
    _CACHE.clear()


def to_expr(value: Answer) -> Conversion:
    """Read an answer: SymPy object, Python number, MathML (element or string) or ASCII math."""
    if isinstance(value, bool):
        return Conversion(sp.true if value else sp.false)
    if isinstance(value, int):
        return Conversion(sp.Integer(value))
    if isinstance(value, Fraction):
        return Conversion(sp.Rational(value.numerator, value.denominator))
    if isinstance(value, float):
        return Conversion(sp.Float(value))
    if isinstance(value, sp.Basic):
        return Conversion(value)
    if isinstance(value, str):
        return to_sympy(value) if value.lstrip().startswith("<") else parse_ascii(value)
    if isinstance(value, etree._Element):
        return to_sympy(value)
    return Conversion(None, f"cannot read an answer of type {type(value).__name__}")


def answer_text(value: Answer) -> str | None:
    """An answer's normalised text: the linear text of MathML (``odd``, ``(C)``) or a string
    as it is, lower case, spacing collapsed; None for MathML that does not parse, an empty
    answer or another type."""
    try:
        if isinstance(value, str) and value.lstrip().startswith("<"):
            value = parse_math(value)
        if isinstance(value, etree._Element):
            value = to_linear(value)
    except MathMLError:
        return None
    if not isinstance(value, str):
        return None
    return " ".join(value.split()).lower() or None


def equivalent(a: Answer, b: Answer, timeout: float = 2.0, *, trust_numeric: bool = True,
               assume_positive: bool = False, pool: WorkerPool | None = None,
               seed: int = 0) -> Verdict:
    """Decide whether two answers are the same value, set, equation, tuple...

    Args:
        a, b: SymPy objects, MathML (``<math>`` strings or parsed elements), ASCII math
            (read by :func:`~mathcore.symbolic.ascii.parse_ascii`: letters, ``e`` and ``i``
            included, are symbols there), Python numbers.
        timeout: wall-clock seconds for the whole call; symbolic work past it is killed
            (numeric checks of small expressions run here, each well under a second, and are
            not started once the time is up).
        trust_numeric: accept agreement at random points (reals and complex) as equivalence;
            when False, a symbolic proof is needed for ``EQUIVALENT``.
        assume_positive: symbols are positive reals (``sqrt(x**2)`` is ``x``).
        pool: worker pool for the symbolic step (default: the shared one).
        seed: seed of the random evaluation points.

    Returns:
        ``EQUIVALENT``, ``DIFFERENT`` or ``UNKNOWN`` (unreadable input, or no decision in time).
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    ca, cb = to_expr(a), to_expr(b)
    if not (ca.ok and cb.ok):
        ta, tb = answer_text(a), answer_text(b)
        if not ca.ok and not cb.ok and ta is not None and ta == tb:
            return EQUIVALENT
        logger.debug("unreadable answer: %s / %s", ca.reason, cb.reason)
        return UNKNOWN
    try:
        key = tuple(sorted((sp.srepr(ca.expr), sp.srepr(cb.expr)))) + (
            trust_numeric, assume_positive, seed)
    except (ValueError, RecursionError):
        key = None
    if key is not None:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
    ctx = _Context(time.monotonic() + timeout, pool, trust_numeric, assume_positive, seed)
    verdict = _compare(ca.expr, cb.expr, ctx)
    if key is not None and not ctx.timed_out:
        _CACHE.put(key, verdict)
    return verdict


def compare_in_process(a: sp.Basic, b: sp.Basic, *, assume_positive: bool = False,
                       seed: int = 0) -> Verdict:
    """:func:`equivalent` for two SymPy objects, with the symbolic step run in this process.

    Only for code that already runs inside a worker of :mod:`mathcore.symbolic.runtime` (the
    answer checker): the worker itself is the time limit. Not cached.
    """
    ctx = _Context(float("inf"), None, True, assume_positive, seed, in_process=True)
    return _compare(a, b, ctx)


# --- structure ------------------------------------------------------------------------------

def _kind(x: sp.Basic) -> str:
    if isinstance(x, sp.MatrixBase):
        return "matrix"
    if isinstance(x, sp.logic.boolalg.BooleanAtom):
        return "bool"
    if isinstance(x, sp.Tuple):
        return "tuple"
    if isinstance(x, sp.Set):
        return "set"
    if isinstance(x, sp.Rel):
        return "relation"
    if isinstance(x, (sp.And, sp.Or)):
        return "logic"
    if isinstance(x, sp.Expr):
        return "expr"
    return "other"


def _single(x: sp.Basic) -> sp.Basic | None:
    if isinstance(x, (sp.FiniteSet, sp.Tuple)) and len(x.args) == 1:
        return x.args[0]
    return None


def _value_of_equation(x: sp.Basic) -> sp.Basic | None:
    """``v`` for ``x = v`` (or ``v = x``) with the symbol on one side only."""
    if isinstance(x, sp.Eq):
        for side, other in ((x.lhs, x.rhs), (x.rhs, x.lhs)):
            if side.is_Symbol and side not in other.free_symbols:
                return other
    return None


def _compare(a: sp.Basic, b: sp.Basic, ctx: _Context) -> Verdict:
    if a == b:
        return EQUIVALENT
    ka, kb = _kind(a), _kind(b)
    if ka == kb == "expr":
        return _compare_expr(a, b, ctx)
    for x, y, ky in ((a, b, kb), (b, a, ka)):
        inner = _single(x)
        if inner is not None and ky not in ("tuple", "set"):
            return _compare(inner, y, ctx)
        value = _value_of_equation(x)
        if value is not None and ky in ("expr", "bool"):
            return _compare(value, y, ctx)
    if ka == kb == "relation":
        return _compare_relations(a, b, ctx)
    if ka == kb == "tuple":
        if len(a) != len(b):
            return DIFFERENT
        return _all(_compare(x, y, ctx) for x, y in zip(a.args, b.args, strict=True))
    if ka == kb == "matrix":
        if a.shape != b.shape:
            return DIFFERENT
        return _all(_compare(x, y, ctx) for x, y in zip(list(a), list(b), strict=True))
    if {ka, kb} == {"matrix", "tuple"}:
        m, t = (a, b) if ka == "matrix" else (b, a)
        if 1 not in m.shape or len(m) != len(t):
            return DIFFERENT
        return _all(_compare(x, y, ctx) for x, y in zip(list(m), t.args, strict=True))
    if {ka, kb} == {"tuple", "set"}:
        t, s = (a, b) if ka == "tuple" else (b, a)
        if isinstance(s, sp.FiniteSet):
            return _cover(list(t.args), list(s.args), ctx)
        if isinstance(s, sp.Interval) and len(t) == 2 and s.left_open and s.right_open:
            return _all(_compare(x, y, ctx) for x, y in zip(t.args, (s.start, s.end), strict=True))
        return DIFFERENT
    if ka == kb == "set":
        return _compare_sets(a, b, ctx)
    if ka == kb == "logic" or {ka, kb} <= {"relation", "logic", "set"}:
        return _compare_as_sets(a, b, ctx)
    if ka == "bool" or kb == "bool":
        return DIFFERENT
    if {ka, kb} <= {"expr", "tuple", "set", "matrix"}:
        return DIFFERENT  # a number is never a pair, a set or a matrix
    return UNKNOWN


def _all(verdicts: Iterable[Verdict]) -> Verdict:
    """EQUIVALENT if all are; DIFFERENT as soon as one is; otherwise UNKNOWN."""
    result = EQUIVALENT
    for v in verdicts:
        if v is DIFFERENT:
            return DIFFERENT
        if v is UNKNOWN:
            result = UNKNOWN
    return result


def _cover(xs: list, ys: list, ctx: _Context) -> Verdict:
    """Set equality: every element of each side equals some element of the other."""
    if max(len(xs), len(ys)) > MAX_SET_SIZE:
        return UNKNOWN
    memo: dict[tuple[int, int], Verdict] = {}

    def verdict(i: int, j: int) -> Verdict:
        if (i, j) not in memo:
            memo[(i, j)] = _compare(xs[i], ys[j], ctx)
        return memo[(i, j)]

    result = EQUIVALENT
    for side in (0, 1):
        outer = range(len(xs)) if side == 0 else range(len(ys))
        inner = range(len(ys)) if side == 0 else range(len(xs))
        for i in outer:
            found, unknown = False, False
            for j in inner:
                v = verdict(i, j) if side == 0 else verdict(j, i)
                if v is EQUIVALENT:
                    found = True
                    break
                unknown = unknown or v is UNKNOWN
            if not found:
                if not unknown:
                    return DIFFERENT
                result = UNKNOWN
    return result


def _compare_sets(a: sp.Set, b: sp.Set, ctx: _Context) -> Verdict:
    if isinstance(a, sp.FiniteSet) and isinstance(b, sp.FiniteSet):
        return _cover(list(a.args), list(b.args), ctx)
    if isinstance(a, sp.Interval) and isinstance(b, sp.Interval):
        if (a.left_open, a.right_open) != (b.left_open, b.right_open):
            return DIFFERENT
        return _all(_compare(x, y, ctx) for x, y in ((a.start, b.start), (a.end, b.end)))
    if isinstance(a, sp.Union) and isinstance(b, sp.Union):
        verdict = _cover(list(a.args), list(b.args), ctx)
        if verdict is not UNKNOWN:
            return verdict
    return _compare_as_sets(a, b, ctx)


def _compare_as_sets(a: sp.Basic, b: sp.Basic, ctx: _Context) -> Verdict:
    """Sets of reals, equations or inequalities in one variable, compared in a worker."""
    symbols = set()
    for x in (a, b):
        if not isinstance(x, sp.Set):
            symbols |= x.free_symbols
    if len(symbols) > 1:
        return UNKNOWN
    name = next(iter(symbols)).name if symbols else "x"
    return _from_worker(ctx, "same_set", a, b, name)


def _canonical(rel: sp.Rel) -> sp.Rel:
    if isinstance(rel, sp.StrictGreaterThan):
        return sp.Lt(rel.rhs, rel.lhs, evaluate=False)
    if isinstance(rel, sp.GreaterThan):
        return sp.Le(rel.rhs, rel.lhs, evaluate=False)
    return rel


def _compare_relations(a: sp.Rel, b: sp.Rel, ctx: _Context) -> Verdict:
    va, vb = _value_of_equation(a), _value_of_equation(b)
    if va is not None and vb is not None and a.free_symbols - va.free_symbols == (
        b.free_symbols - vb.free_symbols
    ):
        return _compare(va, vb, ctx)  # x = 2 against x = 3: compare 2 and 3
    a, b = _canonical(a), _canonical(b)
    if not all(isinstance(s, sp.Expr) for s in (a.lhs, a.rhs, b.lhs, b.rhs)):
        return UNKNOWN
    da, db = a.lhs - a.rhs, b.lhs - b.rhs
    symbols = da.free_symbols | db.free_symbols
    if type(a) is type(b):
        if _compare_expr(da, db, ctx) is EQUIVALENT:
            return EQUIVALENT
        if isinstance(a, (sp.Eq, sp.Ne)):
            if _compare_expr(da, -db, ctx) is EQUIVALENT:
                return EQUIVALENT
        ratio = _ratio(da, db, ctx)
        if ratio is not None and (isinstance(a, (sp.Eq, sp.Ne)) or ratio > 0):
            return EQUIVALENT
        if ratio is None and not symbols:
            return UNKNOWN
    if len(symbols) == 1:
        return _compare_as_sets(a, b, ctx)
    if type(a) is type(b) and isinstance(a, sp.Eq) and _linear(da) and _linear(db):
        return DIFFERENT  # distinct lines/planes: not proportional, so different solutions
    return UNKNOWN


def _ratio(da: sp.Expr, db: sp.Expr, ctx: _Context) -> float | None:
    """The constant c with ``da = c*db``, when there is one (numerically)."""
    if not (_small(da) and _small(db)) or not (da.free_symbols or db.free_symbols):
        return None
    if numeric.proportional(da, db, seed=ctx.seed):
        pts = numeric.sample_points(sorted(da.free_symbols | db.free_symbols, key=str),
                                    ctx.seed, 1, complex_points=False)
        va, vb = numeric.evaluate(da, pts[0]), numeric.evaluate(db, pts[0])
        if va is not None and vb is not None and vb != 0:
            return float((va / vb).real)
    return None


def _linear(d: sp.Expr) -> bool:
    try:
        return d.free_symbols and sp.Poly(d, *sorted(d.free_symbols, key=str)).total_degree() <= 1
    except (sp.PolynomialError, sp.GeneratorsNeeded):
        return False


# --- expressions ----------------------------------------------------------------------------

def _nodes(expr: sp.Basic, limit: int) -> Iterator[sp.Basic]:
    for i, node in enumerate(sp.preorder_traversal(expr)):
        if i >= limit:
            return
        yield node


def _small(expr: sp.Basic) -> bool:
    return sum(1 for _ in _nodes(expr, MAX_LOCAL_NODES + 1)) <= MAX_LOCAL_NODES


def _compare_expr(a: sp.Expr, b: sp.Expr, ctx: _Context) -> Verdict:
    if a == b:
        return EQUIVALENT
    if a.is_Rational and b.is_Rational:
        return DIFFERENT
    if a.is_infinite or b.is_infinite:
        return DIFFERENT if (a.is_infinite is not None and b.is_infinite is not None) else UNKNOWN
    if ctx.remaining() <= 0:  # a long set or tuple used up the budget
        ctx.timed_out = True
        return UNKNOWN
    local = _small(a) and _small(b)
    if local:
        verdict = numeric.compare(a, b, seed=ctx.seed, positive_only=ctx.assume_positive)
        if verdict == numeric.DIFFERENT_:
            return DIFFERENT
        if verdict == numeric.EQUAL and ctx.trust_numeric:
            return EQUIVALENT
    options = {"numeric": not local, "trust_numeric": ctx.trust_numeric,
               "assume_positive": ctx.assume_positive, "seed": ctx.seed}
    return _from_worker(ctx, "equal", a, b, options)


def _from_worker(ctx: _Context, task: str, a: sp.Basic, b: sp.Basic, extra) -> Verdict:
    """Run a comparison task on ``srepr(a)``, ``srepr(b)`` and *extra* within the budget."""
    try:
        args = [sp.srepr(a), sp.srepr(b), extra]
    except (ValueError, RecursionError):  # integers too long to print
        return UNKNOWN
    if ctx.in_process:
        value = _IN_PROCESS[task](*args)
        return {"equal": EQUIVALENT, "different": DIFFERENT}.get(value, UNKNOWN)
    remaining = ctx.remaining()
    if remaining <= 0:
        ctx.timed_out = True
        return UNKNOWN
    result = ctx.get_pool().run(task, args, timeout=remaining)
    if result.status == TIMEOUT:
        ctx.timed_out = True
        return UNKNOWN
    if not result.ok:
        logger.debug("task %s failed: %s", task, result.error)
        return UNKNOWN
    return {"equal": EQUIVALENT, "different": DIFFERENT}.get(result.value, UNKNOWN)

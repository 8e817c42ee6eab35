"""Formula agreement: how many of a question's formulas a candidate answer restates.

A forum answer works with the formulas of its question -- often in another form: the question's
``x^2 - 5x + 6 = 0`` comes back as ``(x - 2)(x - 3) = 0``, its ``2^k - 1`` inside
``2^(ab) - 1 = (2^a - 1)(...)``.  The answer to a neighbouring question (the same topic, other
formulas) does not.  Like :mod:`retriever.givens` for numbers, hybrid search can add, to each of
its first candidates, ``weight`` times the share of the question's formulas found in the
candidate's answer (:meth:`FormulaAgreement.coverage`), over the fused scores z-normalised
among those candidates.

**Formulas.** Each ``<math>`` of a text (:func:`formulas`) gives its *units*: the whole formula
and, for a relation (``=``, ``<``, ``≤``, ...), each side.  A unit's canonical form is its
linear text (:func:`mathcore.linear.to_linear`) without spaces, with one sign for minus and
one for times, trailing punctuation dropped (:func:`canonical`).  Trivial units -- a lone
letter (``x``, ``x_1``, ``f(x)``) or a lone number -- are left out, and so are relations of
them (``x = 2``, ``n ≥ 0``): numbers are the givens agreement's job.

**Agreement.** A question formula is found in an answer when one of its units

1. has the canonical form of one of the answer's units, or
2. (six characters or longer) occurs inside the canonical form of one of the answer's formulas,
   or
3. is, by SymPy, equivalent to one of the answer's units: only expressions (not relations) with
   the same letters, read by :func:`mathcore.symbolic.to_sympy`, whose values at one seeded
   point agree (the value is computed once per unit and cached); then
   :func:`mathcore.symbolic.equivalent` decides under the symbolic time limit.  An ``UNKNOWN``
   (no decision in time, unreadable) gives no credit.  A query spends at most ``budget``
   seconds and ``max_pairs`` equivalence calls on step 3; what is left is not found.

Example:
    >>> q = formulas("<math><mrow><msup><mi>x</mi><mn>2</mn></msup><mo>-</mo><mn>5</mn>"
    ...              "<mi>x</mi><mo>+</mo><mn>6</mn></mrow></math>")
    >>> [u.key for u in q[0].units]
    ['x^2-5x+6']
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
from lxml import etree

from mathcore.linear import to_linear
from mathcore.mathml import MathMLError, parse_math, split_math
from mathcore.scores import check_weight as check_term_weight
from mathcore.scores import rank_with_terms

if TYPE_CHECKING:
    from retriever.givens import GivensAgreement

logger = logging.getLogger(__name__)

# Off: on the dev benchmark (benchmarks/formulas.py, every 4th query, weight chosen on the even
# ones) it helps the MATH questions of dev match (weight 1.5: MRR@10 0.896 -> 0.913, held-out
# half 0.899 -> 0.909) but not the Math StackExchange questions (held-out half 0.728 -> 0.718),
# and it costs 0.4-0.5 s a query on a loaded 2-core CPU.
DEFAULT_FORMULA_WEIGHT = 0.0
# The --formula-weight help of every command that searches in hybrid mode: written once here.
FORMULA_WEIGHT_HELP = ("hybrid mode: add W times the share of the question's formulas found in "
                       "a candidate's answer (same canonical form, or equivalent by SymPy) to its "
                       "z-scored fused score (the first --depth candidates); 0 turns it off")
# Seconds of SymPy work (conversions, values, equivalence calls) one query may spend, and the
# equivalence calls it may make.
DEFAULT_BUDGET = 0.25
DEFAULT_MAX_PAIRS = 20
# Question formulas counted per query (distinct, in order).
MAX_QUESTION_FORMULAS = 24
# Canonical forms at least this long also count when found inside a longer formula.
MIN_INSIDE = 6
# Expressions larger than this (SymPy nodes) are not evaluated (as mathcore.symbolic does),
# nor those with an integer larger than MAX_INTEGER or a function of _SLOW.
MAX_NODES = 400
MAX_INTEGER = 10**6
_SLOW: tuple | None = None  # SymPy's classes, set when SymPy is first needed

RELATIONS = frozenset("=≠<>≤≥≈≡≅≃∼⩽⩾≦≧⇔⟺⇒⟹∣∈∉⊂⊆⊃⊇")
_SIGNS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u00d7": "*", "\u22c5": "*",
                        "\u00b7": "*", "\u2219": "*", "\u2217": "*"})
_SPACE_RE = re.compile(r"\s+")
# A lone number, letter (with subscript, primes), or a letter applied to a letter: f(x).
_TRIVIAL_RE = re.compile(r"""^(?:
    [-+]?\d+(?:[.,]\d+)*\.?
  | [^\W\d_](?:_\w+|_\(\w+\))?['′″]*
  | [^\W\d_]+['′″]*\([^\W\d_]\)
)$""", re.X)


def check_weight(weight: float) -> float:
    """*weight* itself if it is a usable formula weight (finite, 0 or more).

    Raises:
        ValueError: for a negative or non-finite weight.
    """
    return check_term_weight(weight, "formula")


def canonical(linear: str) -> str:
    """The canonical form of a formula's linear text: no spaces, ``-`` for every minus sign,
    ``*`` for every times sign, no trailing punctuation.

    Example:
        >>> canonical("x^2 − 5x + 6 = 0.")
        'x^2-5x+6=0'
    """
    return _SPACE_RE.sub("", linear.translate(_SIGNS)).rstrip(".,;:")


def trivial(key: str) -> bool:
    """True for a canonical form that says nothing of its own: a lone number or letter, or
    two characters (``ab``, ``2x``, ``n!``)."""
    return len(key) < 3 or _TRIVIAL_RE.match(key) is not None


@dataclass(frozen=True, eq=False)
class Unit:
    """A formula or a side of a relation: its canonical form, letters and MathML element."""

    key: str
    letters: frozenset[str]
    element: etree._Element


@dataclass(frozen=True, eq=False)
class Formula:
    """One ``<math>`` of a text: its canonical form and its non-trivial units (the whole
    formula first, then the sides of a relation)."""

    key: str
    units: tuple[Unit, ...]


def _top_row(el: etree._Element) -> etree._Element:
    """The row that holds a formula's top-level operators (below ``math``, ``semantics`` and
    single-child rows)."""
    while True:
        kids = [c for c in el if isinstance(c.tag, str)
                and c.tag not in ("annotation", "annotation-xml")]
        if len(kids) == 1 and el.tag in ("math", "semantics", "mrow", "mstyle"):
            el = kids[0]
        else:
            return el


def _unit(el: etree._Element) -> Unit | None:
    key = canonical(to_linear(el))
    if trivial(key):
        return None
    letters = frozenset(t for t in ((mi.text or "").strip() for mi in el.iter("mi"))
                        if len(t) == 1 and t.isalpha())
    return Unit(key, letters, el)


def _sides(row: etree._Element) -> list[etree._Element]:
    """The sides of a relation row (``a = b < c``: ``a``, ``b``, ``c``); [] for no relation."""
    if row.tag not in ("mrow", "math"):
        return []
    groups: list[list] = [[]]
    for child in row:
        if not isinstance(child.tag, str):
            continue
        if child.tag == "mo" and (child.text or "").strip() in RELATIONS:
            groups.append([])
        else:
            groups[-1].append(child)
    if len(groups) == 1:
        return []
    sides = []
    for group in groups:
        if len(group) == 1:
            sides.append(group[0])
        elif group:
            side = etree.Element("mrow")
            for child in group:
                side.append(_copy(child))
            sides.append(side)
    return sides


def _copy(el: etree._Element) -> etree._Element:
    """A copy of *el* without its tail (the original stays in its tree)."""
    return etree.fromstring(etree.tostring(el, with_tail=False))


def formula(el: etree._Element) -> Formula | None:
    """A parsed ``<math>`` as a :class:`Formula`; None when it is trivial throughout (a lone
    letter or number, or a relation of such: ``x = 2``, ``n ≥ 0``)."""
    sides = _sides(_top_row(el))
    side_units = [_unit(side) for side in sides]
    if sides and all(u is None for u in side_units):
        return None
    whole = _unit(el)
    units = [whole] if whole is not None else []
    seen = {whole.key} if whole is not None else set()
    for u in side_units:
        if u is not None and u.key not in seen:
            seen.add(u.key)
            units.append(u)
    if not units:
        return None
    return Formula(whole.key if whole is not None else units[0].key, tuple(units))


def formulas(text: str, limit: int | None = None) -> tuple[Formula, ...]:
    """The distinct non-trivial formulas of a text with inline MathML, in order (at most
    *limit*); a formula that does not parse is skipped, a text that does not split has none."""
    out: list[Formula] = []
    seen: set[str] = set()
    try:
        for seg in split_math(text):
            if not seg.is_math:
                continue
            try:
                f = formula(parse_math(seg.text))
            except MathMLError:
                continue
            if f is not None and f.key not in seen:
                seen.add(f.key)
                out.append(f)
                if limit is not None and len(out) >= limit:
                    break
    except MathMLError as exc:
        logger.debug("formulas: %s", exc)
    return tuple(out)


class _Answer:
    """An answer's formulas, indexed for the three checks."""

    __slots__ = ("keys", "wholes", "by_letters")

    def __init__(self, found: Sequence[Formula]) -> None:
        self.keys = {u.key for f in found for u in f.units}
        self.wholes = [f.key for f in found]
        self.by_letters: dict[frozenset[str], list[Unit]] = {}
        for f in found:
            for u in f.units:
                if u.letters:
                    self.by_letters.setdefault(u.letters, []).append(u)


class _Values:
    """Each unit's SymPy expression and its value at one seeded point, by canonical form
    (LRU)."""

    def __init__(self, maxsize: int = 100_000) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, unit: Unit):
        with self._lock:
            if unit.key in self._data:
                self._data.move_to_end(unit.key)
                return self._data[unit.key]
        value = _expression_value(unit.element)
        with self._lock:
            self._data[unit.key] = value
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
        return value


def _expression_value(el: etree._Element):
    """``(expr, complex value)`` of an expression with letters, or None (unreadable, a
    relation, no free symbol, too large, no finite value at the point)."""
    import sympy as sp

    from mathcore.symbolic import to_sympy
    from mathcore.symbolic.numeric_compare import sample_points

    global _SLOW
    if _SLOW is None:
        _SLOW = (sp.factorial, sp.factorial2, sp.binomial, sp.gamma, sp.RisingFactorial,
                 sp.FallingFactorial, sp.subfactorial, sp.fibonacci, sp.lucas, sp.bell,
                 sp.bernoulli, sp.catalan, sp.harmonic, sp.zeta, sp.Sum, sp.Product,
                 sp.Integral, sp.Limit, sp.Derivative)
    conv = to_sympy(el)
    expr = conv.expr
    if expr is None or not isinstance(expr, sp.Expr) or not expr.free_symbols:
        return None
    for i, node in enumerate(sp.preorder_traversal(expr)):
        # Evaluation here has no time limit: nothing whose value may take long to compute (a
        # factorial, a binomial, a huge integer) is evaluated.
        if i >= MAX_NODES or isinstance(node, _SLOW) or (
                node.is_Integer and abs(node) > MAX_INTEGER):
            return None
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    try:  # 15 digits are enough to tell which pairs are worth an equivalence call
        z = complex(expr.evalf(15, subs=sample_points(symbols, 0, 1, complex_points=False)[0]))
    except (TypeError, ValueError, ArithmeticError, AttributeError, RecursionError):
        return None
    if not (np.isfinite(z.real) and np.isfinite(z.imag)):
        return None
    return expr, z


def _load_symbolic() -> None:
    """Import SymPy and the converters (seconds, once) outside the queries' budgets; not at
    module import, so that commands which never compare formulas do not pay for it."""
    import mathcore.symbolic  # noqa: F401
    import mathcore.symbolic.numeric_compare  # noqa: F401


def _close(a: complex, b: complex) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


class FormulaAgreement:
    """Rescore a ranking by the agreement of each candidate answer with the question's formulas.

    Args:
        answers: the answer texts (with their MathML) of store row ids, in the order asked
            (for an index folder: :func:`answer_sources` of its store).
        weight: the weight of :meth:`coverage` against the z-normalised first-stage scores.
        timeout: seconds for one SymPy equivalence call.
        budget: seconds of SymPy work per query (conversions, values, equivalence calls).
        max_pairs: equivalence calls per query.
        pool: the worker pool of the equivalence calls (default: the shared one).

    Example:
        >>> agree = FormulaAgreement(answer_sources(store), weight=1.0)  # doctest: +SKIP
        >>> scores, rows = agree.rescore(questions, scores, rows, k=10)  # doctest: +SKIP
    """

    def __init__(self, answers: Callable[[Sequence[int]], list[str]],
                 weight: float = DEFAULT_FORMULA_WEIGHT, timeout: float = 2.0,
                 budget: float = DEFAULT_BUDGET, max_pairs: int = DEFAULT_MAX_PAIRS,
                 pool=None) -> None:
        if timeout <= 0 or budget <= 0 or max_pairs < 0:
            raise ValueError("timeout and budget must be positive, max_pairs 0 or more")
        self.answers = answers
        self.weight = check_weight(weight)
        self.timeout, self.budget, self.max_pairs, self.pool = timeout, budget, max_pairs, pool
        self._values = _Values()
        self._verdicts: dict[tuple[str, str], bool] = {}

    # -- agreement ----------------------------------------------------------------------------
    def coverages(self, questions: Sequence[str], rows: np.ndarray) -> np.ndarray:
        """``[n, depth]``: the share of each question's formulas found in each candidate's
        answer (0 for padding, row id -1, and for a question without formulas).

        Args:
            questions: the queries' texts with their MathML.
            rows: ``[n, depth]`` store row ids.
        """
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros(rows.shape, dtype=np.float64)
        asked = [formulas(q, MAX_QUESTION_FORMULAS) for q in questions]
        wanted = sorted({int(r) for i, row in enumerate(rows) if asked[i] for r in row if r >= 0})
        # Each answer's formulas read once, however many queries it is a candidate of.
        found = {r: _Answer(formulas(t)) for r, t in zip(
            wanted, self.answers(wanted) if wanted else [], strict=True)}
        if any(asked):
            _load_symbolic()  # imported before any query's budget starts
        for i, qf in enumerate(asked):
            if not qf:
                continue
            deadline = [time.monotonic() + self.budget, self.max_pairs]
            for j, r in enumerate(rows[i]):
                if r >= 0:
                    out[i, j] = sum(self._found(f, found[int(r)], deadline) for f in qf) / len(qf)
        return out

    def coverage(self, question: str, answer: str) -> float:
        """Share of *question*'s formulas that *answer* restates (both texts with MathML)."""
        qf = formulas(question, MAX_QUESTION_FORMULAS)
        if not qf:
            return 0.0
        a = _Answer(formulas(answer))
        _load_symbolic()
        deadline = [time.monotonic() + self.budget, self.max_pairs]
        return sum(self._found(f, a, deadline) for f in qf) / len(qf)

    def _found(self, f: Formula, a: _Answer, deadline: list) -> bool:
        for u in f.units:
            if u.key in a.keys:
                return True
        for u in f.units:
            if len(u.key) >= MIN_INSIDE and any(u.key in w for w in a.wholes):
                return True
        for u in f.units:
            if u.letters and u.letters in a.by_letters and self._equivalent_to_any(
                    u, a.by_letters[u.letters], deadline):
                return True
        return False

    def _equivalent_to_any(self, u: Unit, others: list[Unit], deadline: list) -> bool:
        from mathcore.symbolic import Verdict, equivalent

        if time.monotonic() >= deadline[0]:
            return False
        mine = self._values.get(u)
        if mine is None:
            return False
        for o in others:
            pair = (u.key, o.key)
            if pair in self._verdicts:
                if self._verdicts[pair]:
                    return True
                continue
            left = deadline[0] - time.monotonic()
            if left <= 0:
                return False
            theirs = self._values.get(o)
            if theirs is None or not _close(mine[1], theirs[1]):
                continue
            if deadline[1] <= 0 or left <= 0.01:
                return False
            deadline[1] -= 1
            verdict = equivalent(mine[0], theirs[0], timeout=min(self.timeout, left),
                                 pool=self.pool)
            if verdict is not Verdict.UNKNOWN:  # an undecided pair may be retried with more time
                self._verdicts[pair] = verdict is Verdict.EQUIVALENT
            if verdict is Verdict.EQUIVALENT:
                return True
        return False

    # -- rescoring ----------------------------------------------------------------------------
    def rescore(self, questions: Sequence[str], scores: np.ndarray, rows: np.ndarray, k: int,
                givens: GivensAgreement | None = None,
                texts: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The first *k* of each query's candidates by z(score) + weight x coverage (+ the
        givens term, with *givens*).

        Args:
            questions: the queries' texts with their MathML.
            scores, rows: ``[n, depth]`` first-stage scores and row ids (best first; padding
                has row id -1), every candidate of a row rescored.
            k: results per query.
            givens: a :class:`retriever.givens.GivensAgreement` whose term is added too.
            texts: the queries' linear texts, for *givens* (default: *questions*).

        Returns:
            ``(scores [n, k] float64, rows [n, k] int64)``, best first; ties keep the
            first-stage order; padding has row id -1 and score -inf.
        """
        rows = np.asarray(rows, dtype=np.int64)
        terms = self.weight * self.coverages(questions, rows) if self.weight else np.zeros(
            rows.shape)
        if givens is not None and givens.weight:
            terms = terms + givens.weight * givens.coverages(
                questions if texts is None else texts, rows)
        return rank_with_terms(scores, rows, terms, k)


def answer_sources(store) -> Callable[[Sequence[int]], list[str]]:
    """The answers (as stored, with their MathML) of store row ids, in the order asked.

    Raises:
        KeyError: naming a row id that is not in the store.
    """
    def read(rowids: Sequence[int]) -> list[str]:
        got = {s.rowid: s.record.answer for s in store.get(rowids)}
        missing = [r for r in rowids if r not in got]
        if missing:
            raise KeyError(f"rowid {missing[0]} is not in the store {store.path}")
        return [got[r] for r in rowids]
    return read

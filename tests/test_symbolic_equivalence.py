"""Equivalence verdicts: a table across number forms and MathML producers, both orders.

``tests/data/symbolic/equivalence_pairs.jsonl``: Presentation MathML, Content MathML, LaTeXML
parallel markup (``<semantics>`` with a Content annotation) and ASCII forms of the same or of
different values, each with the verdict expected.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sympy as sp

from mathcore.symbolic import (
    Verdict,
    WorkerPool,
    answer_text,
    cache_clear,
    cache_info,
    equivalent,
)
from mathcore.symbolic.comparison_tasks import from_srepr

DATA = Path(__file__).parent / "data" / "symbolic"
PAIRS = [json.loads(line) for line in (DATA / "equivalence_pairs.jsonl").read_text().splitlines()]
x, y = sp.symbols("x y")


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(size=1) as p:
        p.start()
        yield p


@pytest.mark.parametrize("pair", PAIRS, ids=[p["name"] for p in PAIRS])
def test_equivalence_table(pair, pool):
    expected = Verdict(pair["verdict"])
    cache_clear()
    assert equivalent(pair["a"], pair["b"], timeout=10, pool=pool) is expected
    cache_clear()
    assert equivalent(pair["b"], pair["a"], timeout=10, pool=pool) is expected


def test_sympy_objects_and_python_numbers(pool):
    assert equivalent(sp.sqrt(8), 2 * sp.sqrt(2), pool=pool) is Verdict.EQUIVALENT
    assert equivalent(sp.Rational(1, 2), 0.5, pool=pool) is Verdict.EQUIVALENT
    assert equivalent(2, sp.Float("2.0001"), pool=pool) is Verdict.DIFFERENT
    assert equivalent(sp.Eq(x, 2), sp.Eq(2, x), pool=pool) is Verdict.EQUIVALENT
    assert equivalent(sp.FiniteSet(1, 2), sp.Tuple(2, 1), pool=pool) is Verdict.EQUIVALENT
    assert equivalent(sp.Interval(0, 1), sp.Interval.Ropen(0, 1), pool=pool) is Verdict.DIFFERENT
    assert equivalent(object(), 1, pool=pool) is Verdict.UNKNOWN
    with pytest.raises(ValueError):
        equivalent(1, 1, timeout=0)


def test_unreadable_answers_compare_by_their_text(pool):
    """Answers SymPy cannot read are the same when their normalised text is (MathML or
    plain text alike); otherwise nothing is known."""
    assert answer_text("<math><mtext>Odd</mtext></math>") == "odd"
    assert answer_text(" No   Solution ") == "no solution"
    assert answer_text("<math><mi>x</mi>") is None and answer_text(3) is None
    assert equivalent("18 dollars", "18  Dollars", pool=pool) is Verdict.EQUIVALENT
    assert equivalent("<math><mtext>odd</mtext></math>", "Odd", pool=pool) is Verdict.EQUIVALENT
    assert equivalent("18 dollars", "19 dollars", pool=pool) is Verdict.UNKNOWN


def test_symbolic_proof_when_numbers_are_not_trusted(pool):
    lhs, rhs = (x + y) ** 3, x**3 + 3 * x**2 * y + 3 * x * y**2 + y**3
    assert equivalent(lhs, rhs, trust_numeric=False, pool=pool) is Verdict.EQUIVALENT
    # Equal only for positive symbols: unknown in general, equivalent under the assumption.
    assert equivalent(sp.sqrt(x**2), x, pool=pool) is Verdict.UNKNOWN
    assert equivalent(sp.sqrt(x**2), x, assume_positive=True, pool=pool) is Verdict.EQUIVALENT


def test_solution_sets_in_one_variable(pool):
    assert equivalent("x**2 = 4", "(x - 2)*(x + 2) = 0", pool=pool) is Verdict.EQUIVALENT
    assert equivalent("x**3 = x", sp.FiniteSet(-1, 0, 1), pool=pool) is Verdict.EQUIVALENT
    assert equivalent("x < 3", sp.Interval.open(-sp.oo, 3), pool=pool) is Verdict.EQUIVALENT


def test_cache_is_order_independent():
    cache_clear()
    assert equivalent("1/4", "0.25") is Verdict.EQUIVALENT
    assert equivalent("0.25", "1/4") is Verdict.EQUIVALENT
    info = cache_info()
    assert info["hits"] == 1 and info["size"] == 1


@pytest.mark.parametrize("expr", [
    sp.sin((2 * x - y) ** 3).rewrite(sp.exp),
    sp.Eq(x, 2, evaluate=False) & sp.Lt(y, 3),
    sp.Interval.Lopen(-sp.oo, sp.Rational(1, 3)) | sp.FiniteSet(5),
    sp.ImmutableMatrix([[1, sp.sqrt(2)], [x, sp.Float("0.1")]]),
    sp.Function("f")(x) + sp.Rational(-3, 7) * x ** sp.Rational(5, 2),
    sp.Tuple(sp.true, sp.pi, sp.E, sp.I, sp.oo),
])
def test_srepr_round_trip(expr):
    """What the worker rebuilds from the parent's srepr is the same expression."""
    assert sp.srepr(from_srepr(sp.srepr(expr))) == sp.srepr(expr)


def test_srepr_round_trip_of_kept_large_numbers():
    """Numbers the converter keeps unevaluated (2^2005, 900!) come back with the same value."""
    for expr in (sp.Pow(2, 2005, evaluate=False), sp.factorial(sp.Integer(900), evaluate=False)):
        assert from_srepr(sp.srepr(expr)) == expr.doit()

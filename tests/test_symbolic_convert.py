"""MathML and ASCII to SymPy: exact expected values, and reasons where a reading is refused.

``tests/data/symbolic/conversions.jsonl`` holds real ``final`` answers from the three corpora
(with their record ids) and hand-written formulas for every construct the converter claims;
each has the exact ``str`` of the expected SymPy value, or the reason it must be refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sympy as sp

from mathcore.mathml import parse_math
from mathcore.symbolic import Conversion, parse_ascii, to_sympy
from mathcore.symbolic.number_literals import parse_in_base, parse_number

DATA = Path(__file__).parent / "data" / "symbolic"
CASES = [json.loads(line) for line in (DATA / "conversions.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_conversion_table(case):
    result = to_sympy(case["mathml"])
    if "expected" in case:
        assert result.ok, result.reason
        assert str(result.expr) == case["expected"]
    else:
        assert not result.ok, f"expected a refusal, got {result.expr}"
        assert result.reason == case["reason"]


def test_accepts_parsed_elements_and_reports_bad_xml():
    el = parse_math('<math><mfrac><mn>6</mn><mn>8</mn></mfrac></math>')
    assert to_sympy(el).expr == sp.Rational(3, 4)
    assert to_sympy("<math><mn>1</mn>").reason.startswith("invalid MathML")
    bad = to_sympy('<math><mrow><mi>x</mi><mo>+</mo></mrow></math>')
    assert bad.expr is None and bad.reason == "missing operand"


def test_conversion_holds_exactly_one_of_expr_and_reason():
    with pytest.raises(ValueError):
        Conversion(None, None)
    with pytest.raises(ValueError):
        Conversion(sp.Integer(1), "why")


def test_decimals_are_exact_and_float_reprs_are_read_back():
    assert parse_number("0.1") == sp.Rational(1, 10)
    assert parse_number(".5") == sp.Rational(1, 2)
    assert parse_number("\u22123") == -3
    assert parse_number("1,234,567.5") == sp.Rational(2469135, 2)
    assert parse_number("1,23") is None  # not a thousands group
    assert parse_number("2.9727000000000001") == sp.Rational(29727, 10000)
    # 16 significant digits that are not a double's repr stay as written.
    assert parse_number("0.1234567890123456") == sp.Rational(1234567890123456, 10**16)
    assert parse_number("1e-3") == sp.Rational(1, 1000)
    assert parse_number("1e99999") is None
    assert parse_number("x") is None
    assert parse_in_base("4210", 5) == 555
    assert parse_in_base("29", 8) is None


@pytest.mark.parametrize("text, expected", [
    ("-9*w + 21", "21 - 9*w"),
    ("x**2", "x**2"),
    ("2^3^2", "512"),
    ("-2**2", "-4"),
    ("2**-1", "1/2"),
    ("3/4", "3/4"),
    ("2x + 3(x - 1)", "5*x - 3"),
    ("12*w = -9*w + 21", "Eq(12*w, 21 - 9*w)"),
    ("x <= 3", "x <= 3"),
    ("sqrt(16) + 5!", "124"),
    ("f(3) + pi", "f(3) + pi"),
    ("1, 2", "(1, 2)"),
    ("0.5e-2", "1/200"),
    ("(1 - -2)/(6/4)", "2"),
])
def test_parse_ascii(text, expected):
    result = parse_ascii(text)
    assert result.ok, result.reason
    assert str(result.expr) == expected


@pytest.mark.parametrize("text, reason", [
    ("1/2x", "ambiguous division a/bc"),
    ("2 3", "two numbers side by side"),
    ("x +", "unexpected end of formula"),
    ("(x", "unexpected end of formula"),
    ("__import__('os')", "unexpected character '_' at 0"),
    ("foo(2)", "unknown function 'foo'"),
    ("1/0", "division by zero"),
    ("10**10**10", "number too large"),
    ("", "empty formula"),
])
def test_parse_ascii_refusals(text, reason):
    result = parse_ascii(text)
    assert not result.ok and result.reason == reason


def test_corpus_sample_converts(tmp_path):
    """The 20-record sample corpus of the project: every final answer converts."""
    sample = Path(__file__).parent / "data" / "corpus_sample.jsonl"
    records = [json.loads(line) for line in sample.read_text().splitlines() if line.strip()]
    finals = [r["final"] for r in records if r.get("final")]
    assert finals
    failures = {f: to_sympy(f).reason for f in finals if not to_sympy(f).ok}
    assert not failures

"""Exact arithmetic behind the mathematics_dataset checks: rounding, roots, sequences, bases,
probability, clock times.

All functions work on exact integers and rationals and raise
:class:`~mathcore.symbolic.builders.Unsupported` rather than decide a case that has two readings
(a value exactly halfway when rounding, a sequence too short to fix its rule).

Imports: :mod:`~mathcore.symbolic.builders` only (for ``Unsupported``).
"""

from __future__ import annotations

import re
from collections import Counter
from math import comb

import sympy as sp

from mathcore.symbolic.builders import Unsupported

NUMBER_WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
                "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
_NEAREST = {"integer": 0, "whole number": 0, "ten": 1, "hundred": 2, "one hundred": 2,
            "thousand": 3, "one thousand": 3, "ten thousand": 4, "hundred thousand": 5,
            "one hundred thousand": 5, "million": 6, "one million": 6, "ten million": 7,
            "hundred million": 8, "one hundred million": 8, "billion": 9, "one billion": 9}
PLACES = {"units": 0, "tens": 1, "hundreds": 2, "thousands": 3, "ten thousands": 4,
          "hundred thousands": 5, "millions": 6, "ten millions": 7, "hundred millions": 8,
          "billions": 9}


def rounding_digits(spec: str) -> int:
    """Decimal places from ``two dps``, ``3 decimal places``, ``the nearest 100``, ...

    Negative for tens, hundreds...: ``the nearest ten thousand`` is -4.
    """
    spec = " ".join(spec.lower().split())
    m = re.fullmatch(r"(\w+) (?:decimal places?|dps?)", spec)
    if m:
        word = m.group(1)
        if word.isdigit():
            return int(word)
        if word in NUMBER_WORDS:
            return NUMBER_WORDS[word]
        raise Unsupported(f"decimal places {word!r}")
    m = re.fullmatch(r"the nearest (.+)", spec)
    if m:
        what = m.group(1)
        if what in _NEAREST:
            return -_NEAREST[what]
        if re.fullmatch(r"10*", what) and what.startswith("1"):
            return -(len(what) - 1)
    raise Unsupported(f"rounding to {spec!r}")


def round_half_away(x: sp.Rational, digits: int) -> sp.Rational:
    """Round an exact rational; a value exactly halfway has two readings and is refused."""
    scale = sp.Integer(10) ** digits
    scaled = x * scale
    low = sp.floor(scaled)
    frac = scaled - low
    if frac == sp.Rational(1, 2):
        raise Unsupported("exactly halfway")
    return (low + (1 if frac > sp.Rational(1, 2) else 0)) / scale


def nearest_root(n: int, k: int) -> int:
    """The integer nearest to the real k-th root of n >= 0 (exact comparisons)."""
    if k < 1:
        raise Unsupported("root degree")
    low, _ = sp.integer_nthroot(n, k)
    # low <= root < low + 1; the root is nearer to low + 1 when n > (low + 1/2)^k.
    return int(low) + (1 if sp.Rational(2 * low + 1, 2) ** k < n else 0)


def sequence_polynomial(terms: list[sp.Expr], var: sp.Symbol) -> sp.Expr:
    """The polynomial p with p(1), p(2), ... equal to *terms*, found by finite differences.

    The rule must be fixed by the terms: the last difference level has to repeat one value at
    least twice, otherwise any next term would fit.
    """
    level, degree = list(terms), 0
    while len(level) >= 2 and len(set(level)) > 1:
        level = [b - a for a, b in zip(level, level[1:], strict=False)]
        degree += 1
    if len(level) < 2:
        raise Unsupported("sequence too short to fix its rule")
    points = list(zip(range(1, degree + 2), terms[: degree + 1], strict=True))
    poly = sp.expand(sp.interpolate(points, var))
    if any(poly.subs(var, i + 1) != t for i, t in enumerate(terms)):
        raise Unsupported("sequence is not polynomial")
    return poly


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def read_in_base(text: str, base: int) -> int | None:
    """``-28b3`` in base 14, or None when *text* is not a numeral in that base."""
    text = "".join(text.replace("\u2212", "-").split()).lower()
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if not digits or not 2 <= base <= 36 or any(c not in _DIGITS[:base] for c in digits):
        return None
    return sign * int(digits, base)


def eval_in_base(expr: str, base: int) -> int:
    """Evaluate ``305 - -25`` or ``-1 - 28b2`` written in *base* (+, -, * only)."""
    tokens = re.findall(r"[0-9a-z]+|[-+*]", expr.lower().replace(" ", ""))
    if "".join(tokens) != expr.lower().replace(" ", ""):
        raise Unsupported("expression in base")
    values: list[int] = []
    ops: list[str] = []
    sign = 1
    expect_operand = True
    for tok in tokens:
        if expect_operand:
            if tok in "+-":
                sign = -sign if tok == "-" else sign
                continue
            value = read_in_base(tok, base)
            if value is None:
                raise Unsupported(f"{tok!r} is not a numeral in base {base}")
            values.append(sign * value)
            sign, expect_operand = 1, False
        else:
            ops.append(tok)
            expect_operand = True
    if expect_operand or len(values) != len(ops) + 1:
        raise Unsupported("expression in base")
    # * before + and -.
    terms, term_ops = [values[0]], []
    for op, v in zip(ops, values[1:], strict=True):
        if op == "*":
            terms[-1] *= v
        else:
            terms.append(v)
            term_ops.append(op)
    total = terms[0]
    for op, v in zip(term_ops, terms[1:], strict=True):
        total = total + v if op == "+" else total - v
    return total


_COUNT_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


def _bag(text: str) -> Counter:
    m = re.search(r"without replacement from (\{[^}]*\}|[a-z]+)", text)
    if not m:
        raise Unsupported("letters to pick from")
    source = m.group(1)
    if source.startswith("{"):
        pairs = re.findall(r"([a-z]): (\d+)", source)
        if not pairs:
            raise Unsupported("letter counts")
        return Counter({k: int(v) for k, v in pairs})
    return Counter(source)


def probability(text: str) -> sp.Rational:
    """Probability questions of mathematics_dataset (letters picked without replacement)."""
    text = text.lower()
    bag = _bag(text)
    total = sum(bag.values())
    m = re.search(r"(\w+) letters picked", text)
    if not m or m.group(1) not in _COUNT_WORDS:
        raise Unsupported("number of letters picked")
    n = _COUNT_WORDS[m.group(1)]
    seq = re.search(r"prob of sequence ([a-z]+)", text)
    if seq:
        letters = seq.group(1)
        if len(letters) != n:
            raise Unsupported("sequence length")
        left, p = Counter(bag), sp.Integer(1)
        for i, ch in enumerate(letters):
            p *= sp.Rational(left[ch], total - i)
            left[ch] -= 1
        return p
    pick = re.search(r"prob of picking (.+?)(?: when|\.|$)", text)
    if not pick:
        raise Unsupported("what is picked")
    wanted = {ch: int(k) for k, ch in re.findall(r"(\d+) ([a-z])\b", pick.group(1))}
    if sum(wanted.values()) != n:
        raise Unsupported("picked letters do not add up")
    ways = 1
    for ch, k in wanted.items():
        ways *= comb(bag[ch], k)
    return sp.Rational(ways, comb(total, n))


def minutes_between(t1: str, t2: str) -> int:
    """Minutes from clock time *t1* to the next *t2* (``8:01 AM`` to ``4:49 PM`` is 528)."""
    def minutes(t: str) -> int:
        m = re.fullmatch(r"(\d+):(\d\d) ([AP]M)", t)
        if not m:
            raise Unsupported(f"clock time {t!r}")
        h, mm, half = int(m.group(1)), int(m.group(2)), m.group(3)
        if not (1 <= h <= 12 and mm < 60):
            raise Unsupported(f"clock time {t!r}")
        return (h % 12 + (12 if half == "PM" else 0)) * 60 + mm
    return (minutes(t2) - minutes(t1)) % (24 * 60)


def clock_after(t: str, minutes: int) -> str:
    """The clock time *minutes* after *t* (negative: before), as ``9:33 AM``."""
    start = minutes_between("12:00 AM", t)
    total = (start + minutes) % (24 * 60)
    h, mm = divmod(total, 60)
    return f"{(h - 1) % 12 + 1}:{mm:02d} {'AM' if h < 12 else 'PM'}"

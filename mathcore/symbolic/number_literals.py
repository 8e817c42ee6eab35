"""Number literals as exact SymPy numbers.

Every producer writes numbers as text (``<mn>0.5</mn>``, ``<cn>-5.0000000000000002e-5</cn>``,
``1,000``, ``½``); this module turns that text into an exact :class:`sympy.Rational` so that
``0.5`` and ``1/2`` are the same number, and refuses anything it cannot read with certainty.

A decimal (with a point) of 16 or more significant digits is read as what it almost always is, the
``repr`` of a binary double (mathematics_dataset writes ``-8.82`` as ``-8.8200000000000003``):
when the shortest string that round-trips through a double is shorter, that string is used.

Example:
    >>> parse_number("-8.8200000000000003")
    -441/50

Imports: nothing of :mod:`mathcore.symbolic` (the bottom of the parsing layer).
"""

from __future__ import annotations

import re
from fractions import Fraction

import sympy as sp

# Longest literal accepted: beyond this a number is more likely an attack than an answer.
MAX_DIGITS = 1000

_MINUS = "\u2212\u2013\u2012\ufe63\uff0d"
_DECIMAL_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_THOUSANDS_RE = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SPACES_RE = re.compile(r"[\s\u00a0\u2009\u202f\u200b]+")
_SIGNIFICANT_RE = re.compile(r"[1-9]\d*")
VULGAR = {
    "\u00bd": (1, 2), "\u2153": (1, 3), "\u2154": (2, 3), "\u00bc": (1, 4), "\u00be": (3, 4),
    "\u2155": (1, 5), "\u2156": (2, 5), "\u2157": (3, 5), "\u2158": (4, 5), "\u2159": (1, 6),
    "\u215a": (5, 6), "\u2150": (1, 7), "\u215b": (1, 8), "\u215c": (3, 8), "\u215d": (5, 8),
    "\u215e": (7, 8), "\u2151": (1, 9), "\u2152": (1, 10),
}


def clean_number_text(text: str) -> str:
    """Drop spaces and write Unicode minus signs as ``-``."""
    text = _SPACES_RE.sub("", text)
    for ch in _MINUS:
        text = text.replace(ch, "-")
    return text


def _significant_digits(mantissa: str) -> int:
    digits = mantissa.replace(".", "").lstrip("+-")
    m = _SIGNIFICANT_RE.search(digits)
    return len(m.group(0).rstrip("0")) if m else 0


def _unfloat(text: str) -> str:
    """The shortest double repr of *text* when *text* looks like a printed binary double."""
    mantissa = re.split(r"[eE]", text)[0]
    if "." not in mantissa or _significant_digits(mantissa) < 16:  # integers stay exact
        return text
    value = float(text)
    short = repr(value)
    if short in ("inf", "-inf", "nan"):
        return text
    return short if len(short) < len(text) else text


def parse_number(text: str) -> sp.Rational | None:
    """Read one number literal exactly, or return None when *text* is not one.

    Accepted: integers, decimals (``.5``, ``5.``, ``1.5e-10``), thousands separators
    (``1,000,000``), vulgar fractions (``½``, ``2½``), a leading sign. Not accepted: anything
    longer than :data:`MAX_DIGITS` characters.
    """
    text = clean_number_text(text)
    if not text or len(text) > MAX_DIGITS:
        return None
    if text[-1] in VULGAR:
        num, den = VULGAR[text[-1]]
        whole_text = text[:-1]
        if whole_text in ("", "+", "-"):
            whole = 0
        elif whole_text.lstrip("+-").isdigit():
            whole = abs(int(whole_text))
        else:
            return None
        value = sp.Integer(whole) + sp.Rational(num, den)
        return -value if whole_text.startswith("-") else value
    if _THOUSANDS_RE.fullmatch(text):
        text = text.replace(",", "")
    if not _DECIMAL_RE.fullmatch(text):
        return None
    if "e" in text.lower():
        exponent = int(re.split(r"[eE]", text)[1])
        if abs(exponent) > MAX_DIGITS:
            return None
    text = _unfloat(text)
    frac = Fraction(text)
    return sp.Rational(frac.numerator, frac.denominator)


def parse_integer(text: str) -> int | None:
    """An integer literal (sign allowed, no separators), or None."""
    text = clean_number_text(text)
    if not text or len(text) > MAX_DIGITS:
        return None
    body = text[1:] if text[0] in "+-" else text
    if not body.isdigit():
        return None
    return int(text)


def parse_in_base(digits: str, base: int) -> sp.Rational | None:
    """``4210`` in base 5 (written ``4210_5``; ``0.0011_2`` is 3/16), or None when a digit is
    out of range."""
    if not 2 <= base <= 36 or not digits or len(digits) > MAX_DIGITS:
        return None
    whole, _, frac = digits.partition(".")
    try:
        value = int(whole or "0", base)
        if frac:
            return sp.Rational(value * base ** len(frac) + int(frac, base), base ** len(frac))
    except ValueError:
        return None
    return sp.Integer(value)

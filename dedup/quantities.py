"""The givens of a word problem: its quantities and formulas, read from linear text.

Two problems are duplicates only when they ask the same thing with the same givens, so the
duplicate detector (:mod:`dedup.features`) compares the multisets this module extracts:

* numbers in every written form -- ``12``, ``1,360``, ``4.5``, ``$0.25``, ``1/4``, ``25%``
  (read as 1/4 too: ``50%`` and ``half`` are the same given), ``7:13``;
* number words -- ``three``, ``twenty-five``, ``two hundred``, ``dozen``, ``half``,
  ``a quarter``, ``two-thirds``, ``twice``, ``double``, ``triple``; words naming a number of
  sides (``triangle``, ``pentagon``, ``hexagonal``...) and a rounding precision (``to the
  nearest tenth``, ``hundredth``, ``integer``);
* formulas: the normalised linear text of each inline ``<math>`` element.

Values are exact :class:`fractions.Fraction`\\ s. ``1`` written as a word is left out of
:attr:`Givens.values` (``one``, ``a``, ``an`` and ``each`` say it interchangeably, so it carries
no evidence); ``1`` in digits (``$1``, ``1.00``) is a given like any other.

Example:
    >>> sorted(float(v) for v in extract("Three of them wear 4-inch heels; half pay $2.50.")
    ...        .values.elements())
    [0.5, 2.5, 3.0, 4.0]
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate(
    "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}
_ORDINAL_DEN = {"half": 2, "halves": 2, "third": 3, "thirds": 3, "quarter": 4, "quarters": 4,
                "fourth": 4, "fourths": 4, "fifth": 5, "fifths": 5, "sixth": 6, "sixths": 6,
                "seventh": 7, "sevenths": 7, "eighth": 8, "eighths": 8, "ninth": 9,
                "ninths": 9, "tenth": 10, "tenths": 10}
_MULTIPLIERS = {"twice": 2, "double": 2, "doubles": 2, "doubled": 2, "twofold": 2, "triple": 3,
                "triples": 3, "tripled": 3, "thrice": 3, "threefold": 3, "quadruple": 4,
                "fourfold": 4, "dozen": 12, "dozens": 12, "decade": 10, "decades": 10}
# Words that name a number of sides or a precision: "a hexagonal prism", "to the nearest tenth".
_NAMED = {"triangle": 3, "triangles": 3, "triangular": 3, "quadrilateral": 4,
          "quadrilaterals": 4, "pentagon": 5, "pentagons": 5, "pentagonal": 5, "hexagon": 6,
          "hexagons": 6, "hexagonal": 6, "heptagon": 7, "heptagons": 7, "heptagonal": 7,
          "octagon": 8, "octagons": 8, "octagonal": 8, "nonagon": 9, "nonagons": 9,
          "nonagonal": 9, "decagon": 10, "decagons": 10, "decagonal": 10, "dodecagon": 12,
          "dodecagons": 12, "dodecagonal": 12}
_PRECISION = {"tenth": Fraction(1, 10), "hundredth": Fraction(1, 100),
              "thousandth": Fraction(1, 1000), "integer": Fraction(1), "whole": Fraction(1)}
# Words that stand for a given that is not stated ("several tables", "some roof frames").
VAGUE = frozenset("some several certain unknown few many other others various".split())

_NUMBER_RE = re.compile(
    r"(?<![\w.])(?P<neg>-)?\$?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:\s*/\s*(?P<den>\d+)(?![\d.]))?(?P<pct>\s*(?:%|percent\b|per cent\b))?")
_WORD_RE = re.compile(r"[a-z]+(?:-[a-z]+)*")
_SENTENCE_RE = re.compile(r"(?<=[.?!])\s+(?=[\"'“A-Z0-9$(])")
_TAG_RE = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class Quantity:
    """One given: its value and where it stands (character offsets in the linear text)."""

    value: Fraction
    start: int
    end: int
    form: str = "word"  # digits, decimal, fraction, percent, word or precision

    @property
    def key(self) -> Fraction | tuple[str, Fraction]:
        """What two givens must share to be the same: the value, or for a rounding precision
        (``nearest tenth``) the value marked as one, so it never matches the number 0.1."""
        return ("precision", self.value) if self.form == "precision" else self.value


@dataclass
class Givens:
    """The quantities and formulas of one text, with its sentences."""

    text: str
    quantities: list[Quantity] = field(default_factory=list)
    formulas: Counter = field(default_factory=Counter)

    @cached_property
    def values(self) -> Counter:
        """Multiset of the givens' :attr:`Quantity.key` (``1`` written as a word left out)."""
        return Counter(q.key for q in self.quantities if q.value != 1 or q.form != "word")

    def sentences(self) -> list[tuple[int, int]]:
        """``(start, end)`` offsets of the sentences of the text."""
        out, start = [], 0
        for m in _SENTENCE_RE.finditer(self.text):
            out.append((start, m.start()))
            start = m.end()
        out.append((start, len(self.text)))
        return [(a, b) for a, b in out if self.text[a:b].strip()]


def _form(m: re.Match) -> str:
    if m.group("pct"):
        return "percent"
    if m.group("den"):
        return "fraction"
    return "decimal" if "." in m.group("num") else "digits"


def _number(m: re.Match) -> Fraction | None:
    try:
        value = Fraction(m.group("num").replace(",", ""))
        if m.group("den"):
            den = int(m.group("den"))
            if den == 0:
                return None
            value /= den
    except (ValueError, ZeroDivisionError):
        return None
    if m.group("neg"):
        value = -value
    if m.group("pct"):
        value /= 100
    return value


def _word_numbers(text: str, taken: list[tuple[int, int]]) -> list[Quantity]:
    """Quantities written in words, skipping spans already read as digits."""
    words = [(m.group(), m.start(), m.end()) for m in _WORD_RE.finditer(text.lower())]
    out: list[Quantity] = []
    i = 0
    while i < len(words):
        w, s, e = words[i]
        parts = w.split("-")
        # "two-thirds", "one-half": a cardinal and a denominator in one hyphenated word.
        if len(parts) == 2 and parts[0] in _UNITS and parts[1] in _ORDINAL_DEN:
            out.append(Quantity(Fraction(_UNITS[parts[0]], _ORDINAL_DEN[parts[1]]), s, e))
            i += 1
            continue
        if all(p in _UNITS or p in _TENS or p in _SCALES for p in parts) and \
                (parts[0] in _UNITS or parts[0] in _TENS):
            total, current, j, end = 0, 0, i, e
            while j < len(words):
                ws = words[j][0].split("-")
                if not all(p in _UNITS or p in _TENS or p in _SCALES for p in ws):
                    if words[j][0] == "and" and j + 1 < len(words) and \
                            words[j + 1][0].split("-")[0] in _UNITS | _TENS and total + current:
                        j += 1
                        continue
                    break
                for p in ws:
                    if p in _SCALES:
                        current = max(current, 1) * _SCALES[p]
                        if _SCALES[p] >= 1000:
                            total, current = total + current, 0
                    else:
                        current += _UNITS.get(p, 0) + _TENS.get(p, 0)
                end = words[j][2]
                j += 1
            value = Fraction(total + current)
            # "three quarters", "two thirds": a cardinal followed by a denominator.
            if j < len(words) and words[j][0] in _ORDINAL_DEN and value:
                value /= _ORDINAL_DEN[words[j][0]]
                end = words[j][2]
                j += 1
            out.append(Quantity(value, s, end))
            i = j
            continue
        if w in ("half", "halves"):
            out.append(Quantity(Fraction(1, 2), s, e))
        elif w in _ORDINAL_DEN and i and words[i - 1][0] in ("a", "an", "one", "per"):
            out.append(Quantity(Fraction(1, _ORDINAL_DEN[w]), s, e))
        elif w in _MULTIPLIERS:
            out.append(Quantity(Fraction(_MULTIPLIERS[w]), s, e))
        elif w in _NAMED:
            out.append(Quantity(Fraction(_NAMED[w]), s, e))
        elif w in _PRECISION and i and words[i - 1][0] == "nearest":
            out.append(Quantity(_PRECISION[w], s, e, form="precision"))
        i += 1
    return [q for q in out if not any(a < q.end and q.start < b for a, b in taken)]


def extract(text: str, formulas: list[str] | None = None) -> Givens:
    """The givens of a linear text (see :func:`mathcore.records.query_text`).

    Args:
        text: linear text of a question (MathML already linearised).
        formulas: linear texts of its formulas, if known (compared as normalised strings).
    """
    quantities: list[Quantity] = []
    taken: list[tuple[int, int]] = []
    for m in _NUMBER_RE.finditer(text):
        value = _number(m)
        if value is not None:
            quantities.append(Quantity(value, m.start(), m.end(), _form(m)))
            taken.append((m.start(), m.end()))
    quantities += _word_numbers(text, taken)
    quantities.sort(key=lambda q: q.start)
    keys = Counter("".join(f.split()) for f in formulas or [] if f.strip())
    return Givens(text, quantities, keys)


def formulas_of(question: str) -> list[str]:
    """Linear texts of the inline ``<math>`` elements of a question (unreadable ones skipped)."""
    from mathcore.linear import to_linear
    from mathcore.mathml import MathMLError, parse_math, split_math

    out = []
    try:
        segments = list(split_math(question))
    except MathMLError:
        return out
    for seg in segments:
        if seg.is_math:
            try:
                out.append(to_linear(parse_math(seg.text)))
            except MathMLError:
                continue
    return out


def words(text: str) -> list[str]:
    """Lower-case words of a text, numbers left out."""
    return [w for w in _WORD_RE.findall(_TAG_RE.sub(" ", text).lower())
            if w not in _UNITS and w not in _TENS]

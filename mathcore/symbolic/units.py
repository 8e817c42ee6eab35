"""Unit conversions as mathematics_dataset words them (``Convert 4676.199 millennia to months.``,
``How many kilograms are there in twenty-one eighths of a tonne?``), with exact factors.

The units and factors are those of mathematics_dataset's measurement module: length, time,
calendar time (years to millennia, months), mass and volume; conversions only within one of
these groups. Quantities are a number with a unit name or symbol (``1167801.3s``, ``5 ml``),
a fraction ``3/5 of a litre``, or a fraction in words ``seventeen halves of a meter``.

Imports: :mod:`~mathcore.symbolic.builders`, :mod:`~mathcore.symbolic.number_literals`.
"""

from __future__ import annotations

import re

import sympy as sp

from mathcore.symbolic.builders import Unsupported
from mathcore.symbolic.number_literals import parse_number

_R = sp.Rational
_GROUPS = [
    {"meter": (1, "m"), "kilometer": (1000, "km"), "centimeter": (_R(1, 100), "cm"),
     "millimeter": (_R(1, 1000), "mm"), "micrometer": (_R(1, 10**6), "um"),
     "nanometer": (_R(1, 10**9), "nm")},
    {"second": (1, "s"), "minute": (60, None), "hour": (3600, None), "day": (86400, None),
     "week": (604800, None), "millisecond": (_R(1, 10**3), "ms"),
     "microsecond": (_R(1, 10**6), "us"), "nanosecond": (_R(1, 10**9), "ns")},
    {"year": (1, None), "decade": (10, None), "century": (100, None),
     "millennium": (1000, None), "month": (_R(1, 12), None)},
    {"kilogram": (1, "kg"), "tonne": (1000, "t"), "gram": (_R(1, 10**3), "g"),
     "milligram": (_R(1, 10**6), "mg"), "microgram": (_R(1, 10**9), "ug"),
     "nanogram": (_R(1, 10**12), "ng")},
    {"litre": (1, "l"), "millilitre": (_R(1, 1000), "ml")},
]
_PLURALS = {"century": "centuries", "millennium": "millennia"}
# name, plural or symbol -> (group index, factor)
UNITS: dict[str, tuple[int, sp.Rational]] = {}
for _i, _group in enumerate(_GROUPS):
    for _name, (_factor, _symbol) in _group.items():
        for _key in (_name, _PLURALS.get(_name, _name + "s"), _symbol):
            if _key:
                UNITS[_key] = (_i, sp.Rational(_factor))

_SMALL = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
          "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
          "eighteen", "nineteen"]
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
_ORDINAL_SMALL = {"half": 2, "halve": 2, "third": 3, "quarter": 4, "fourth": 4, "fifth": 5,
                  "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10,
                  "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
                  "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
                  "nineteenth": 19, "twentieth": 20, "thirtieth": 30, "fortieth": 40,
                  "fiftieth": 50, "sixtieth": 60, "seventieth": 70, "eightieth": 80,
                  "ninetieth": 90}


def cardinal(word: str) -> int:
    """``twenty-one`` -> 21 (0 to 99)."""
    if word in _SMALL:
        return _SMALL.index(word)
    tens, _, unit = word.partition("-")
    if tens in _TENS and (not unit or unit in _SMALL[1:10]):
        return _TENS[tens] + (_SMALL.index(unit) if unit else 0)
    raise Unsupported(f"number word {word!r}")


def denominator(word: str) -> int:
    """``eighths`` -> 8, ``halves`` -> 2, ``twenty-firsts`` -> 21."""
    word = word[:-1] if word.endswith("s") else word
    if word.endswith("ve"):
        word = word[:-2] + "f"  # halves -> half
    if word in _ORDINAL_SMALL:
        return _ORDINAL_SMALL[word]
    tens, _, unit = word.partition("-")
    if tens in _TENS and unit in _ORDINAL_SMALL and _ORDINAL_SMALL[unit] < 10:
        return _TENS[tens] + _ORDINAL_SMALL[unit]
    raise Unsupported(f"fraction word {word!r}")


def quantity(text: str) -> tuple[sp.Rational, int, sp.Rational]:
    """(value, unit group, factor to the group's base unit) of ``0.5 km``, ``3/5 of a litre``."""
    text = " ".join(text.lower().split())
    m = re.fullmatch(r"(.+?) of an? (\w+)", text)
    if m:
        amount, unit = m.groups()
        words = re.fullmatch(r"([a-z-]+) ([a-z-]+)", amount)
        if words:
            value = sp.Rational(cardinal(words.group(1)), denominator(words.group(2)))
        else:
            num, _, den = amount.partition("/")
            n, d = parse_number(num), parse_number(den) if den else sp.Integer(1)
            if n is None or d is None or d == 0:
                raise Unsupported(f"amount {amount!r}")
            value = n / d
    else:
        m = re.fullmatch(r"(-?[\d.]+(?:e-?\d+)?) ?([a-z]+)", text)
        if not m:
            raise Unsupported(f"quantity {text!r}")
        value = parse_number(m.group(1))
        unit = m.group(2)
        if value is None:
            raise Unsupported(f"number {m.group(1)!r}")
    if unit not in UNITS:
        raise Unsupported(f"unit {unit!r}")
    group, factor = UNITS[unit]
    return value, group, factor


def convert(source: str, target: str) -> sp.Rational:
    """The value of the quantity *source* in unit *target* (a name or plural)."""
    value, group, factor = quantity(source)
    target = target.lower()
    if target not in UNITS:
        raise Unsupported(f"unit {target!r}")
    target_group, target_factor = UNITS[target]
    if target_group != group:
        raise Unsupported(f"cannot convert {source!r} to {target!r}")
    return value * factor / target_factor

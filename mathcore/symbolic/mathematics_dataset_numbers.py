"""mathematics_dataset handlers for questions about numbers: divisibility, rounding, ordering,
digits, bases, clock times and units (its ``numbers``, ``comparison`` and ``measurement``
modules).

Each handler takes the :class:`~mathcore.symbolic.word_problems.Question`, the regular-expression
match of its final sentence (see :data:`mathcore.symbolic.mathematics_dataset.HANDLERS`) and the
:class:`~mathcore.symbolic.candidates.Candidate`, and returns ``verified``, ``refuted`` or
``unknown``.

Imports: :mod:`~mathcore.symbolic.candidates`, :mod:`~mathcore.symbolic.exact_arithmetic`,
:mod:`~mathcore.symbolic.units`, :mod:`~mathcore.symbolic.word_problems`,
:mod:`~mathcore.symbolic.equivalence` and :mod:`~mathcore.symbolic.builders`.
"""

from __future__ import annotations

import re

import sympy as sp

from mathcore.symbolic import exact_arithmetic, units
from mathcore.symbolic.builders import Unsupported
from mathcore.symbolic.candidates import (
    REFUTED,
    UNKNOWN,
    VERIFIED,
    Candidate,
    candidate_value,
    choose,
    from_verdict,
    integer,
    list_values,
    normal_text,
    number,
    same,
    same_bool,
)
from mathcore.symbolic.equivalence import compare_in_process
from mathcore.symbolic.word_problems import ORDINALS


def h_gcd(q, m, cand):
    a, b = q.env.parse(m.group("a")), q.env.parse(m.group("b"))
    return same(q, sp.Integer(sp.igcd(integer(a, "a"), integer(b, "b"))), cand)


def h_lcm(q, m, cand):
    a, b = q.env.parse(m.group("a")), q.env.parse(m.group("b"))
    return same(q, sp.Integer(sp.ilcm(integer(a, "a"), integer(b, "b"))), cand)


def h_denominator(q, m, cand):
    a = number(q.env.parse(m.group("a")), "a")
    b = number(q.env.parse(m.group("b")), "b")
    if not (a.is_Rational and b.is_Rational):
        raise Unsupported("common denominator of non-rationals")
    return same(q, sp.Integer(sp.ilcm(a.q, b.q)), cand)


def h_remainder(q, m, cand):
    a = integer(q.env.parse(m.group("a")), "dividend")
    b = integer(q.env.parse(m.group("b")), "divisor")
    if b == 0 or a < 0:
        raise Unsupported("remainder of a negative number or by zero")
    return same(q, sp.Integer(a % abs(b)), cand)


def h_round(q, m, cand):
    x = number(q.env.parse(m.group("x")), "number")
    if not x.is_Rational:
        raise Unsupported("rounding an irrational number")
    digits = exact_arithmetic.rounding_digits(m.group("spec"))
    return same(q, exact_arithmetic.round_half_away(x, digits), cand)


def h_sort(q, m, cand):
    values = list_values(q, m.group("items"))
    descending = (m.group("order") or "").startswith(("desc", "decr"))
    if len(set(values)) != len(values):
        raise Unsupported("ties in the list")
    expected = sorted(values, reverse=descending)
    value = candidate_value(q, cand)
    if not isinstance(value, sp.Tuple):
        return REFUTED if value is not None else UNKNOWN
    return same(q, sp.Tuple(*expected), cand)


def h_which(q, m, cand):
    a = number(q.env.parse(m.group("a")), "a")
    b = number(q.env.parse(m.group("b")), "b")
    if a == b:
        raise Unsupported("equal values")
    bigger = m.group("op") in ("bigger", "greater", "larger")
    return choose(q, [a, b], 0 if (a > b) == bigger else 1, cand)


_RELATIONS = {
    "at most": sp.Le, "at most as big as": sp.Le, "less than or equal to": sp.Le, "<=": sp.Le,
    "at least": sp.Ge, "at least as big as": sp.Ge, "greater than or equal to": sp.Ge, ">=": sp.Ge,
    "greater than": sp.Gt, "bigger than": sp.Gt, ">": sp.Gt, "less than": sp.Lt,
    "smaller than": sp.Lt, "<": sp.Lt, "equal to": sp.Eq, "=": sp.Eq, "not equal to": sp.Ne,
    "!=": sp.Ne,
}


def h_is_relation(q, m, cand):
    a = number(q.env.parse(m.group("a")), "a")
    b = number(q.env.parse(m.group("b")), "b")
    truth = _RELATIONS[m.group("rel")](a, b)
    if truth not in (sp.true, sp.false):
        raise Unsupported("undecided comparison")
    return same_bool(bool(truth), cand)


def h_are_equal(q, m, cand):
    a = number(q.env.parse(m.group("a")), "a")
    b = number(q.env.parse(m.group("b")), "b")
    different = m.group("what") in ("unequal", "non-equal", "nonequal", "have different values",
                                    "not equal")
    return same_bool((a != b) if different else (a == b), cand)


def h_kth(q, m, cand):
    k = ORDINALS.get(m.group("k") or "")
    if k is None:
        raise Unsupported("rank")
    listed = m.group("items")
    values = list_values(q, listed) if listed else [number(q.env.parse(v), "option")
                                             for _, v in q.options]
    if len(set(values)) != len(values) or k > len(values):
        raise Unsupported("ties or rank out of range")
    biggest = m.group("dir") in ("biggest", "largest", "greatest")
    target = sorted(values, reverse=biggest)[k - 1]
    return choose(q, values, values.index(target), cand)


def h_closest(q, m, cand):
    target = number(q.env.parse(m.group("t")), "target")
    listed = m.group("items")
    values = list_values(q, listed) if listed else [number(q.env.parse(v), "option")
                                             for _, v in q.options]
    distances = [abs(v - target) for v in values]
    best = min(distances)
    if distances.count(best) != 1:
        raise Unsupported("two values equally close")
    return choose(q, values, distances.index(best), cand)


def h_prime(q, m, cand):
    n = integer(q.env.parse(m.group("n")), "number")
    prime = n > 1 and sp.isprime(n)
    return same_bool(prime if m.group("what") == "prime" else (n > 1 and not prime), cand)


def h_divides(q, m, cand):
    d = integer(q.env.parse(m.group("d")), "divisor")
    n = integer(q.env.parse(m.group("n")), "number")
    if d == 0:
        raise Unsupported("divisor zero")
    return same_bool(n % d == 0, cand)


def h_multiple(q, m, cand):
    n = integer(q.env.parse(m.group("n")), "number")
    d = integer(q.env.parse(m.group("d")), "divisor")
    if d == 0:
        raise Unsupported("divisor zero")
    return same_bool(n % d == 0, cand)


def h_prime_factors(q, m, cand):
    n = integer(q.env.parse(m.group("n")), "number")
    if n < 2:
        raise Unsupported("no prime factors")
    primes = sp.primefactors(n)
    value = candidate_value(q, cand)
    if value is None:
        return UNKNOWN
    elems = list(value.args) if isinstance(value, (sp.Tuple, sp.FiniteSet)) else [value]
    if len(elems) != len(primes):
        return REFUTED
    return from_verdict(compare_in_process(sp.FiniteSet(*primes), sp.FiniteSet(*elems)))


def h_place(q, m, cand):
    n = abs(integer(q.env.parse(m.group("n")), "number"))
    power = exact_arithmetic.PLACES[m.group("place")]
    return same(q, sp.Integer((n // 10**power) % 10), cand)


def h_root(q, m, cand):
    n = integer(q.env.parse(m.group("n")), "number")
    k = ORDINALS.get(m.group("k")) if m.group("k") else int(m.group("kn"))
    if k is None or n < 0:
        raise Unsupported("root")
    return same(q, sp.Integer(exact_arithmetic.nearest_root(n, k)), cand)


def _in_base(expected: int, cand: Candidate, base: int) -> str:
    got = exact_arithmetic.read_in_base(cand.text, base)
    if got is None:
        # A numeral with a digit the base does not have is a wrong answer; anything else
        # (an unreadable or oddly written candidate) is not decided.
        return REFUTED if re.fullmatch(r"-?[0-9a-z]+", cand.text) else UNKNOWN
    return VERIFIED if got == expected else REFUTED


def h_base_arith(q, m, cand):
    base = int(m.group("b"))
    return _in_base(exact_arithmetic.eval_in_base(m.group("e"), base), cand, base)


def h_base_convert(q, m, cand):
    value = exact_arithmetic.read_in_base(m.group("n"), int(m.group("b1")))
    if value is None:
        raise Unsupported("numeral in base")
    return _in_base(value, cand, int(m.group("b2")))


_CLOCK = re.compile(r"\d{1,2}:\d\d[ap]m")


def h_minutes_between(q, m, cand):
    if _CLOCK.fullmatch(cand.text):
        return REFUTED  # a clock time where a number of minutes was asked
    return same(q, sp.Integer(exact_arithmetic.minutes_between(m.group("t1"), m.group("t2"))), cand)


def h_clock(q, m, cand):
    minutes = int(m.group("n")) * (1 if m.group("dir") == "after" else -1)
    expected = exact_arithmetic.clock_after(m.group("t"), minutes)
    if not _CLOCK.fullmatch(cand.text):
        # A plain number where a clock time was asked is wrong; other text is not decided.
        return REFUTED if isinstance(cand.expr, sp.Number) else UNKNOWN
    return VERIFIED if cand.text == normal_text(expected) else REFUTED


def h_convert_units(q, m, cand):
    source = m.group("x") or m.group("x2")
    target = m.group("to") or m.group("to2")
    return same(q, units.convert(source, target), cand)

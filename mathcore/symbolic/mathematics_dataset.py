"""The answer checker for DeepMind mathematics_dataset's question templates.

Each template of mathematics_dataset's generators (``algebra``, ``arithmetic``, ``calculus``,
``comparison``, ``measurement``, ``numbers``, ``polynomials``, ``probability``; and the same
wordings around inline MathML) has a handler that computes the expected answer and compares the
candidate with it: ``verified``, ``refuted``, or ``unknown`` when the question is not
understood, the candidate is unreadable, or the comparison cannot decide. A wrong ``refuted``
on a correct answer is the costly mistake, so every handler refuses (``unknown``) rather than
guesses: ties in sorting and rounding, non-real roots, answers in a form the question did not
ask for.

:data:`HANDLERS` maps the final sentence of a question to its handler (first match wins); the
handlers for algebra, calculus, polynomials and arithmetic are here, those for numbers,
comparison and measurement in :mod:`mathcore.symbolic.mathematics_dataset_numbers`.
:func:`verify_task` runs inside a worker process: it is registered as the task ``verify`` that
:mod:`mathcore.symbolic.verification` sends.

Imports: :mod:`~mathcore.symbolic.runtime` (to register the task), the verification modules
below it (:mod:`~mathcore.symbolic.mathematics_dataset_numbers`,
:mod:`~mathcore.symbolic.candidates`, :mod:`~mathcore.symbolic.word_problems`,
:mod:`~mathcore.symbolic.exact_arithmetic`) and parsing (:mod:`~mathcore.symbolic.ascii`,
:mod:`~mathcore.symbolic.builders`).
"""

from __future__ import annotations

import re
from typing import Callable

import sympy as sp

from mathcore.symbolic import exact_arithmetic
from mathcore.symbolic.ascii import parse_ascii
from mathcore.symbolic.builders import Unsupported
from mathcore.symbolic.candidates import (
    UNKNOWN,
    VERIFIED,
    Candidate,
    candidate_value,
    list_values,
    number,
    read_candidate,
    same,
)
from mathcore.symbolic.mathematics_dataset_numbers import (
    h_are_equal,
    h_base_arith,
    h_base_convert,
    h_clock,
    h_closest,
    h_convert_units,
    h_denominator,
    h_divides,
    h_gcd,
    h_is_relation,
    h_kth,
    h_lcm,
    h_minutes_between,
    h_multiple,
    h_place,
    h_prime,
    h_prime_factors,
    h_remainder,
    h_root,
    h_round,
    h_sort,
    h_which,
)
from mathcore.symbolic.runtime import task
from mathcore.symbolic.word_problems import ORDINALS, Env, Question, derivative, read_question

__all__ = ["HANDLERS", "VERIFY_TASK", "verify_task"]

VERIFY_TASK = "verify"


@task(VERIFY_TASK)
def verify_task(question: str, payload: dict) -> str:
    """The worker task: ``verified``, ``refuted`` or ``unknown``."""
    try:
        cand = read_candidate(payload)
        if "prob of " in question:
            # "Two letters picked without replacement from ... What is prob of ...?": the
            # context sentence is part of the question, not a definition.
            expected = exact_arithmetic.probability(" ".join(question.split()))
            return same(Question("", (), Env()), expected, cand)
        q = read_question(question)
        for pattern, handler in HANDLERS:
            m = pattern.fullmatch(q.sentence)
            if m:
                return handler(q, m, cand)
    except (Unsupported, NotImplementedError, ValueError, TypeError, ZeroDivisionError,
            AttributeError, KeyError, IndexError, RecursionError):
        return UNKNOWN
    return UNKNOWN


# --- algebra and calculus ------------------------------------------------------------------

def _unknowns(q: Question, eqs: list) -> list:
    return sorted(set().union(*[e.free_symbols for e in eqs]), key=str)


def solve_for(q: Question, eq_text: str | None, var: str, cand: Candidate) -> str:
    env = q.env
    eqs = list(env.pending)
    if eq_text is not None:
        value = env.parse(eq_text)
        parts = list(value.args) if isinstance(value, sp.Tuple) else [value]
        for p in parts:
            if isinstance(p, sp.Expr):
                p = sp.Eq(p, 0)  # "Solve x**2 - 4." reads as "= 0"
            if not isinstance(p, sp.Eq):
                raise Unsupported("not an equation")
            eqs.append(p)
    x = sp.Symbol(var)
    if x in env.values and eq_text is None:
        return same(q, env.values[x], cand)
    unknowns = _unknowns(q, eqs)
    if x not in unknowns:
        raise Unsupported(f"{var} does not occur in the equations")
    solutions = sp.solve(eqs, unknowns, dict=True)
    values = {s[x] for s in solutions if x in s}
    if not values or any(v.free_symbols for v in values) or len(values) != len(solutions):
        raise Unsupported("no unique value for the unknown")
    if any(v.is_real is not True for v in values):
        raise Unsupported("a root that is not known to be real")
    expected = next(iter(values)) if len(values) == 1 else sp.FiniteSet(*values)
    return same(q, expected, cand)


def _factored(expr: sp.Basic) -> bool:
    for factor in sp.Mul.make_args(expr):
        base = factor.base if isinstance(factor, sp.Pow) and factor.exp.is_Integer else factor
        if base.is_number:
            continue
        if not isinstance(base, sp.Expr) or not base.is_polynomial():
            return False
        _, factors = sp.factor_list(base)
        if len(factors) != 1 or factors[0][1] != 1:
            return False
    return True


def check_form(q: Question, expected: sp.Expr, cand: Candidate, form: Callable) -> str:
    verdict = same(q, expected, cand)
    if verdict == VERIFIED and not form(candidate_value(q, cand)):
        return UNKNOWN  # the right value in a form the question did not ask for
    return verdict


def h_solve(q, m, cand):
    return solve_for(q, m.group("eqs"), m.group("var"), cand)


def h_solve_single(q, m, cand):
    value = q.env.parse(m.group("eqs"))
    parts = list(value.args) if isinstance(value, sp.Tuple) else [value]
    letters = set().union(*[p.free_symbols for p in parts]) | q.env.unknown_letters()
    if len(letters) != 1:
        raise Unsupported("solve without 'for' in several letters")
    return solve_for(q, m.group("eqs"), next(iter(letters)).name, cand)


def h_value_of(q, m, cand):
    x = sp.Symbol(m.group("var"))
    if x in q.env.values:
        return same(q, q.env.values[x], cand)
    if x in q.env.unknown_letters():
        return solve_for(q, None, x.name, cand)
    raise Unsupported("unknown letter")


def h_factor(q, m, cand):
    expr = q.env.parse(m.group("e"))
    return check_form(q, expr, cand, _factored)


def h_expand(q, m, cand):
    expr = q.env.parse(m.group("e"))
    return check_form(q, sp.expand(expr), cand, lambda c: sp.expand(c) == c)


def h_simplify(q, m, cand):
    expr = q.env.parse(m.group("e"))
    return same(q, expr, cand, positive=bool(m.group("pos")))


def h_derivative(q, m, cand):
    order = ORDINALS.get(m.group("ord") or "")
    if order is None:
        raise Unsupported("derivative order")
    var = sp.Symbol(m.group("var")) if m.group("var") else None
    return same(q, derivative(q.env.parse(m.group("e")), order, var), cand)


def h_differentiate(q, m, cand):
    return same(q, derivative(q.env.parse(m.group("e")), 1, sp.Symbol(m.group("var"))), cand)


def h_evaluate(q, m, cand):
    return same(q, q.env.parse(m.group("e")), cand)


def h_binary(op: Callable) -> Callable:
    def handler(q, m, cand):
        a, b = q.env.parse(m.group("a")), q.env.parse(m.group("b"))
        return same(q, op(number(a, "operand"), number(b, "operand")), cand)
    return handler


def h_next(q, m, cand):
    terms = list_values(q, m.group("items"))
    poly = exact_arithmetic.sequence_polynomial(terms, sp.Symbol("n"))
    return same(q, poly.subs(sp.Symbol("n"), len(terms) + 1), cand)


def h_nth(q, m, cand):
    var = sp.Symbol(m.group("var"))
    poly = exact_arithmetic.sequence_polynomial(list_values(q, m.group("items")), var)
    return same(q, poly, cand)


def h_coefficient(q, m, cand):
    expr = sp.expand(q.env.parse(m.group("e")))
    form = parse_ascii(m.group("form"))
    if not form.ok:
        raise Unsupported("form")
    variables = expr.free_symbols
    name = sp.Symbol(m.group("c"))
    for term in sp.Add.make_args(form.expr):
        if name in term.free_symbols:
            monomial = term.xreplace({name: sp.Integer(1)})
            if monomial.free_symbols - variables:
                raise Unsupported("form with unknown letters")
            if not variables:
                return same(q, expr if monomial == 1 else sp.Integer(0), cand)
            poly = sp.Poly(expr, *sorted(variables, key=str))
            return same(q, poly.coeff_monomial(monomial), cand)
    raise Unsupported("coefficient not in the form")


_E = r"(?P<e>.+)"
_NUM_A, _NUM_B = r"(?P<a>.+?)", r"(?P<b>.+)"
_ORD = r"(?:(?P<ord>\w+) )?"
HANDLERS: list[tuple[re.Pattern, Callable]] = [(re.compile(p, re.IGNORECASE), h) for p, h in [
    (r"Solve (?P<eqs>.+) for (?P<var>\w)", h_solve),
    (r"(?:Find|Determine|Calculate|Give|What is) (?P<var>\w),? (?:given that|such that|so that|"
     r"in) (?P<eqs>.+)", h_solve),
    (r"Solve (?P<eqs>.+)", h_solve_single),
    (r"(?:Calculate|Determine|Give|What is|Find) (?P<var>[a-z])", h_value_of),
    (r"Factor " + _E, h_factor),
    (r"(?:Expand|Collect the terms in) " + _E, h_expand),
    (r"Simplify (?P<e>.+?)(?P<pos> assuming \w is positive)?", h_simplify),
    (r"(?:What is|Find|Calculate|Give|Determine) the " + _ORD + r"derivative of (?P<e>.+?)"
     r"(?: wrt (?P<var>\w))?", h_derivative),
    (r"Differentiate (?P<e>.+?) (?:wrt|with respect to) (?P<var>\w)", h_differentiate),
    (r"(?:Calculate|What is|Find|Give) the (?:greatest|highest) common (?:divisor|factor) of "
     + _NUM_A + " and " + _NUM_B, h_gcd),
    (r"(?:Calculate|What is|Find|Give) the (?:lowest|least|smallest) common multiple of "
     + _NUM_A + " and " + _NUM_B, h_lcm),
    (r"(?:Calculate|What is|Find|Give) the common denominator of " + _NUM_A + " and " + _NUM_B,
     h_denominator),
    (r"(?:Calculate|What is|Find) the remainder when " + _NUM_A + " is divided by " + _NUM_B,
     h_remainder),
    (r"Round (?P<x>.+) to (?P<spec>.+?)", h_round),
    (r"What is (?P<x>.+) rounded to (?P<spec>.+?)", h_round),
    (r"(?:Sort|Put) (?P<items>.+?)(?: in (?P<order>ascending|descending|increasing|decreasing) "
     r"order)?", h_sort),
    (r"Which is (?P<op>bigger|greater|larger|smaller|less): (?P<a>.+) or (?P<b>.+)", h_which),
    (r"Is (?P<a>.+?) (?P<rel>at most as big as|at least as big as|at most|at least|"
     r"greater than or equal to|less than or equal to|greater than|bigger than|less than|"
     r"smaller than|not equal to|equal to|!=|<=|>=|<|>|=) (?P<b>.+)", h_is_relation),
    (r"Does (?P<a>.+?) (?P<rel>=) (?P<b>.+)", h_is_relation),
    (r"(?:Are|Do) (?P<a>.+?) and (?P<b>.+?) (?P<what>equal|unequal|non-equal|nonequal|"
     r"not equal|have different values|have the same value)", h_are_equal),
    (r"What is the (?:(?P<k>\w+) )?(?P<dir>biggest|smallest|largest|greatest) value in "
     r"(?P<items>.+)", h_kth),
    (r"Which is the (?:(?P<k>\w+) )?(?P<dir>biggest|smallest|largest|greatest) value"
     r"(?P<items>)", h_kth),
    (r"What is the (?:closest|nearest) to (?P<t>.+?) in (?P<items>.+)", h_closest),
    (r"Which is the (?:closest|nearest) to (?P<t>.+?)(?P<items>)", h_closest),
    (r"Is (?P<n>.+?) (?:a )?(?P<what>prime|composite)(?: number)?", h_prime),
    (r"Is (?P<d>.+?) (?:a )?factor of (?P<n>.+)", h_divides),
    (r"Does (?P<d>.+?) divide (?P<n>.+)", h_divides),
    (r"Is (?P<n>.+?) (?:a multiple of|divisible by) (?P<d>.+)", h_multiple),
    (r"(?:List the|What are the) prime factors of (?P<n>.+)", h_prime_factors),
    (r"What is the (?P<place>units|tens|hundreds|thousands|ten thousands|hundred thousands|"
     r"millions|ten millions|hundred millions|billions) digit of (?P<n>.+)", h_place),
    (r"What is the (?P<k>\w+) root of (?P<n>.+?) to the nearest integer(?P<kn>)", h_root),
    (r"What is (?P<n>.+?) to the power of 1/(?P<kn>\d+), to the nearest integer(?P<k>)",
     h_root),
    (r"What (?:is next in|comes next:|is the next term in) (?P<items>.+)", h_next),
    (r"What is the (?P<var>\w)'th term of (?P<items>.+)", h_nth),
    (r"(?:Rearrange|Express) (?P<e>.+?) (?:to the form|in the form|to|as) (?P<form>.+?) and "
     r"give (?P<c>\w)", h_coefficient),
    (r"In base (?P<b>\d+), what is (?P<e>.+)", h_base_arith),
    (r"(?:Convert |What is )?(?P<n>-?[0-9a-z]+) \(base (?P<b1>\d+)\) (?:to|in) base "
     r"(?P<b2>\d+)", h_base_convert),
    (r"What is (?P<n>\d+) minutes (?P<dir>before|after) (?P<t>\d+:\d+ [AP]M)", h_clock),
    (r"(?:How many|What is|Convert) (?:(?P<to>[a-z]+) are there in (?P<x>.+)|(?P<x2>.+) (?:in|to) "
     r"(?P<to2>[a-z]+))", h_convert_units),
    (r"How many minutes are there between (?P<t1>\d+:\d+ [AP]M) and (?P<t2>\d+:\d+ [AP]M)",
     h_minutes_between),
    (r"(?:What is|Calculate|Give|Determine|Compute|Work out) (?P<a>.+?) divided by (?P<b>.+)",
     h_binary(lambda a, b: a / b)),
    (r"Divide (?P<a>.+?) by (?P<b>.+)", h_binary(lambda a, b: a / b)),
    (r"(?P<a>.+?) divided by (?P<b>.+)", h_binary(lambda a, b: a / b)),
    (r"(?:What is )?(?P<a>.+?) times (?P<b>.+)", h_binary(lambda a, b: a * b)),
    (r"(?:Multiply|Product of|What is the product of|Calculate the product of) (?P<a>.+?) and "
     r"(?P<b>.+)", h_binary(lambda a, b: a * b)),
    (r"What is (?P<a>.+?) less than (?P<b>.+)", h_binary(lambda a, b: b - a)),
    (r"What is (?P<a>.+?) more than (?P<b>.+)", h_binary(lambda a, b: b + a)),
    # mathematics_dataset asks for the difference or distance only as a non-negative number.
    (r"What is the (?:difference|distance) between (?P<a>.+?) and (?P<b>.+)",
     h_binary(lambda a, b: abs(a - b))),
    (r"(?:Add together|Add|Sum|Total of|Put together|What is the sum of|Calculate the sum of) "
     r"(?P<a>.+?) and (?P<b>.+)",
     h_binary(lambda a, b: a + b)),
    (r"Subtract (?P<a>.+?) from (?P<b>.+)", h_binary(lambda a, b: b - a)),
    (r"What is (?P<a>.+?) take away (?P<b>.+)", h_binary(lambda a, b: a - b)),
    (r"What is (?P<a>.+?) minus (?P<b>.+)", h_binary(lambda a, b: a - b)),
    (r"What is (?P<a>.+?) plus (?P<b>.+)", h_binary(lambda a, b: a + b)),
    (r"(?:What is the value of|What is|Calculate|Evaluate|Give|Determine|Compute|Work out) " + _E,
     h_evaluate),
    (r"(?P<e>[-+*/()^.\d\s]+)", h_evaluate),
    (r"(?P<e>[a-z]\(-?\d+\))", h_evaluate),
]]

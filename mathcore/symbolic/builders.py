"""Building SymPy expressions safely, shared by the MathML and ASCII readers.

SymPy evaluates as it builds: ``Pow(2, 10**10)`` computes a ten-billion-bit integer and
``factorial(10**9)`` never returns. Everything the readers build goes through these helpers,
which refuse (with :class:`Unsupported`) results too large to be an answer.

Imports: nothing of :mod:`mathcore.symbolic` (the bottom of the parsing layer).
"""

from __future__ import annotations

import math

import sympy as sp

# Largest exact integer result allowed from a power or factorial, in decimal digits.
MAX_RESULT_DIGITS = 2000
# Largest result kept as an unevaluated power (2^2005), in decimal digits.
MAX_LAZY_DIGITS = 100_000
# Largest n whose n! is kept (unevaluated above 800): beyond it even numeric checks are slow.
MAX_FACTORIAL = 100_000


class Unsupported(Exception):
    """Raised inside the readers; the message becomes :attr:`Conversion.reason`."""


def _digits(n: sp.Expr) -> float:
    return math.log10(abs(int(n))) if n != 0 else 0.0


def power(base: sp.Basic, exp: sp.Basic) -> sp.Expr:
    """``base**exp``, refused when an exact result would have too many digits."""
    _expr(base, "power base")
    _expr(exp, "exponent")
    if exp.is_Rational and base.is_number and base not in (0, 1, -1):
        mag = abs(exp)
        if base.is_Rational:
            size = max(_digits(base.p), _digits(base.q)) * float(min(mag, 10**9))
        else:
            size = float(min(mag, 10**9))
        if size > MAX_LAZY_DIGITS:
            raise Unsupported("number too large")
        if size > MAX_RESULT_DIGITS:
            return sp.Pow(base, exp, evaluate=False)  # 2^2005: kept as a power
    if base == 0 and exp.is_number and exp.is_negative:
        raise Unsupported("division by zero")
    if (exp.is_Rational and not exp.is_Integer and exp.q % 2 == 1 and base.is_number
            and base.is_extended_negative):
        # (-125)^(4/3) as a school reader means it: the real cube root, to the 4th power (625),
        # not SymPy's principal complex value.
        return sp.Pow(sp.real_root(base, exp.q), exp.p)
    return sp.Pow(base, exp)


def divide(num: sp.Basic, den: sp.Basic) -> sp.Expr:
    """``num/den``; a zero denominator is refused rather than turned into ``zoo``."""
    _expr(num, "numerator")
    _expr(den, "denominator")
    if den == 0:
        raise Unsupported("division by zero")
    return sp.Mul(num, sp.Pow(den, -1))


def times(*factors: sp.Basic) -> sp.Expr:
    """The product of expressions (no sets or relations)."""
    for f in factors:
        _expr(f, "factor")
    return sp.Mul(*factors)


def plus(*terms: sp.Basic) -> sp.Expr:
    """The sum of expressions (no sets or relations)."""
    for t in terms:
        _expr(t, "term")
    return sp.Add(*terms)


def negate(x: sp.Basic) -> sp.Expr:
    """``-x``."""
    _expr(x, "operand of minus")
    return -x


def factorial(n: sp.Basic) -> sp.Expr:
    """``n!``, refused for integers whose factorial would be too long to write."""
    _expr(n, "factorial")
    if n.is_Integer and n > MAX_FACTORIAL:
        raise Unsupported("number too large")
    if n.is_Integer and n > 800:
        return sp.factorial(n, evaluate=False)  # 801! has more than MAX_RESULT_DIGITS digits
    if n.is_number and not n.is_Integer:
        raise Unsupported("factorial of a non-integer")
    return sp.factorial(n)


def nth_root(x: sp.Basic, n: sp.Basic) -> sp.Expr:
    """The n-th root as a school reader means it: the real root of a negative number for odd n."""
    _expr(x, "radicand")
    _expr(n, "root degree")
    if n == 0:
        raise Unsupported("root of degree 0")
    if n.is_Integer and n.is_odd and x.is_number and x.is_extended_negative:
        return sp.real_root(x, n)
    return power(x, sp.Integer(1) / n)


def _expr(x: sp.Basic, what: str) -> None:
    if not isinstance(x, sp.Expr):
        raise Unsupported(f"{what} is not a number or expression ({type(x).__name__})")
    if x.has(sp.zoo, sp.nan):
        raise Unsupported("undefined value")


def log(x: sp.Basic, base: sp.Basic | None = None) -> sp.Expr:
    """Natural log, or the log to *base*."""
    _expr(x, "logarithm argument")
    if base is None:
        return sp.log(x)
    _expr(base, "logarithm base")
    if base in (0, 1):
        raise Unsupported("logarithm base 0 or 1")
    return sp.log(x, base)


def _gcd(*args: sp.Expr) -> sp.Expr:
    return sp.gcd(list(args)) if len(args) > 2 else sp.gcd(*args)


def _lcm(*args: sp.Expr) -> sp.Expr:
    return sp.lcm(list(args)) if len(args) > 2 else sp.lcm(*args)


def _arity(fn, low: int, high: int | None = 1):
    def call(*args: sp.Basic) -> sp.Expr:
        if len(args) < low or (high is not None and len(args) > high):
            raise Unsupported(f"{fn.__name__ if hasattr(fn, '__name__') else fn} "
                              f"takes {low}{'' if high == low else '+'} argument(s)")
        for a in args:
            _expr(a, "function argument")
        return fn(*args)
    return call


# Function names as producers write them, to SymPy callables.
FUNCTIONS = {
    name: _arity(fn, 1)
    for name, fn in {
        "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "sec": sp.sec, "csc": sp.csc, "cot": sp.cot,
        "cosec": sp.csc, "tg": sp.tan, "ctg": sp.cot,
        "arcsin": sp.asin, "arccos": sp.acos, "arctan": sp.atan, "arcsec": sp.asec,
        "arccsc": sp.acsc, "arccot": sp.acot, "asin": sp.asin, "acos": sp.acos,
        "atan": sp.atan, "asec": sp.asec, "acsc": sp.acsc, "acot": sp.acot,
        "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh, "sech": sp.sech, "csch": sp.csch,
        "coth": sp.coth, "arcsinh": sp.asinh, "arccosh": sp.acosh, "arctanh": sp.atanh,
        "arsinh": sp.asinh, "arcosh": sp.acosh, "artanh": sp.atanh, "asinh": sp.asinh,
        "acosh": sp.acosh, "atanh": sp.atanh,
        "exp": sp.exp, "ln": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs,
        "floor": sp.floor, "ceil": sp.ceiling, "ceiling": sp.ceiling,
    }.items()
}
FUNCTIONS.update({
    "max": _arity(sp.Max, 1, None), "min": _arity(sp.Min, 1, None),
    "gcd": _arity(_gcd, 2, None), "lcm": _arity(_lcm, 2, None),
})
# Inverse functions written sin^{-1}.
INVERSES = {"sin": "arcsin", "cos": "arccos", "tan": "arctan", "sec": "arcsec", "csc": "arccsc",
            "cot": "arccot", "sinh": "arcsinh", "cosh": "arccosh", "tanh": "arctanh"}
TRIG = frozenset(INVERSES) | {"sech", "csch", "coth", "cosec", "tg", "ctg"}

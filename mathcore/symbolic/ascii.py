"""Plain ASCII math (``-9*w + 21``, ``x**2``, ``3/4``, ``2^3``) to SymPy, without ``eval``.

Questions in mathematics_dataset are typed like Python; ``sympify`` would read them, but it
runs ``eval`` on its input. This is a small tokenizer and recursive-descent parser instead:

``,`` (tuple) > relations (``= == < > <= >= !=``) > ``+ -`` > ``* /`` > implicit product
(``2x``, ``2(x+1)``) > unary sign > ``** ^`` (right-associative; ``-2**2`` is -4) > ``!`` >
primaries: numbers, one-letter symbols, ``pi``, function calls ``sqrt(2)``, ``f(3)``.

Letters are plain symbols (``e`` and ``i`` are variables in these questions, not constants).

Example:
    >>> parse_ascii("-9*w + 21").expr
    21 - 9*w

Imports: :mod:`~mathcore.symbolic.builders`, :mod:`~mathcore.symbolic.convert` (for
:class:`~mathcore.symbolic.convert.Conversion`), :mod:`~mathcore.symbolic.number_literals`.
"""

from __future__ import annotations

import re
from typing import Sequence

import sympy as sp

from mathcore.symbolic import builders
from mathcore.symbolic.builders import Unsupported
from mathcore.symbolic.convert import Conversion
from mathcore.symbolic.number_literals import parse_number

MAX_LENGTH = 10_000
_TOKEN_RE = re.compile(r"""
    (?P<slot>\{\{\d+\}\})
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z][A-Za-z0-9_]*)
  | (?P<op>\*\*|==|<=|>=|!=|[-+*/^()\[\],=<>!%])
  | (?P<space>\s+)
""", re.VERBOSE)
_RELATIONS = {"=": sp.Eq, "==": sp.Eq, "<": sp.Lt, ">": sp.Gt, "<=": sp.Le, ">=": sp.Ge,
              "!=": sp.Ne}
_NAMES = {"pi": sp.pi, "oo": sp.oo, "inf": sp.oo, "infinity": sp.oo}
_UNICODE = {"\u2212": "-", "\u2013": "-", "\u00d7": "*", "\u00b7": "*", "\u00f7": "/",
            "\u2264": "<=", "\u2265": ">=", "\u2260": "!="}


def tokenize(text: str) -> list[tuple[str, str]]:
    """``(kind, text)`` pairs; kind is ``num``, ``name`` or ``op``.

    Raises:
        Unsupported: on a character outside the grammar.
    """
    for u, a in _UNICODE.items():
        text = text.replace(u, a)
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise Unsupported(f"unexpected character {text[pos]!r} at {pos}")
        pos = m.end()
        if m.lastgroup != "space":
            tokens.append((m.lastgroup, m.group(0)))
    return tokens


def parse_ascii(text: str, slots: Sequence[sp.Basic] = ()) -> Conversion:
    """Parse one ASCII formula; a :class:`Conversion` with the reason when it cannot.

    Args:
        text: the formula.
        slots: values for ``{{0}}``, ``{{1}}``... placeholders (formulas that were given as
            MathML inside a text).
    """
    if len(text) > MAX_LENGTH:
        return Conversion(None, f"formula longer than {MAX_LENGTH} characters")
    try:
        parser = _Parser(tokenize(text), slots)
        expr = parser.top()
        if parser.pos != len(parser.tokens):
            raise Unsupported(f"unexpected {parser.tokens[parser.pos][1]!r}")
    except Unsupported as exc:
        return Conversion(None, str(exc))
    except RecursionError:
        return Conversion(None, "formula nested too deeply")
    except (TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        return Conversion(None, f"sympy: {type(exc).__name__}: {str(exc)[:80]}")
    return Conversion(expr)


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], slots: Sequence[sp.Basic] = ()) -> None:
        self.tokens = tokens
        self.slots = slots
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def at(self, *ops: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "op" and tok[1] in ops

    def take(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise Unsupported("unexpected end of formula")
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def expect(self, op: str) -> None:
        tok = self.take()
        if tok != ("op", op):
            raise Unsupported(f"expected {op!r}, found {tok[1]!r}")

    def top(self) -> sp.Basic:
        if not self.tokens:
            raise Unsupported("empty formula")
        values = [self.relation()]
        while self.at(","):
            self.take()
            values.append(self.relation())
        return values[0] if len(values) == 1 else sp.Tuple(*values)

    def relation(self) -> sp.Basic:
        values = [self.additive()]
        ops = []
        while self.at(*_RELATIONS):
            ops.append(self.take()[1])
            values.append(self.additive())
        if not ops:
            return values[0]
        pairs = zip(ops, values, values[1:], strict=False)
        rels = [_RELATIONS[o](a, b, evaluate=False) for o, a, b in pairs]
        return rels[0] if len(rels) == 1 else sp.And(*rels, evaluate=False)

    def additive(self) -> sp.Expr:
        expr = self.signed()
        while self.at("+", "-"):
            op = self.take()[1]
            rhs = self.signed()
            expr = builders.plus(expr, rhs if op == "+" else builders.negate(rhs))
        return expr

    def signed(self) -> sp.Expr:
        if self.at("+", "-"):
            op = self.take()[1]
            value = self.signed()
            return value if op == "+" else builders.negate(value)
        return self.multiplicative()

    def multiplicative(self) -> sp.Expr:
        expr, _ = self.implicit()
        while self.at("*", "/"):
            op = self.take()[1]
            if self.at("+", "-"):
                rhs = self.signed()
                count = 1
            else:
                rhs, count = self.implicit()
            if op == "/":
                if count > 1:
                    raise Unsupported("ambiguous division a/bc")
                expr = builders.divide(expr, rhs)
            else:
                expr = builders.times(expr, rhs)
        return expr

    def starts_primary(self) -> bool:
        tok = self.peek()
        return tok is not None and (tok[0] in ("num", "name", "slot") or tok == ("op", "("))

    def implicit(self) -> tuple[sp.Expr, int]:
        factors = [self.power()]
        while self.starts_primary():
            if self.peek()[0] == "num":
                raise Unsupported("two numbers side by side")
            factors.append(self.power())
        if len(factors) == 1:
            return factors[0], 1
        return builders.times(*factors), len(factors)

    def power(self) -> sp.Expr:
        base = self.postfix()
        if self.at("**", "^"):
            self.take()
            exponent = self.exponent()
            return builders.power(base, exponent)
        return base

    def exponent(self) -> sp.Expr:
        if self.at("+", "-"):
            op = self.take()[1]
            value = self.exponent()
            return value if op == "+" else builders.negate(value)
        return self.power()

    def postfix(self) -> sp.Expr:
        value = self.primary()
        while self.at("!"):
            self.take()
            value = builders.factorial(value)
        return value

    def primary(self) -> sp.Expr:
        kind, text = self.take()
        if kind == "num":
            value = parse_number(text)
            if value is None:
                raise Unsupported(f"number {text!r}")
            return value
        if kind == "name":
            return self.name(text)
        if kind == "slot":
            index = int(text[2:-2])
            if index >= len(self.slots):
                raise Unsupported(f"no value for placeholder {text}")
            return self.slots[index]
        if text == "(":
            inner = self.top()
            self.expect(")")
            if not isinstance(inner, (sp.Expr, sp.Tuple)):
                raise Unsupported("parenthesised value that is not an expression")
            return inner
        raise Unsupported(f"unexpected {text!r}")

    def name(self, text: str) -> sp.Expr:
        if self.at("("):
            self.take()
            args = [] if self.at(")") else self._args()
            self.expect(")")
            if text in builders.FUNCTIONS:
                return builders.FUNCTIONS[text](*args)
            if text == "log":
                if len(args) == 2:
                    return builders.log(args[0], args[1])
                if len(args) == 1:
                    return builders.log(args[0])
                raise Unsupported("log takes one or two arguments")
            if len(text) == 1:
                return sp.Function(text)(*args)
            raise Unsupported(f"unknown function {text!r}")
        if text in _NAMES:
            return _NAMES[text]
        if len(text) == 1:
            return sp.Symbol(text)
        raise Unsupported(f"unknown name {text!r}")

    def _args(self) -> list[sp.Expr]:
        args = [self.additive()]
        while self.at(","):
            self.take()
            args.append(self.additive())
        return args

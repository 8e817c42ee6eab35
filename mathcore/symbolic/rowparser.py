"""Operator precedence for a row of Presentation MathML tokens.

:mod:`mathcore.symbolic.presentation` flattens a row (``mrow``, ``mstyle``, ...) into
:class:`Tok` objects; this module pairs the fences into :class:`Group` objects and parses the
result by recursive descent, from the loosest binding to the tightest:

``,`` (tuple) > ``or``/``and`` (set of values) > relations (``= < ≤ …``, chains become ``And``) >
``∪ ∩`` > ``+ − ±`` > explicit ``× · / ÷`` > implicit product (adjacency, U+2062) > unary sign >
postfix (``! % °``) > ``^`` > primaries (numbers, identifiers, functions, fenced groups).

An implicit product binds tighter than an explicit division only when that cannot change the
value; ``a/bc`` is refused as ambiguous. ``±`` builds both values as a :class:`~sympy.FiniteSet`.

Imports: :mod:`~mathcore.symbolic.builders` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from mathcore.symbolic import builders
from mathcore.symbolic.builders import Unsupported

RELATIONS = {"=": sp.Eq, "<": sp.Lt, ">": sp.Gt, "<=": sp.Le, ">=": sp.Ge, "!=": sp.Ne}
ADDITIVE = ("+", "-", "±", "∓")
EXPLICIT_MUL = ("*", "/")
SET_OPS = ("∪", "∩", "∖")
CLOSING = {"(": ")", "[": "]", "{": "}", "|": "|", "⌈": "⌉", "⌊": "⌋", "⟨": "⟩", "‖": "‖"}
# Letters read as functions when a parenthesised argument follows: f(2) < f(1).
FUNCTION_LETTERS = frozenset("fgh")
# The one ± of a formula: a ± b is built as a + PM*b, then split into {a + b, a - b}.
PM = sp.Dummy("pm")


@dataclass
class Tok:
    """One flattened token of a row.

    ``kind`` is one of: ``num`` (value: exact number), ``atom`` (value: a SymPy object built
    from a sub-element), ``ident`` (value: Symbol from ``mi``), ``func`` (value: function
    name), ``op`` (value: normalised operator), ``open``/``close``/``bar`` (value: fence),
    ``text`` (value: words), ``space``.
    """

    kind: str
    value: Any = None
    text: str = ""
    frac: bool = False  # an <mfrac> of two integers: the 3/4 of a mixed number 2 3/4
    power: Any = None  # func: sin^2
    base: Any = None  # func: log_2


@dataclass
class Group:
    """A fenced part of a row: ``(a, b]``, ``{1, 2}``, ``|x|``."""

    open: str
    close: str
    items: list = field(default_factory=list)


def group(tokens: list[Tok]) -> list:
    """Pair the fences of *tokens* into nested :class:`Group` objects."""
    stack: list[tuple[str, list]] = [("", [])]
    for tok in tokens:
        if tok.kind == "bar":
            top_open, items = stack[-1]
            if top_open == tok.value and items and _ends_operand(items[-1]):
                stack.pop()
                stack[-1][1].append(Group(top_open, tok.value, items))
            else:
                stack.append((tok.value, []))
        elif tok.kind == "open":
            stack.append((tok.value, []))
        elif tok.kind == "close":
            if len(stack) == 1:
                raise Unsupported(f"unbalanced fence {tok.value!r}")
            open_, items = stack.pop()
            if open_ in ("|", "‖"):
                raise Unsupported("unbalanced absolute value bars")
            stack[-1][1].append(Group(open_, tok.value, items))
        else:
            stack[-1][1].append(tok)
    if len(stack) != 1:
        raise Unsupported(f"unclosed fence {stack[-1][0]!r}")
    return stack[0][1]


def _ends_operand(item) -> bool:
    if isinstance(item, Group):
        return True
    return item.kind in ("num", "atom", "ident") or (item.kind == "op" and item.value in "!%°")


def _is_op(item, *values: str) -> bool:
    return isinstance(item, Tok) and item.kind == "op" and (not values or item.value in values)


def _split(items: list, *ops: str, kind: str = "op") -> list[list]:
    parts: list[list] = [[]]
    for item in items:
        if isinstance(item, Tok) and item.kind == kind and item.value in ops:
            parts.append([])
        else:
            parts[-1].append(item)
    return parts


def parse_row(items: list) -> sp.Basic:
    """Parse a grouped row (top level: a comma makes a tuple)."""
    while items and _is_op(items[-1], ".", ","):  # sentence punctuation after an answer
        items = items[:-1]
    if not items:
        raise Unsupported("empty formula")
    if any(_is_op(i, ";") for i in items):
        raise Unsupported("semicolon-separated list")
    # "7, -2, and -5": the last comma's "and" only ends the list.
    items = [i for n, i in enumerate(items)
             if not (n and isinstance(i, Tok) and i.kind == "text" and i.value in ("and", "or")
                     and _is_op(items[n - 1], ","))]
    parts = _split(items, ",")
    if len(parts) > 1:
        if any(not p for p in parts):
            raise Unsupported("empty element in a list")
        return sp.Tuple(*_elements(parts))
    return _alternatives(items)


def _elements(parts: list[list]) -> list[sp.Basic]:
    """The values of a list; an element written with ± counts as its two values."""
    out: list[sp.Basic] = []
    for part in parts:
        value = _alternatives(part)
        if isinstance(value, sp.FiniteSet) and any(_is_op(i, "±", "∓") for i in part):
            out.extend(value.args)
        else:
            out.append(value)
    return out


def _alternatives(items: list) -> sp.Basic:
    parts = _split(items, "or", "and", kind="text")
    if len(parts) == 1:
        return _finish(_relation(items))
    if any(not p for p in parts):
        raise Unsupported("'or'/'and' without a value on each side")
    return sp.FiniteSet(*[_finish(_relation(p)) for p in parts])


def _finish(expr: sp.Basic) -> sp.Basic:
    """Resolve ±: one formula with ± is the set of its two values."""
    if isinstance(expr, sp.Basic) and expr.has(PM):
        return sp.FiniteSet(expr.xreplace({PM: sp.Integer(1)}), expr.xreplace({PM: sp.Integer(-1)}))
    return expr


def _relation(items: list) -> sp.Basic:
    if len(items) > 2 and isinstance(items[0], Tok) and items[0].kind == "ident" and _is_op(
        items[1], "∈"
    ):
        # "x ∈ [-2, 7]" answers with the set.
        value = _set_expr(items[2:])
        if not isinstance(value, sp.Set):
            raise Unsupported("membership in something that is not a set")
        return _as_interval(value)
    sides: list[list] = [[]]
    ops: list[str] = []
    for item in items:
        if _is_op(item, *RELATIONS):
            ops.append(item.value)
            sides.append([])
        else:
            sides[-1].append(item)
    if any(not s for s in sides):
        raise Unsupported("relation without a side")
    values = [_set_expr(s) for s in sides]
    if not ops:
        return values[0]
    for a in values:
        if not isinstance(a, sp.Expr):
            raise Unsupported(f"relation between non-expressions ({type(a).__name__})")
    pairs = zip(ops, values, values[1:], strict=False)
    rels = [RELATIONS[op](a, b, evaluate=False) for op, a, b in pairs]
    return rels[0] if len(rels) == 1 else sp.And(*rels, evaluate=False)


def _set_expr(items: list) -> sp.Basic:
    if not any(_is_op(i, *SET_OPS) for i in items):
        return _Parser(items).parse()
    operands: list[sp.Basic] = []
    ops: list[str] = []
    current: list = []
    for item in items:
        if _is_op(item, *SET_OPS):
            operands.append(_Parser(current).parse())
            ops.append(item.value)
            current = []
        else:
            current.append(item)
    operands.append(_Parser(current).parse())
    # Next to ∪ or ∩, a pair (a, b) can only be the open interval.
    operands = [_as_interval(o) for o in operands]
    for o in operands:
        if not isinstance(o, sp.Set):
            raise Unsupported("set operation on a value that is not a set")
    result = operands[0]
    for op, rhs in zip(ops, operands[1:], strict=True):
        if op == "∪":
            result = sp.Union(result, rhs)
        elif op == "∩":
            result = sp.Intersection(result, rhs)
        else:
            result = sp.Complement(result, rhs)
    return result


def _as_interval(value: sp.Basic) -> sp.Basic:
    if isinstance(value, sp.Tuple) and len(value) == 2:
        a, b = value
        if a.is_extended_real and b.is_extended_real and bool(a < b):
            return sp.Interval.open(a, b)
    return value


class _Parser:
    """Recursive descent over one relation side (no commas, relations or set operators)."""

    def __init__(self, items: list) -> None:
        self.items = items
        self.pos = 0

    def peek(self, offset: int = 0):
        i = self.pos + offset
        return self.items[i] if i < len(self.items) else None

    def take(self):
        item = self.items[self.pos]
        self.pos += 1
        return item

    def parse(self) -> sp.Basic:
        if not self.items:
            raise Unsupported("missing operand")
        expr = self.additive()
        if self.pos != len(self.items):
            raise Unsupported(f"unexpected {_describe(self.peek())}")
        return expr

    def additive(self) -> sp.Basic:
        expr = self.signed()
        while _is_op(self.peek(), *ADDITIVE):
            op = self.take().value
            rhs = self.signed()
            expr = _combine(op, expr, rhs)
        return expr

    def signed(self) -> sp.Basic:
        if _is_op(self.peek(), *ADDITIVE):
            op = self.take().value
            return _combine(op, None, self.signed())
        return self.multiplicative()

    def multiplicative(self) -> sp.Basic:
        expr, _ = self.implicit()
        while _is_op(self.peek(), *EXPLICIT_MUL):
            op = self.take().value
            if _is_op(self.peek(), "+", "-"):
                sign = self.take().value
                rhs, count = self.implicit()
                rhs = builders.negate(rhs) if sign == "-" else rhs
            else:
                rhs, count = self.implicit()
            if op == "/":
                if count > 1:
                    raise Unsupported("ambiguous division a/bc")
                expr = builders.divide(expr, rhs)
            else:
                expr = builders.times(expr, rhs)
        return expr

    def starts_factor(self) -> bool:
        item = self.peek()
        if item is None:
            return False
        if isinstance(item, Group):
            return True
        return item.kind in ("num", "atom", "ident", "func")

    def implicit(self) -> tuple[sp.Basic, int]:
        """A run of adjacent factors: ``2x``, ``2 sin x``, ``x(x+1)``; ``2 3/4`` is 11/4."""
        factors = [self.postfix()]
        while True:
            if _is_op(self.peek(), "⁢"):
                self.take()
                if not self.starts_factor():
                    raise Unsupported("invisible times without a right operand")
            elif _is_op(self.peek(), "⁤"):
                self.take()
                whole, frac = factors[-1], self.postfix()
                if not (whole[1] == "int" and frac[1] == "frac"):
                    raise Unsupported("invisible plus outside a mixed number")
                factors[-1] = (whole[0] + frac[0], "num")
                continue
            elif not self.starts_factor():
                break
            factors.append(self.postfix())
        if len(factors) >= 2 and factors[0][1] == "int" and factors[1][1] == "frac":
            # A mixed number: 2 3/4 is 2 + 3/4.
            if not 0 < factors[1][0] < 1:
                raise Unsupported("integer next to an improper fraction")
            factors[:2] = [(factors[0][0] + factors[1][0], "num")]
        for (_, a), (_, b) in zip(factors, factors[1:], strict=False):
            if b in ("int", "num"):
                # 2 3, or x 2 (28b3 is a base-14 numeral, not 28*b*3): no reading is safe.
                raise Unsupported("two numbers side by side" if a in ("int", "num", "frac")
                                  else "number written after another factor")
        if len(factors) == 1:
            return factors[0][0], 1
        return builders.times(*[f[0] for f in factors]), len(factors)

    def postfix(self) -> tuple[sp.Basic, str]:
        expr, kind = self.primary()
        while True:
            item = self.peek()
            if _is_op(item, "!"):
                self.take()
                expr, kind = builders.factorial(expr), "expr"
            elif _is_op(item, "%"):
                self.take()
                expr, kind = builders.times(expr, sp.Rational(1, 100)), "num"
            elif _is_op(item, "°"):
                self.take()
                expr, kind = builders.times(expr, sp.pi / 180), "expr"
            elif _is_op(item, "^"):
                self.take()
                if _is_op(self.peek(), "+", "-"):
                    sign = self.take().value
                    exp = self.postfix()[0]
                    exp = builders.negate(exp) if sign == "-" else exp
                else:
                    exp = self.postfix()[0]
                expr, kind = builders.power(expr, exp), "expr"
            elif _is_op(item, "′", "″"):
                raise Unsupported("prime notation")
            else:
                return expr, kind

    def primary(self) -> tuple[sp.Basic, str]:
        item = self.peek()
        if item is None:
            raise Unsupported("missing operand")
        if isinstance(item, Group):
            self.take()
            return _fenced(item), "expr"
        if item.kind == "num":
            self.take()
            return item.value, ("int" if item.value.is_Integer and item.text.isdigit() else "num")
        if item.kind == "atom":
            self.take()
            return item.value, ("frac" if item.frac else "expr")
        if item.kind == "ident":
            self.take()
            return self.identifier(item), "expr"
        if item.kind == "func":
            self.take()
            return self.application(item), "expr"
        raise Unsupported(f"unexpected {_describe(item)}")

    def identifier(self, tok: Tok) -> sp.Basic:
        """A symbol, or the application of a function letter: f(2), or f⁡(x) for any letter."""
        applied = _is_op(self.peek(), "⁡")
        if applied:
            self.take()
        nxt = self.peek()
        is_call = isinstance(nxt, Group) and nxt.open == "(" and nxt.close == ")"
        if is_call and (applied or tok.text in FUNCTION_LETTERS):
            self.take()
            args = [parse_row(p) for p in _split(nxt.items, ",")] if nxt.items else []
            return sp.Function(tok.text)(*args)
        if applied:
            raise Unsupported("function application without parenthesised argument")
        return tok.value

    def application(self, tok: Tok) -> sp.Basic:
        """``sin x``, ``sin(2x)``, ``sin 2x``, ``sin^2 x``, ``log_2 8``, ``max(a, b)``."""
        if _is_op(self.peek(), "⁡"):
            self.take()
        nxt = self.peek()
        if isinstance(nxt, Group) and nxt.open in "([" and nxt.close in ")]":
            self.take()
            args = [parse_row(p) for p in _split(nxt.items, ",")] if nxt.items else []
        else:
            factors = []
            while self.starts_factor() and not (
                isinstance(self.peek(), Tok) and self.peek().kind == "func"
            ):
                factors.append(self.postfix()[0])
                if _is_op(self.peek(), "⁢"):
                    self.take()
            if not factors:
                raise Unsupported(f"function {tok.value} without an argument")
            if sum(1 for f in factors if not f.is_number) > 1:
                # sin 2x and sin 2πx are sin(2x), sin(2πx); sin x y is sin(x)·y or sin(xy).
                raise Unsupported("ambiguous function argument")
            args = [builders.times(*factors)]
        name = tok.value
        if name == "log":
            if tok.base is None:
                raise Unsupported("log without a base (natural or base 10?)")
            if len(args) != 1:
                raise Unsupported("log takes one argument")
            value = builders.log(args[0], tok.base)
        else:
            value = builders.FUNCTIONS[name](*args)
        if tok.power is not None:
            value = builders.power(value, tok.power)
        return value


def _combine(op: str, left: sp.Basic | None, right: sp.Basic) -> sp.Basic:
    if op == "+":
        signed = right
    elif op == "-":
        signed = builders.negate(right)
    else:
        if right.has(PM) or (left is not None and left.has(PM)):
            raise Unsupported("more than one ± in a formula")
        signed = builders.times(PM if op == "±" else -PM, right)
    return signed if left is None else builders.plus(left, signed)


def _fenced(g: Group) -> sp.Basic:
    if g.open == "|" and g.close == "|":
        inner = parse_row(g.items) if g.items else None
        if isinstance(inner, sp.MatrixBase):
            if not inner.is_square or inner.rows > 6:
                raise Unsupported("bars around a matrix that is not small and square")
            return inner.det()  # |A| of a matrix is its determinant
        if not isinstance(inner, sp.Expr):
            raise Unsupported("|…| around something that is not an expression")
        return sp.Abs(inner)
    if g.open == "‖":
        raise Unsupported("norm")
    if g.open == "⌈" and g.close == "⌉":
        return sp.ceiling(_single(g))
    if g.open == "⌊" and g.close == "⌋":
        return sp.floor(_single(g))
    if not g.items:
        return sp.EmptySet if g.open == "{" else sp.Tuple()
    parts = _split(g.items, ",")
    if g.open == "{" and g.close == "}":
        if any(_is_op(i, "|", ":") for i in g.items) or any(
            isinstance(i, Tok) and i.kind == "bar" for i in g.items
        ):
            raise Unsupported("set-builder notation")
        return sp.FiniteSet(*_elements(parts))
    if g.open == "⟨":
        return sp.Tuple(*[_alternatives(p) for p in parts])
    if g.open not in "([" or g.close not in ")]":
        raise Unsupported(f"fence {g.open}…{g.close}")
    if len(parts) == 1:
        inner = parse_row(g.items)
        if isinstance(inner, sp.MatrixBase) or g.open + g.close == "()":
            return inner
        if isinstance(inner, sp.Expr):
            return inner  # [x + 1] used as brackets
        raise Unsupported("bracketed value that is not an expression")
    values = [_alternatives(p) for p in parts]
    if len(values) == 2 and _is_interval(g, values):
        return sp.Interval(values[0], values[1], g.open == "(", g.close == ")")
    if g.open + g.close in ("()", "[]"):
        return sp.Tuple(*values)
    raise Unsupported(f"mixed brackets {g.open}…{g.close} around {len(values)} values")


def _is_interval(g: Group, values: list) -> bool:
    """``(a, b]`` and ``[a, b)`` always; ``(a, b)`` only with an infinite end; ``[a, b]`` when
    ``a < b`` are real numbers. Anything else in brackets is an ordered pair."""
    a, b = values
    if not all(isinstance(v, sp.Expr) and v.is_number for v in values):
        return g.open != g.close and g.open + g.close not in ("()", "[]")
    if not (a.is_extended_real and b.is_extended_real):
        return False
    infinite = a.is_infinite or b.is_infinite
    if g.open + g.close == "()":
        return bool(infinite) and bool(a < b)
    return bool(a < b) or (g.open != g.close and bool(a <= b))


def _single(g: Group) -> sp.Expr:
    value = parse_row(g.items) if g.items else None
    if not isinstance(value, sp.Expr):
        raise Unsupported(f"{g.open}…{g.close} around something that is not an expression")
    return value


def _describe(item) -> str:
    if isinstance(item, Group):
        return f"group {item.open}…{item.close}"
    if item.kind == "text":
        return f"text {item.value!r}"
    return f"{item.kind} {item.value!r}"

"""Reading a word problem: its context sentences into an environment, and its final question.

mathematics_dataset questions are a chain of sentences: context (``Let x = 3 - 1.``, ``Let
f(t) = 2*t + 1.``, ``Let g(y) be the second derivative of y**4.``, ``Suppose 2*a = b, b = 4.``)
followed by the question itself (``Solve ... for a.``, ``Is x prime?``), sometimes with options
``(a) ...  (b) ...``. :func:`read_question` runs the context into an :class:`Env` (values of
letters, functions, equations not yet solved) and returns the final sentence for
:mod:`mathcore.symbolic.mathematics_dataset`. Formulas may also be inline MathML; each becomes
a value.

Everything here runs inside a worker process (:mod:`mathcore.symbolic.runtime`).

Imports: parsing only (:mod:`~mathcore.symbolic.ascii`, :mod:`~mathcore.symbolic.builders`,
:mod:`~mathcore.symbolic.convert`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy as sp
from sympy.core.function import AppliedUndef

from mathcore.mathml import MathMLError, split_math
from mathcore.symbolic.ascii import parse_ascii
from mathcore.symbolic.builders import Unsupported
from mathcore.symbolic.convert import to_sympy

ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
            "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "": 1, "square": 2, "cube": 3}
_LET_FUNCTION = re.compile(r"Let (\w)\((\w)\) = (.+)")
_LET_DERIVATIVE = re.compile(r"Let (\w)\((\w)\) be the (?:(\w+) )?derivative of (.+?)"
                             r"(?: wrt (\w))?")
_LET_VALUE = re.compile(r"Let (\w) (?:=|be) (.+)")
_SUPPOSE = re.compile(r"(?:Suppose|Let) (.+=.+)")
_OPTIONS = re.compile(r"\(([a-z])\)\s*(.*?)(?=\s+\([a-z]\)\s|$)")


@dataclass
class Env:
    """Values of letters, defined functions and unsolved equations of one question."""

    values: dict = field(default_factory=dict)
    functions: dict = field(default_factory=dict)
    pending: list = field(default_factory=list)
    slots: list = field(default_factory=list)

    def parse(self, text: str, keep: frozenset = frozenset()) -> sp.Basic:
        """Parse ASCII (with ``{{n}}`` MathML slots) and resolve letters and functions.

        Args:
            keep: letters not to replace by their values (a function's parameter).
        """
        result = parse_ascii(text.strip(), self.slots)
        if not result.ok:
            raise Unsupported(f"cannot read {text[:60]!r}: {result.reason}")
        return self.resolve(result.expr, keep)

    def resolve(self, expr: sp.Basic, keep: frozenset = frozenset()) -> sp.Basic:
        """Apply the defined functions, then substitute the known values (except *keep*)."""
        expr = self._apply(expr)
        values = {k: v for k, v in self.values.items() if k.name not in keep}
        for _ in range(8):
            new = expr.xreplace(values)
            if new == expr:
                break
            expr = new
        return expr

    def _apply(self, expr: sp.Basic) -> sp.Basic:
        if isinstance(expr, AppliedUndef):
            args = [self._apply(a) for a in expr.args]
            fn = self.functions.get(expr.func.__name__)
            if fn is None:
                raise Unsupported(f"function {expr.func.__name__} is not defined")
            if len(args) != 1:
                raise Unsupported("functions of several arguments")
            return fn(args[0])
        if not expr.args or isinstance(expr, (sp.Symbol, sp.Number)):
            return expr
        return expr.func(*[self._apply(a) for a in expr.args])

    def define_function(self, name: str, param: str, body: sp.Basic) -> None:
        self.functions[name] = sp.Lambda(sp.Symbol(param), body)

    def suppose(self, equations: list[sp.Basic]) -> None:
        """Add equations; bind their unknowns once the system has exactly one solution."""
        for eq in equations:
            if eq is sp.true:
                continue
            if eq is sp.false or not isinstance(eq, sp.Eq):
                raise Unsupported("a supposition that is not an equation")
            self.pending.append(eq)
        unknowns = sorted(set().union(*[e.free_symbols for e in self.pending]), key=str)
        if not unknowns:
            return
        solutions = sp.solve(self.pending, unknowns, dict=True)
        if len(solutions) == 1 and set(solutions[0]) == set(unknowns) and all(
            not v.free_symbols for v in solutions[0].values()
        ):
            self.values.update(solutions[0])
            self.pending = []

    def unknown_letters(self) -> set:
        return set().union(*[e.free_symbols for e in self.pending]) if self.pending else set()


@dataclass(frozen=True)
class Question:
    """The final sentence (no trailing ``.``/``?``), its options, and the environment."""

    sentence: str
    options: tuple
    env: Env


def _inline_math(text: str, env: Env) -> str:
    """Replace inline MathML by ASCII (letters, numbers) or by ``{{n}}`` slots."""
    if "<math" not in text and "<m:math" not in text and "<mml:math" not in text:
        return text
    out = []
    try:
        segments = list(split_math(text))
    except MathMLError as exc:
        raise Unsupported(f"question MathML: {exc}") from None
    for seg in segments:
        if not seg.is_math:
            out.append(seg.text)
            continue
        conv = to_sympy(seg.text)
        if not conv.ok:
            raise Unsupported(f"question formula: {conv.reason}")
        value = conv.expr
        if isinstance(value, sp.Symbol) and len(value.name) == 1:
            out.append(value.name)
        elif isinstance(value, sp.Integer):
            out.append(str(value))
        else:
            env.slots.append(value)
            out.append(f"{{{{{len(env.slots) - 1}}}}}")
    return "".join(out)


def split_sentences(text: str) -> tuple[list[str], tuple]:
    """Sentences (without final punctuation) and ``(label, text)`` options of a question."""
    text = " ".join(text.split())
    options: tuple = ()
    m = re.search(r"\?\s*\(a\)\s", text)
    if m:
        options = tuple((lab, val.strip()) for lab, val in _OPTIONS.findall(text[m.start() + 1:]))
        text = text[: m.start() + 1]
    parts = [p for p in re.split(r"(?<=[.?])\s+", text.strip()) if p]
    return [p[:-1] if p[-1] in ".?" else p for p in parts], options


def read_question(text: str) -> Question:
    """Run the context sentences of *text*; return the final question.

    Raises:
        Unsupported: when a context sentence is not understood.
    """
    env = Env()
    sentences, options = split_sentences(_inline_math(text, env))
    if not sentences:
        raise Unsupported("empty question")
    for sentence in sentences[:-1]:
        _context(sentence, env)
    return Question(sentences[-1], options, env)


def derivative(expr: sp.Basic, order: int, var: sp.Symbol | None) -> sp.Basic:
    """The *order*-th derivative; the variable may be left out when there is only one."""
    if var is None:
        symbols = expr.free_symbols
        if len(symbols) != 1:
            raise Unsupported("derivative without 'wrt' of an expression in several letters")
        var = next(iter(symbols))
    return sp.diff(expr, var, order)


def _context(sentence: str, env: Env) -> None:
    m = _LET_DERIVATIVE.fullmatch(sentence)
    if m:
        name, param, ordinal, body, wrt = m.groups()
        order = ORDINALS.get(ordinal or "")
        if order is None:
            raise Unsupported(f"derivative order {ordinal!r}")
        expr = env.parse(body, keep=frozenset({param}))
        x = sp.Symbol(wrt or param)
        if x not in expr.free_symbols and len(expr.free_symbols) == 1:
            x = next(iter(expr.free_symbols))
        env.define_function(name, param, sp.diff(expr, x, order).xreplace({x: sp.Symbol(param)}))
        return
    m = _LET_FUNCTION.fullmatch(sentence)
    if m:
        name, param, body = m.groups()
        env.define_function(name, param, env.parse(body, keep=frozenset({param})))
        return
    m = _LET_VALUE.fullmatch(sentence)
    if m:
        name, body = m.groups()
        d = re.fullmatch(r"the (?:(\w+) )?derivative of (.+?)(?: wrt (\w))?", body)
        if d:
            order = ORDINALS.get(d.group(1) or "")
            if order is None:
                raise Unsupported(f"derivative order {d.group(1)!r}")
            value = derivative(env.parse(d.group(2)), order,
                               sp.Symbol(d.group(3)) if d.group(3) else None)
        else:
            value = env.parse(body)
        if not isinstance(value, sp.Expr):
            raise Unsupported(f"value of {name} is not an expression")
        env.values[sp.Symbol(name)] = value
        return
    m = _SUPPOSE.fullmatch(sentence)
    if m:
        value = env.parse(m.group(1))
        env.suppose(list(value.args) if isinstance(value, sp.Tuple) else [value])
        return
    raise Unsupported(f"context sentence {sentence[:60]!r}")

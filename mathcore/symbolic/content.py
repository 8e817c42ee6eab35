"""Content MathML to SymPy.

Content markup says what it means (``<apply><plus/>…``), so there is no precedence to guess;
what is refused is what has no single value here: ``bind``/``lambda``, ``piecewise``,
derivatives and integrals (``diff``, ``int``), ``condition``, and any unknown operator.

``cn`` follows the MathML 3 types: ``integer`` (with ``base``), ``real``/``double``/``constant``
(decimals are exact, see :mod:`mathcore.symbolic.number_literals`), ``rational`` and ``e-notation``
(two parts around ``<sep/>``), ``complex-cartesian``. mathematics_dataset writes booleans as
``<cn>True</cn>``; they become ``sympy.true``/``sympy.false``. A ``log`` without ``logbase`` is
base 10, as the MathML specification says.

Imports: :mod:`~mathcore.symbolic.builders`, :mod:`~mathcore.symbolic.number_literals`.
"""

from __future__ import annotations

import sympy as sp
from lxml import etree

from mathcore.linear import to_linear
from mathcore.symbolic import builders
from mathcore.symbolic.builders import Unsupported
from mathcore.symbolic.number_literals import parse_in_base, parse_number

_QUALIFIERS = frozenset({"bvar", "lowlimit", "uplimit", "degree", "logbase", "condition",
                         "domainofapplication", "momentabout"})
_CONSTANTS = {"pi": sp.pi, "exponentiale": sp.E, "imaginaryi": sp.I, "infinity": sp.oo,
              "true": sp.true, "false": sp.false, "emptyset": sp.EmptySet,
              "eulergamma": sp.EulerGamma, "e": sp.E, "i": sp.I}
_RELATIONS = {"eq": sp.Eq, "neq": sp.Ne, "lt": sp.Lt, "gt": sp.Gt, "leq": sp.Le, "geq": sp.Ge}
_NAMED_FUNCTIONS = {"ceiling": "ceiling", "floor": "floor", "exp": "exp", "ln": "ln",
                    "abs": "abs", "max": "max", "min": "min", "gcd": "gcd", "lcm": "lcm"}


def convert_content(el: etree._Element) -> sp.Basic:
    """Convert a Content MathML element (``apply``, ``cn``, ``ci``, ``set``, ...).

    Raises:
        Unsupported: with the reason, when the element has no value SymPy can hold here.
    """
    tag = el.tag
    if tag == "cn":
        return _cn(el)
    if tag == "ci":
        return _ci(el)
    if tag == "csymbol":
        name = _text(el)
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        raise Unsupported(f"csymbol {name[:30]!r} outside an application")
    if tag in _CONSTANTS:
        return _CONSTANTS[tag]
    if tag == "apply":
        return _apply(el)
    if tag == "set":
        return sp.FiniteSet(*_values(el))
    if tag in ("list", "vector"):
        return sp.Tuple(*_values(el))
    if tag == "interval":
        return _interval(el)
    if tag == "matrix":
        rows = [_values(row) for row in _kids(el) if row.tag == "matrixrow"]
        if not rows or any(len(r) != len(rows[0]) for r in rows):
            raise Unsupported("matrix with ragged rows")
        return sp.ImmutableMatrix(rows)
    if tag == "semantics":
        kids = _kids(el)
        if not kids:
            raise Unsupported("empty semantics")
        return convert_content(kids[0])
    raise Unsupported(f"content element <{tag}>")


def _kids(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str)]


def _text(el: etree._Element) -> str:
    return "".join(el.itertext()).strip()


def _values(el: etree._Element) -> list[sp.Basic]:
    kids = _kids(el)
    if any(k.tag in _QUALIFIERS for k in kids):
        raise Unsupported(f"<{el.tag}> with a condition or bound variable")
    return [convert_content(k) for k in kids]


def _expr(el: etree._Element) -> sp.Expr:
    value = convert_content(el)
    if not isinstance(value, sp.Expr):
        raise Unsupported(f"operand is not an expression ({type(value).__name__})")
    return value


def _cn(el: etree._Element) -> sp.Basic:
    kind = el.get("type", "")
    parts = [(el.text or "").strip()]
    for child in el:
        if child.tag != "sep":
            raise Unsupported(f"<{child.tag}> inside cn")
        parts.append((child.tail or "").strip())
    if len(parts) == 2:
        a, b = parse_number(parts[0]), parse_number(parts[1])
        if a is None or b is None:
            raise Unsupported(f"cn parts {parts!r}")
        if kind == "rational":
            return builders.divide(a, b)
        if kind == "e-notation":
            if not b.is_Integer:
                raise Unsupported("e-notation with a non-integer exponent")
            return builders.times(a, builders.power(sp.Integer(10), b))
        if kind == "complex-cartesian":
            return a + b * sp.I
        raise Unsupported(f"cn of type {kind!r} with <sep/>")
    text = parts[0]
    if text in ("True", "False", "true", "false"):
        return sp.true if text.lower() == "true" else sp.false
    if text in _CONSTANTS and kind == "constant":
        return _CONSTANTS[text]
    base = el.get("base")
    if base is not None and base.strip() != "10":
        radix = int(base) if base.strip().isdigit() else 0
        sign = -1 if text.startswith("-") else 1
        value = parse_in_base(text.lstrip("+-"), radix)
        if value is None:
            raise Unsupported(f"cn {text[:30]!r} in base {base!r}")
        return sign * value
    value = parse_number(text)
    if value is None:
        raise Unsupported(f"cn {text[:30]!r}")
    return value


def _ci(el: etree._Element) -> sp.Basic:
    kids = _kids(el)
    name = to_linear(el).replace(" ", "") if kids else _text(el)
    if not name:
        raise Unsupported("empty ci")
    return sp.Symbol(name)


def _interval(el: etree._Element) -> sp.Basic:
    values = _values(el)
    if len(values) != 2:
        raise Unsupported("interval without two ends")
    closure = el.get("closure", "closed")
    if closure not in ("closed", "open", "open-closed", "closed-open"):
        raise Unsupported(f"interval closure {closure!r}")
    left_open = closure in ("open", "open-closed")
    right_open = closure in ("open", "closed-open")
    return sp.Interval(values[0], values[1], left_open, right_open)


def _head_name(head: etree._Element) -> str:
    if head.tag == "csymbol":
        return _text(head)
    return head.tag


def _apply(el: etree._Element) -> sp.Basic:
    kids = _kids(el)
    if not kids:
        raise Unsupported("empty apply")
    head, rest = kids[0], kids[1:]
    qualifiers = {q.tag: q for q in rest if q.tag in _QUALIFIERS}
    args = [a for a in rest if a.tag not in _QUALIFIERS]
    op = _head_name(head)
    if head.tag == "ci":
        return sp.Function(_text(head) or "f")(*[_expr(a) for a in args])
    if op in ("root", "log"):
        return _root_or_log(op, qualifiers, args)
    if qualifiers:
        raise Unsupported(f"{op} with qualifiers {sorted(qualifiers)}")
    if op in _RELATIONS:
        values = [_expr(a) for a in args]
        if len(values) < 2:
            raise Unsupported(f"{op} with fewer than two operands")
        pairs = zip(values, values[1:], strict=False)
        rels = [_RELATIONS[op](a, b, evaluate=False) for a, b in pairs]
        return rels[0] if len(rels) == 1 else sp.And(*rels, evaluate=False)
    if op in ("and", "or"):
        values = [convert_content(a) for a in args]
        return sp.And(*values) if op == "and" else sp.Or(*values)
    if op in ("union", "intersect", "setdiff"):
        return _set_op(op, [convert_content(a) for a in args])
    values = [_expr(a) for a in args]
    return _arith(op, values)


def _arith(op: str, values: list[sp.Expr]) -> sp.Expr:
    n = len(values)
    if op == "plus" and n >= 1:
        return builders.plus(*values)
    if op == "minus" and n == 1:
        return builders.negate(values[0])
    if op == "minus" and n == 2:
        return builders.plus(values[0], builders.negate(values[1]))
    if op == "times" and n >= 1:
        return builders.times(*values)
    if op == "divide" and n == 2:
        return builders.divide(*values)
    if op == "power" and n == 2:
        return builders.power(*values)
    if op == "factorial" and n == 1:
        return builders.factorial(values[0])
    if op == "rem" and n == 2:
        if values[1] == 0:
            raise Unsupported("division by zero")
        return sp.Mod(*values)
    if op == "quotient" and n == 2:
        return sp.floor(builders.divide(*values))
    if op == "conjugate" and n == 1:
        return sp.conjugate(values[0])
    if op == "real" and n == 1:
        return sp.re(values[0])
    if op == "imaginary" and n == 1:
        return sp.im(values[0])
    name = _NAMED_FUNCTIONS.get(op, op)
    if name in builders.FUNCTIONS:
        return builders.FUNCTIONS[name](*values)
    raise Unsupported(f"operator {op!r} with {n} operand(s)")


def _root_or_log(op: str, qualifiers: dict, args: list[etree._Element]) -> sp.Expr:
    extra = set(qualifiers) - {"degree" if op == "root" else "logbase"}
    if extra or len(args) != 1:
        raise Unsupported(f"{op} with {len(args)} operand(s) and qualifiers {sorted(qualifiers)}")
    value = _expr(args[0])
    if op == "root":
        q = qualifiers.get("degree")
        degree = _expr(_only_child(q)) if q is not None else sp.Integer(2)
        return sp.sqrt(value) if degree == 2 else builders.nth_root(value, degree)
    q = qualifiers.get("logbase")
    base = _expr(_only_child(q)) if q is not None else sp.Integer(10)
    return builders.log(value, base)


def _only_child(q: etree._Element) -> etree._Element:
    kids = _kids(q)
    if len(kids) != 1:
        raise Unsupported(f"<{q.tag}> without exactly one child")
    return kids[0]


def _set_op(op: str, values: list[sp.Basic]) -> sp.Set:
    if not values or not all(isinstance(v, sp.Set) for v in values):
        raise Unsupported(f"{op} of values that are not sets")
    if op == "union":
        return sp.Union(*values)
    if op == "intersect":
        return sp.Intersection(*values)
    if len(values) != 2:
        raise Unsupported("setdiff without two operands")
    return sp.Complement(*values)

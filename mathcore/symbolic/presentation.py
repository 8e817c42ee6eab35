"""Presentation MathML to SymPy.

A row (``mrow`` and the elements that only group or style: ``mstyle``, ``mpadded``,
``menclose``, ``math``) is flattened into tokens (:class:`~mathcore.symbolic.rowparser.Tok`);
layout elements (``mfrac``, ``msqrt``, ``msup``, ``mtable``, ...) become single tokens holding
their converted value; :mod:`mathcore.symbolic.rowparser` then applies operator precedence.

Readings that are conventions rather than certainties, chosen because the corpora use them:
``e``/``ⅇ`` is Euler's number and ``i``/``ⅈ`` the imaginary unit; ``x°`` (``msup`` with ``∘``
or ``°``) is ``x·π/180``; ``50%`` is 1/2; ``$`` and unit words (``dollars``, ``cm``) are
dropped; ``4210₅`` (an ``mn`` with a numeric subscript) is a number in base 5; a comma joins
digit groups only when the grouping is certain (``1,000`` in one ``mn``, LaTeX's ``4{,}000``
or ``4,\\!000``, or a group with a leading zero), otherwise it separates list items; ``f``,
``g``, ``h`` before parentheses are functions, other letters multiply; ``|A|`` of a matrix is
its determinant; a negative base to a power with odd denominator takes the real root
(``(−125)^{4/3}`` is 625).

Refused, with a reason: ``log`` without a base, ``a/bc`` (which division?), ``sin x y``,
a number written after a factor (``28b3`` is a base-14 numeral, not 84b), limits, sums,
integrals and accents (``munder``/``mover``), prime notation, set-builder notation.

Imports: :mod:`~mathcore.symbolic.builders`, :mod:`~mathcore.symbolic.number_literals`,
:mod:`~mathcore.symbolic.rowparser`.
"""

from __future__ import annotations

import re

import sympy as sp
from lxml import etree

from mathcore.linear import to_linear
from mathcore.symbolic import builders
from mathcore.symbolic.builders import Unsupported
from mathcore.symbolic.number_literals import parse_in_base, parse_integer, parse_number
from mathcore.symbolic.rowparser import Tok, group, parse_row

_ROWLIKE = frozenset({"math", "mrow", "mstyle", "mpadded", "mtd", "mark"})
_SKIPPED = frozenset({"mphantom", "annotation", "annotation-xml", "malignmark", "maligngroup",
                      "none", "mprescripts"})
_OPERATORS = {
    "-": "-", "\u2212": "-", "\u2013": "-", "\u2012": "-", "\ufe63": "-", "+": "+",
    "\u00d7": "*", "\u00b7": "*", "\u22c5": "*", "\u2217": "*", "*": "*", "\u2219": "*",
    "\u2062": "\u2062", "\u00f7": "/", "/": "/", "\u2215": "/", "\u2044": "/",
    "=": "=", "<": "<", ">": ">", "\u2264": "<=", "\u2265": ">=", "\u2a7d": "<=",
    "\u2a7e": ">=", "\u2266": "<=", "\u2267": ">=", "\u2260": "!=", "<=": "<=", ">=": ">=",
    "!=": "!=", "\u00b1": "\u00b1", "\u2213": "\u2213", ",": ",", "\u2063": ",", ";": ";",
    "!": "!", "%": "%", "\u00b0": "\u00b0", "\u2061": "\u2061", "\u2064": "\u2064",
    "\u222a": "\u222a", "\u2229": "\u2229", "\u2216": "\u2216", ".": ".", "^": "^",
    "\u2032": "\u2032", "\u2033": "\u2033", "'": "\u2032", ":": ":", "\u2236": ":",
    "\u2208": "\u2208",
}
_FENCES_OPEN = {"(": "(", "[": "[", "{": "{", "\u27e8": "\u27e8", "\u2329": "\u27e8",
                "\u2308": "\u2308", "\u230a": "\u230a"}
_FENCES_CLOSE = {")": ")", "]": "]", "}": "}", "\u27e9": "\u27e9", "\u232a": "\u27e9",
                 "\u2309": "\u2309", "\u230b": "\u230b"}
_BARS = {"|": "|", "\u2223": "|", "\u2016": "\u2016", "\u2225": "\u2016"}
_CONSTANTS = {"\u03c0": sp.pi, "\u03d6": sp.pi, "e": sp.E, "\u2147": sp.E, "i": sp.I,
              "\u2148": sp.I, "\u2149": sp.I, "\u221e": sp.oo, "\u2205": sp.EmptySet}
_CURRENCY = frozenset("$\u20ac\u00a3\u00a5\u00a2")
_DEGREE_SIGNS = frozenset({"\u2218", "\u00b0", "\u02da"})
_PRIMES = frozenset({"\u2032", "\u2033", "\u2034", "'", "''"})
# Words after a number that name its unit and can be dropped without changing the answer.
UNIT_WORDS = frozenset("""
dollar dollars cent cents cm mm m km in inch inches ft foot feet yd yard yards mi mile miles
meter meters metre metres centimeter centimeters kilometer kilometers g gm gram grams kg
kilogram kilograms lb lbs pound pounds oz ounce ounces l liter liters litre litres ml gallon
gallons second seconds sec s min minute minutes hour hours hr hrs day days week weeks month
months year years unit units square cubic sq mph ways way people persons students teachers
digits points meals multiples edges tickets children cups pages apples marbles
""".split())
_WORDS_OR = frozenset({"or", "and"})
_NUMERIC_RE = re.compile(r"[-+\u2212]?(?:\d[\d,]*\.?\d*|\.\d+)")
_COMMAS = (",", "{,}")
_DEGREE_WORDS = frozenset({"degree", "degrees", "deg"})


def convert_presentation(el: etree._Element) -> sp.Basic:
    """Convert a Presentation MathML element (usually ``math`` or ``mrow``).

    Raises:
        Unsupported: with the reason, when the element cannot be read with certainty.
    """
    tokens: list[Tok] = []
    _tokens(el, tokens)
    return parse_row(group(_tidy(tokens)))


def _tokens(el: etree._Element, out: list[Tok]) -> None:
    tag = el.tag
    if not isinstance(tag, str) or tag in _SKIPPED:
        return
    if tag == "mrow" and len(el) == 1 and el[0].tag == "mo" and _text(el[0]) == ",":
        # LaTeX's {,} -- a comma in braces -- is the thousands separator: 49{,}994.
        out.append(Tok("op", ",", "{,}"))
        return
    if tag in _ROWLIKE or (tag == "menclose" and "radical" not in el.get("notation", "")):
        for child in el:
            _tokens(child, out)
        return
    handler = _HANDLERS.get(tag)
    if handler is None:
        raise Unsupported(f"element <{tag}>")
    handler(el, out)


def _kids(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str) and c.tag not in _SKIPPED]


def _text(el: etree._Element) -> str:
    return "".join(el.itertext()).strip()


def _value(el: etree._Element) -> sp.Basic:
    return convert_presentation(el)


def _expr(el: etree._Element, what: str) -> sp.Expr:
    value = _value(el)
    if not isinstance(value, sp.Expr):
        raise Unsupported(f"{what} is not an expression")
    return value


def _mn(el: etree._Element, out: list[Tok]) -> None:
    text = _text(el)
    value = parse_number(text)
    if value is None:
        raise Unsupported(f"number {text[:40]!r}")
    out.append(Tok("num", value, text))


def _mi(el: etree._Element, out: list[Tok]) -> None:
    text = _text(el).replace("\u00a0", "")
    if not text:
        return
    if text in _CONSTANTS:
        out.append(Tok("atom", _CONSTANTS[text], text))
    elif text in builders.FUNCTIONS or text == "log":
        out.append(Tok("func", text, text))
    elif len(text) == 1 and text.isalpha():
        out.append(Tok("ident", sp.Symbol(text), text))
    elif text in _CURRENCY:
        return
    elif _NUMERIC_RE.fullmatch(text):
        _mn(el, out)
    else:
        _symbolic_char(text, out, "identifier")


def _symbolic_char(text: str, out: list[Tok], what: str) -> None:
    """An operator or fence character, wherever the producer put it (mi or mo)."""
    if text in _OPERATORS:
        out.append(Tok("op", _OPERATORS[text], text))
    elif text in _FENCES_OPEN:
        out.append(Tok("open", _FENCES_OPEN[text], text))
    elif text in _FENCES_CLOSE:
        out.append(Tok("close", _FENCES_CLOSE[text], text))
    elif text in _BARS:
        out.append(Tok("bar", _BARS[text], text))
    elif text in _CONSTANTS:
        out.append(Tok("atom", _CONSTANTS[text], text))
    elif text in _CURRENCY:
        return
    else:
        raise Unsupported(f"{what} {text[:20]!r}")


def _mo(el: etree._Element, out: list[Tok]) -> None:
    text = _text(el)
    if not text or text in ("\u200b", "\u2009", "\u00a0"):
        return
    if text in builders.FUNCTIONS or text == "log":
        out.append(Tok("func", text, text))
        return
    _symbolic_char(text, out, "operator")


def _mtext(el: etree._Element, out: list[Tok]) -> None:
    text = " ".join(_text(el).replace("\u00a0", " ").split())
    if not text:
        return
    low = text.lower().strip(".")
    if low in _WORDS_OR:
        out.append(Tok("text", low, text))
    elif _NUMERIC_RE.fullmatch(text):
        _mn(el, out)
    elif low in _DEGREE_WORDS:
        out.append(Tok("op", "\u00b0", text))
    elif text == low and all(w in UNIT_WORDS for w in low.split()):
        out.append(Tok("unit", low, text))
    else:
        out.append(Tok("text", text, text))


def _mspace(el: etree._Element, out: list[Tok]) -> None:
    out.append(Tok("space"))


def _atom(value: sp.Basic, out: list[Tok], frac: bool = False) -> None:
    out.append(Tok("atom", value, frac=frac))


def _mfrac(el: etree._Element, out: list[Tok]) -> None:
    kids = _kids(el)
    if len(kids) != 2:
        raise Unsupported("mfrac without two children")
    num, den = _expr(kids[0], "numerator"), _expr(kids[1], "denominator")
    if el.get("linethickness", "").strip() in ("0", "0pt", "0px", "0em", "0ex"):
        _atom(sp.binomial(num, den), out)
        return
    integers = num.is_Integer and den.is_Integer and num >= 0 and den > 0
    _atom(builders.divide(num, den), out, frac=bool(integers))


def _msqrt(el: etree._Element, out: list[Tok]) -> None:
    _atom(sp.sqrt(_row_expr(_kids(el))), out)


def _menclose(el: etree._Element, out: list[Tok]) -> None:
    # Only notation="radical" reaches here; other notations are transparent rows.
    _msqrt(el, out)


def _row_expr(kids: list[etree._Element]) -> sp.Expr:
    tokens: list[Tok] = []
    for k in kids:
        _tokens(k, tokens)
    value = parse_row(group(_tidy(tokens)))
    if not isinstance(value, sp.Expr):
        raise Unsupported("radicand is not an expression")
    return value


def _mroot(el: etree._Element, out: list[Tok]) -> None:
    kids = _kids(el)
    if len(kids) != 2:
        raise Unsupported("mroot without two children")
    _atom(builders.nth_root(_expr(kids[0], "radicand"), _expr(kids[1], "root index")), out)


def _function_name(el: etree._Element) -> str | None:
    if el.tag in ("mi", "mo") or (el.tag == "mrow" and len(_kids(el)) == 1):
        text = _text(el)
        if text in builders.FUNCTIONS or text == "log":
            return text
    return None


def _msup(el: etree._Element, out: list[Tok]) -> None:
    kids = _kids(el)
    if len(kids) != 2:
        raise Unsupported("msup without two children")
    base, sup = kids
    sup_text = _text(sup)
    if sup_text in _DEGREE_SIGNS:
        _tokens(base, out)
        out.append(Tok("op", "\u00b0", sup_text))
        return
    if sup_text in _PRIMES:
        raise Unsupported("prime notation")
    if _is_unit(base):  # 440 cm², a unit with a power
        return
    name = _function_name(base)
    if name is not None:
        power = _expr(sup, "exponent")
        if power == -1 and name in builders.INVERSES:
            out.append(Tok("func", builders.INVERSES[name], name))
        else:
            out.append(Tok("func", name, name, power=power))
        return
    if base.tag in ("mo", "mi") and _text(base) in (")", "]", "|", "}"):
        # The power of a whole fenced group, written on its closing fence.
        _tokens(base, out)
        out.append(Tok("op", "^", "^"))
        _atom(_expr(sup, "exponent"), out)
        return
    if base.tag == "mi" and _text(base) in ("e", "\u2147"):
        _atom(sp.exp(_expr(sup, "exponent")), out)
        return
    _atom(builders.power(_expr(base, "base"), _expr(sup, "exponent")), out)


def _is_unit(el: etree._Element) -> bool:
    """True for an ``mtext`` (possibly wrapped in rows or styles) that only names a unit."""
    if any(isinstance(d.tag, str) and d.tag not in _ROWLIKE | {"mtext"} for d in el.iter()):
        return False
    words = " ".join(el.itertext()).replace("\u00a0", " ").lower().split()
    return bool(words) and all(w in UNIT_WORDS for w in words)


def _subscript_name(base: etree._Element, sub: etree._Element) -> str:
    name = _text(base)
    if not (base.tag == "mi" and name and (len(name) == 1 and name.isalpha())):
        raise Unsupported("subscript on something other than a letter")
    sub_text = to_linear(sub).replace(" ", "")
    if not sub_text:
        raise Unsupported("empty subscript")
    return f"{name}_{sub_text}"


def _msub(el: etree._Element, out: list[Tok]) -> None:
    kids = _kids(el)
    if len(kids) != 2:
        raise Unsupported("msub without two children")
    base, sub = kids
    if _function_name(base) == "log":
        out.append(Tok("func", "log", "log", base=_expr(sub, "logarithm base")))
        return
    if base.tag == "mn":
        radix = parse_integer(_text(sub))
        value = parse_in_base(_text(base), radix) if radix is not None else None
        if value is None:
            raise Unsupported(f"number with subscript {_text(sub)!r}")
        out.append(Tok("num", value, str(value)))
        return
    out.append(Tok("ident", sp.Symbol(_subscript_name(base, sub)), "_"))


def _msubsup(el: etree._Element, out: list[Tok]) -> None:
    kids = _kids(el)
    if len(kids) != 3:
        raise Unsupported("msubsup without three children")
    base, sub, sup = kids
    if _function_name(base) == "log":
        out.append(Tok("func", "log", "log", base=_expr(sub, "logarithm base"),
                       power=_expr(sup, "exponent")))
        return
    symbol = sp.Symbol(_subscript_name(base, sub))
    if _text(sup) in _PRIMES:
        raise Unsupported("prime notation")
    _atom(builders.power(symbol, _expr(sup, "exponent")), out)


def _mfenced(el: etree._Element, out: list[Tok]) -> None:
    open_, close = el.get("open", "(").strip(), el.get("close", ")").strip()
    seps = "".join(el.get("separators", ",").split())
    if open_:
        _symbolic_char(open_, out, "fence")
    for i, child in enumerate(_kids(el)):
        if i and seps:
            _symbolic_char(seps[min(i - 1, len(seps) - 1)], out, "separator")
        _tokens(child, out)
    if close:
        _symbolic_char(close, out, "fence")


def _mtable(el: etree._Element, out: list[Tok]) -> None:
    rows = []
    for tr in _kids(el):
        if tr.tag != "mtr":
            raise Unsupported(f"<{tr.tag}> in a table")
        cells = []
        for td in _kids(tr):
            value = convert_presentation(td)
            if not isinstance(value, sp.Expr):
                raise Unsupported("table cell that is not an expression")
            cells.append(value)
        rows.append(cells)
    if not rows or not rows[0] or any(len(r) != len(rows[0]) for r in rows):
        raise Unsupported("table that is not a matrix")
    _atom(sp.ImmutableMatrix(rows), out)


def _semantics(el: etree._Element, out: list[Tok]) -> None:
    kids = _kids(el)
    if not kids:
        raise Unsupported("semantics without a presentation child")
    _tokens(kids[0], out)


def _maction(el: etree._Element, out: list[Tok]) -> None:
    kids = _kids(el)
    if kids:
        _tokens(kids[0], out)


def _refuse(what: str):
    def handler(el: etree._Element, out: list[Tok]) -> None:
        raise Unsupported(what)
    return handler


_HANDLERS = {
    "mn": _mn, "mi": _mi, "mo": _mo, "mtext": _mtext, "mspace": _mspace, "mfrac": _mfrac,
    "msqrt": _msqrt, "mroot": _mroot, "msup": _msup, "msub": _msub, "msubsup": _msubsup,
    "mfenced": _mfenced, "mtable": _mtable, "semantics": _semantics, "maction": _maction,
    "menclose": _menclose,
    "mover": _refuse("over-script (accent or limit)"),
    "munder": _refuse("under-script (limit or operator)"),
    "munderover": _refuse("large operator (sum, product, integral)"),
    "mmultiscripts": _refuse("multiscripts"), "merror": _refuse("error element"),
    "ms": _refuse("string literal"),
}


def _tidy(tokens: list[Tok]) -> list[Tok]:
    """Merge thousands groups (``4,\\!000``), drop units and spacing."""
    out: list[Tok] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind == "num" and tok.text.isdigit() and len(tok.text) <= 3 and not (
            out and out[-1].kind == "num"
        ):
            merged, j = tok.text, i + 1
            while j + 1 < len(tokens) and tokens[j].kind == "op" and tokens[j].text in _COMMAS:
                k, spaced = j + 1, False
                while k < len(tokens) and tokens[k].kind == "space":
                    k, spaced = k + 1, True
                nxt = tokens[k] if k < len(tokens) else None
                if not (nxt and nxt.kind == "num" and len(nxt.text) == 3 and nxt.text.isdigit()):
                    break
                if not (spaced or nxt.text.startswith("0") or tokens[j].text == "{,}"):
                    break
                merged, j = merged + nxt.text, k + 1
            if j > i + 1:
                out.append(Tok("num", sp.Integer(int(merged)), merged))
                i = j
                continue
        if tok.kind not in ("space", "unit"):
            out.append(tok)
        i += 1
    return out

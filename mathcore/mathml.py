"""Hardened MathML parsing.

Records carry text with inline ``<math>`` elements (or a lone ``<math>``).  This module finds
those elements, parses each one with lxml under strict rules and hands back a *normalised*
tree: tags are MathML local names without namespace (``mml:mi`` and ``{MathML}mi`` both become
``mi``), comments and processing instructions are gone, named entities are characters.  The
source string is never modified; every derived form is built from a copy.

What is refused, each with a :class:`MathMLError` that says why:

* a DOCTYPE or entity declaration anywhere (billion laughs, XXE, external DTDs), except the
  bare ``<!DOCTYPE html>`` that opens a web page: a whole document (:func:`parse_fragment`) may
  start with a DOCTYPE that has neither an internal subset (``[...]``) nor an external id
  (``SYSTEM``/``PUBLIC``), since such a DOCTYPE declares nothing and names no file;
* a named entity that is neither XML's five nor a MathML/HTML5 character name;
* malformed XML, a root that is not ``math`` in the MathML namespace (or in none);
* XInclude (``<xi:include>``) is never processed: lxml only expands it when asked to, and no
  code here asks.

A ``mml:`` or ``m:`` prefix left undeclared (a fragment cut from a document whose root declared
it) is read as MathML in whole documents as in text fields.  A ``<math>`` inside ``<mtext>``
(MathML 4 allows it) is part of the formula around it.
* a formula nested deeper than ``Limits.max_depth`` or longer than ``Limits.max_bytes``.

lxml runs with ``resolve_entities=False``, ``no_network=True``, ``load_dtd=False``, a resolver
that answers every external DTD or entity with nothing, and reads its input as UTF-8 whatever
the document declares, so even if a check above were bypassed the parser would neither read a
file nor open a connection.

Example:
    >>> parse_math('<math><mi>x</mi><mo>&InvisibleTimes;</mo><mi>y</mi></math>').tag
    'math'
"""

from __future__ import annotations

import html.entities
import re
from dataclasses import dataclass
from typing import Iterator, NamedTuple

from lxml import etree

from mathcore.options import option

MATHML_NS = "http://www.w3.org/1998/Math/MathML"

# The five entities XML defines itself; everything else needs a DTD, which we refuse.
_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
# MathML 3 names its characters with the same table as HTML5 (``&InvisibleTimes;``,
# ``&minus;``, ...), which the standard library already ships.
_NAMED = {k[:-1]: v for k, v in html.entities.html5.items() if k.endswith(";")}
_ENTITY_RE = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")
# Producers do emit a bare "&" (LaTeX alignment) or "<" (inside <mtext>): malformed XML that
# has one meaning, so those two characters are escaped rather than the formula refused.
_BARE_AMP_RE = re.compile(r"&(?!(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#x[0-9A-Fa-f]+);)")
_BARE_LT_RE = re.compile(r"<(?![A-Za-z_/!?])")
_DECLARATION_RE = re.compile(r"<!(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)
# An inline formula: <math ...>...</math>, with or without a namespace prefix.  A formula may
# hold another inside <mtext> (MathML 4), so end tags are matched by depth (_find_end).
_MATH_START_RE = re.compile(r"<(?:([A-Za-z_][\w.-]*):)?math(?=[\s/>])")

# lxml refuses documents nested deeper than this unless huge_tree is set.
_PARSER_MAX_DEPTH = 256
_PARSER = etree.XMLParser(
    # Text reaches lxml as UTF-8 (decoded and checked by us): a document's own encoding
    # declaration must not make lxml read it otherwise (UTF-7 would hide "<!DOCTYPE" from
    # _check_declarations).
    encoding="utf-8",
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
    collect_ids=False,
    recover=False,
)


class _NoExternal(etree.Resolver):
    """Answers every external DTD or entity lxml asks for with nothing: no file is opened.

    load_dtd=False alone still lets libxml2 read a parameter entity or an external subset
    given as a file path or ``file:`` URL.
    """

    def resolve(self, url, pubid, context):
        return self.resolve_string("", context)


_PARSER.resolvers.add(_NoExternal())


class MathMLError(ValueError):
    """A formula (or a record's MathML) that cannot be accepted; the message says why."""


_MAX_RECORD_MIB = 4


@dataclass(frozen=True)
class Limits:
    """Size limits applied to every record.

    Args:
        max_bytes: largest record accepted, in UTF-8 bytes, all fields together.
        max_depth: deepest element nesting accepted inside one formula.
    """

    max_bytes: int = option(_MAX_RECORD_MIB * 1024 * 1024, "refuse records larger than N bytes",
                            flag="--max-record-bytes", metavar="N",
                            default_text=f"{_MAX_RECORD_MIB} MiB")
    max_depth: int = option(128, "refuse formulas nested deeper than N elements", metavar="N")

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_depth <= 0:
            raise ValueError(f"limits must be positive, got {self}")


DEFAULT_LIMITS = Limits()


class Segment(NamedTuple):
    """A piece of a text field: plain text, or one formula with its source span."""

    text: str
    is_math: bool
    start: int
    end: int


def _substitute_entity(match: re.Match) -> str:
    name = match.group(1)
    if name in _XML_ENTITIES:
        return match.group(0)
    char = _NAMED.get(name)
    if char is None:
        raise MathMLError(f"undefined entity &{name}; (only MathML character names are allowed)")
    # Re-escape the characters that would change the XML's meaning.
    return {"&": "&amp;", "<": "&lt;", ">": "&gt;"}.get(char, char)


def _check_declarations(source: str) -> None:
    if "<!" in source and _DECLARATION_RE.search(source):
        raise MathMLError("DTD or entity declarations are not allowed")


# The one DOCTYPE a whole document may open with: a name and nothing else (``<!DOCTYPE html>``),
# after an optional XML declaration and comments.  With no internal subset it declares no entity;
# with no SYSTEM or PUBLIC id it names no file: there is nothing for a parser to read or expand.
_BARE_DOCTYPE_RE = re.compile(
    r"\A(\s*(?:<\?xml[^>]*\?>)?(?:\s*<!--.*?-->)*\s*)<!DOCTYPE\s+[A-Za-z_][\w.:-]*\s*>",
    re.IGNORECASE | re.DOTALL)


def _check_document_declarations(source: str) -> str:
    """Refuse declarations in a whole document; return it with a bare leading DOCTYPE blanked.

    The DOCTYPE is replaced by spaces of the same length (offsets stay valid), so that the
    rule of :func:`_check_declarations` (no declaration anywhere) applies to the rest unchanged.
    """
    match = _BARE_DOCTYPE_RE.match(source) if "<!" in source else None
    if match:
        blank = " " * (match.end() - match.end(1))
        source = source[:match.end(1)] + blank + source[match.end():]
    _check_declarations(source)
    return source


# An undeclared prefix on MathML elements of a whole document: bound to MathML on its root.
_ROOT_START_RE = re.compile(
    r"\A(\s*(?:<\?xml[^>]*\?>)?(?:\s*(?:<!--.*?-->|<\?.*?\?>))*\s*<[A-Za-z_][\w.:-]*)",
    re.DOTALL)


def _declare_mathml_prefixes(source: str) -> str:
    """Bind ``mml:``/``m:`` to MathML on the root element when the document leaves them free."""
    if ":" not in source:
        return source
    missing = [p for p in ("mml", "m")
               if f"<{p}:" in source and not re.search(rf"\sxmlns:{p}\s*=", source)]
    root = _ROOT_START_RE.match(source) if missing else None
    if root is None:
        return source
    decls = "".join(f' xmlns:{p}="{MATHML_NS}"' for p in missing)
    return source[:root.end()] + decls + source[root.end():]


def _repair(source: str) -> str:
    """Named entities to characters; a stray "&" or "<" escaped (see _BARE_AMP_RE)."""
    if "&" in source:
        source = _BARE_AMP_RE.sub("&amp;", source)
        source = _ENTITY_RE.sub(_substitute_entity, source)
    return _BARE_LT_RE.sub("&lt;", source)


def _normalise(root: etree._Element, max_depth: int) -> None:
    """Strip namespaces from MathML tags in place and enforce the depth limit."""
    stack = [(root, 1)]
    while stack:
        el, depth = stack.pop()
        if depth > max_depth:
            raise MathMLError(f"formula nested deeper than {max_depth} levels")
        tag = el.tag
        if isinstance(tag, str) and tag[0] == "{":
            ns, _, local = tag[1:].partition("}")
            if ns == MATHML_NS:
                el.tag = local
        if el.attrib:
            for key in [k for k in el.attrib if k[0] == "{"]:
                # alttext etc. never carry namespaces in MathML; xml:lang and friends may.
                el.attrib[key.rpartition("}")[2]] = el.attrib.pop(key)
        for child in el:
            stack.append((child, depth + 1))


def _parse(text: str, what: str) -> etree._Element:
    """lxml's parse of *text*; on failure, once more after :func:`_repair`."""
    try:
        return etree.fromstring(text.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError:
        pass
    # Only input that is not well-formed gets here, so the repairs cannot change the meaning
    # of a formula that parsed.
    try:
        return etree.fromstring(_repair(text).encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError as exc:
        if "Excessive depth" in str(exc):
            raise MathMLError(f"{what} nested deeper than {_PARSER_MAX_DEPTH} levels") from None
        raise MathMLError(f"malformed {what}: {_syntax_message(exc)}") from None


def parse_fragment(source: str, limits: Limits = DEFAULT_LIMITS) -> etree._Element:
    """Parse XML that may contain MathML, under the hardening rules; namespaces are kept.

    Used for whole files (records in XML).  A document may open with a bare ``<!DOCTYPE html>``
    (see the module docstring); an undeclared ``mml:``/``m:`` prefix is read as MathML.

    Raises:
        MathMLError: on declarations, unknown entities, malformed XML or the limits.
    """
    if len(source) > limits.max_bytes:
        raise MathMLError(f"larger than the limit of {limits.max_bytes} bytes")
    source = _check_document_declarations(source)
    return _parse(_declare_mathml_prefixes(source), "XML")


_ROOT_TAG_RE = re.compile(r"\s*<(?:([A-Za-z_][\w.-]*):)?math(?=[\s/>])([^>]*)>")
_XMLNS_RE = re.compile(r"""\sxmlns(?::([A-Za-z_][\w.-]*))?\s*=\s*(["'])(.*?)\2""")
_DEFAULT_DECL = f' xmlns="{MATHML_NS}"'
_PREFIXED_RE = re.compile(r"<(/?)(?:mml|m):")


def _unprefix(text: str, root_prefix: str | None = None) -> str:
    """Drop MathML namespace declarations and MathML prefixes, so lxml yields bare tags.

    Only prefixes bound to the MathML namespace (or ``mml``/``m``/the ``<math>`` element's own
    prefix left undeclared, as in a fragment cut from a document whose root declared it) are
    removed; other namespaces are left as they are.
    """
    text = text.replace(_DEFAULT_DECL, "")
    if "xmlns" not in text:
        if ":" in text and _PREFIXED_RE.search(text):
            text = _PREFIXED_RE.sub(r"<\1", text)
        if root_prefix and root_prefix not in ("mml", "m"):
            text = re.sub(rf"<(/?){re.escape(root_prefix)}:", r"<\1", text)
        return text
    prefixes = set()
    for m in _XMLNS_RE.finditer(text):
        if m.group(3) == MATHML_NS and m.group(1):
            prefixes.add(m.group(1))
    text = _XMLNS_RE.sub(lambda m: "" if m.group(3) == MATHML_NS else m.group(0), text)
    if ":" in text:
        for p in prefixes | {"mml", "m", root_prefix} - {None}:
            if f"<{p}:" in text or f"</{p}:" in text:
                text = re.sub(rf"<(/?){re.escape(p)}:", r"<\1", text)
    return text


def parse_math(source: str, limits: Limits = DEFAULT_LIMITS) -> etree._Element:
    """Parse one ``<math>`` element into a normalised tree (MathML tags as bare local names).

    Args:
        source: the element's text, e.g. ``'<math xmlns="..."><mi>x</mi></math>'``; a namespace
            prefix (``mml:math``) need not be declared.
        limits: size and depth limits.

    Returns:
        The ``math`` element.

    Raises:
        MathMLError: when the formula is refused (see the module docstring).
    """
    if len(source) > limits.max_bytes:
        raise MathMLError(f"formula larger than the limit of {limits.max_bytes} bytes")
    root_tag = _ROOT_TAG_RE.match(source)
    if root_tag is None:
        raise MathMLError("root element is not MathML <math>")
    prefix = root_tag.group(1)
    for m in _XMLNS_RE.finditer(root_tag.group(2)):
        if m.group(1) == prefix and m.group(3) != MATHML_NS:
            raise MathMLError(f"root element <math> is in namespace {m.group(3)!r}, not MathML")
    _check_declarations(source)
    text = _unprefix(source, prefix)
    root = _parse(text, "MathML")
    if root.tag != "math":
        raise MathMLError(f"root element is <{root.tag}>, not MathML <math>")
    # Depth can only exceed the limit when there are more elements than the limit.
    if text.count("<") > limits.max_depth:
        _normalise(root, limits.max_depth)
    return root


def normalise_math(root: etree._Element, limits: Limits = DEFAULT_LIMITS) -> etree._Element:
    """Check that *root*, taken from a parsed document, is MathML ``math``; normalise in place.

    Used for formulas found inside whole XML files, where namespaces were resolved by lxml.
    """
    qname = etree.QName(root)
    if qname.localname != "math" or qname.namespace not in (None, MATHML_NS):
        raise MathMLError(f"root element is <{root.tag}>, not MathML <math>")
    _normalise(root, limits.max_depth)
    return root


def _syntax_message(exc: etree.XMLSyntaxError) -> str:
    # lxml's messages carry the wrapper's column; the message itself is what helps.
    msg = str(exc.msg if hasattr(exc, "msg") and exc.msg else exc)
    return re.sub(r", line \d+, column \d+$", "", msg)


def _find_end(text: str, prefix: str | None, start: int) -> int:
    """Index just past the ``</math>`` (with *prefix*) that closes a formula opened at *start*."""
    # A self-closing <math/> ends at its own tag.
    tag_end = text.find(">", start)
    if tag_end < 0:
        return -1
    if text[tag_end - 1] == "/":
        return tag_end + 1
    # MathML 4 allows <math> inside <mtext>: count the formulas opened before each end tag.
    # Comments and CDATA sections may mention <math>: they are stepped over.
    name = f"{prefix}:math" if prefix else "math"
    tag_re = re.compile(rf"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<(/?){re.escape(name)}(?=[\s/>])",
                        re.DOTALL)
    depth, pos = 1, tag_end + 1
    for m in tag_re.finditer(text, pos):
        if m.group(1) is None:
            continue
        end = text.find(">", m.end())
        if end < 0:
            return -1
        if m.group(1):
            if text[m.end():end].strip() == "":
                depth -= 1
                if depth == 0:
                    return end + 1
        elif text[end - 1] != "/":
            depth += 1
    return -1


def split_math(text: str) -> Iterator[Segment]:
    """Split a text field into plain-text and formula segments, in order.

    Raises:
        MathMLError: when a ``<math>`` start tag has no matching end tag, or the text holds a
            DTD or entity declaration (refused anywhere, not only inside a formula).
    """
    _check_declarations(text)
    pos = 0
    search = _MATH_START_RE.search
    while True:
        # Search from the end of the previous formula: its inside is never scanned again.
        match = search(text, pos) if "<" in text else None
        if match is None:
            break
        start = match.start()
        end = _find_end(text, match.group(1), start)
        if end < 0:
            raise MathMLError(f"<math> at character {start} has no closing </math>")
        if start > pos:
            yield Segment(text[pos:start], False, pos, start)
        yield Segment(text[start:end], True, start, end)
        pos = end
    if pos < len(text):
        yield Segment(text[pos:], False, pos, len(text))


def iter_formulas(text: str, limits: Limits = DEFAULT_LIMITS) -> Iterator[etree._Element]:
    """Parse every formula of a text field, in order (for the symbolic stage)."""
    for seg in split_math(text):
        if seg.is_math:
            yield parse_math(seg.text, limits)

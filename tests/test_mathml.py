"""Hardened MathML parsing (mathcore.mathml): real producers' variants in, hostile input refused.

The variants are real output of latex2mathml (the dev corpus), LaTeXML (ARQMath, NTCIR), MathJax,
XSLT-style ``mml:`` markup, un-namespaced HTML, Content MathML and deprecated ``<mfenced>``
(``tests/data/variants.jsonl``, ``corpus_sample.jsonl``, ``mse_sample.jsonl``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from lxml import etree

from mathcore import mathml
from mathcore.mathml import (
    MATHML_NS,
    Limits,
    MathMLError,
    iter_formulas,
    normalise_math,
    parse_fragment,
    parse_math,
    split_math,
)

M = f'<math xmlns="{MATHML_NS}">%s</math>'
DATA = Path(__file__).resolve().parent / "data"


def _records(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _all_tags(root: etree._Element) -> set[str]:
    return {el.tag for el in root.iter() if isinstance(el.tag, str)}


def _texts(root: etree._Element, tag: str) -> list[str]:
    return [el.text or "" for el in root.iter(tag)]


# --- real producers ------------------------------------------------------------------------

REAL = [r for name in ("variants.jsonl", "corpus_sample.jsonl", "mse_sample.jsonl")
        for r in _records(name)]


@pytest.mark.parametrize("rec", REAL, ids=[r["id"] for r in REAL])
def test_every_formula_of_real_producers_parses_to_bare_mathml(rec):
    formulas = [f for field in ("question", "answer", "final")
                for f in iter_formulas(rec.get(field) or "")]
    assert formulas, "each fixture record holds at least one formula"
    for root in formulas:
        assert root.tag == "math"
        tags = _all_tags(root)
        # Namespaces and prefixes are gone: every tag is a bare MathML local name.
        assert not [t for t in tags if "{" in t or ":" in t]


def test_latexml_semantics_keeps_presentation_content_and_tex():
    rec = next(r for r in REAL if r["id"] == "variant-latexml-ntcir")
    (root,) = iter_formulas(rec["answer"])
    semantics = root.find("semantics")
    assert [c.tag for c in semantics] == ["msup", "annotation-xml", "annotation"]
    assert semantics[1].get("encoding") == "MathML-Content"
    assert semantics[1].find("apply/csymbol").text == "superscript"
    assert semantics[2].text.strip() == "10^{2^{n+2}}"


def test_mathjax_attributes_are_kept():
    rec = next(r for r in REAL if r["id"] == "variant-mathjax-sum")
    (root,) = iter_formulas(rec["answer"])
    assert root.find("munderover/mo").get("data-mjx-texclass") == "OP"
    assert root.find("munderover/mo").text == "\u2211"


@pytest.mark.parametrize("source", [
    f'<mml:math xmlns:mml="{MATHML_NS}"><mml:mi>x</mml:mi><mml:mo>+</mml:mo></mml:math>',
    '<mml:math><mml:mi>x</mml:mi><mml:mo>+</mml:mo></mml:math>',  # prefix left undeclared
    '<m:math display="block"><m:mi>x</m:mi><m:mo>+</m:mo></m:math>',
    f'<foo:math xmlns:foo="{MATHML_NS}"><foo:mi>x</foo:mi><foo:mo>+</foo:mo></foo:math>',
    # A prefix declared on the document root, which a section cut from the file leaves behind.
    '<mathml:math><mathml:mi>x</mathml:mi><mathml:mo>+</mathml:mo></mathml:math>',
    '<math><mi>x</mi><mo>+</mo></math>',
    M % "<mi>x</mi><mo>+</mo>",
    f"<math xmlns='{MATHML_NS}' display='inline'><mi>x</mi><mo>+</mo></math>",
])
def test_prefixes_and_namespaces_normalise_to_the_same_tree(source):
    root = parse_math(source)
    assert [(c.tag, c.text) for c in root] == [("mi", "x"), ("mo", "+")]


def test_foreign_elements_inside_math_keep_their_namespace():
    root = parse_math(M % '<mtext><b xmlns="http://www.w3.org/1999/xhtml">bold</b></mtext>')
    assert root.find("mtext")[0].tag == "{http://www.w3.org/1999/xhtml}b"


def test_named_entities_become_characters():
    root = parse_math(M % "<mi>x</mi><mo>&PlusMinus;</mo><mn>2</mn><mo>&InvisibleTimes;</mo>"
                          "<mi>y</mi><mo>&minus;</mo><mi>sin</mi><mo>&ApplyFunction;</mo>"
                          "<mi>&theta;</mi><mo>&le;</mo><mi>&infin;</mi><mo>&lt;</mo>"
                          "<mtext>&amp;&nbsp;</mtext>")
    assert _texts(root, "mo") == ["\u00b1", "\u2062", "\u2212", "\u2061", "\u2264", "<"]
    assert _texts(root, "mi") == ["x", "y", "sin", "\u03b8", "\u221e"]
    assert _texts(root, "mtext") == ["&\u00a0"]


def test_character_references_need_no_repair():
    root = parse_math(M % "<mo>&#x02212;</mo><mo>&#8722;</mo><mi>&#38;</mi>")
    assert _texts(root, "mo") == ["\u2212", "\u2212"]
    assert _texts(root, "mi") == ["&"]


def test_an_entity_for_a_markup_character_stays_text():
    # &LT; is the HTML5 name of "<": mapped, it must not open a tag.
    root = parse_math(M % "<mi>&</mi><mo>&LT;</mo><mo>&GT;</mo>")
    assert _texts(root, "mo") == ["<", ">"]


def test_unknown_entity_is_refused_with_its_name():
    with pytest.raises(MathMLError, match=r"undefined entity &nosuch;"):
        parse_math(M % "<mi>&nosuch;</mi>")


def test_latex2mathml_bare_ampersand_in_mi_is_accepted():
    # math-test-00447: latex2mathml writes the alignment "&" of an align environment raw.
    rec = next(r for r in REAL if r["id"] == "math-test-00447")
    raw = [seg.text for seg in split_math(rec["answer"]) if seg.is_math]
    assert any("<mi>&</mi>" in s for s in raw)
    # The display formula's two aligned lines hold five of them; all parse.
    ampersands = [_texts(parse_math(s), "mi").count("&") for s in raw]
    assert ampersands == [0, 5, 0]


def test_latex2mathml_bare_less_than_in_mtext_is_accepted():
    # math-test-02616: "\text{if $0 \le x < 2$}" leaves a raw "<" inside <mtext>.
    rec = next(r for r in REAL if r["id"] == "math-test-02616")
    raw = next(seg.text for seg in split_math(rec["question"])
               if seg.is_math and "&#x000A0;<&#x000A0;" in seg.text)
    texts = _texts(parse_math(raw), "mtext")
    assert "if\u00a0$0\u00a0\\le\u00a0x\u00a0<\u00a02$" in texts


def test_well_formed_formula_is_not_repaired():
    # Only input that fails to parse is repaired: escaped text keeps its meaning.
    root = parse_math(M % "<mtext>a &amp;lt; b</mtext>")
    assert _texts(root, "mtext") == ["a &lt; b"]


def test_comments_and_processing_instructions_are_dropped():
    root = parse_math(M % "<!-- note --><mi>x</mi><?pi data?><mn>1</mn>")
    assert [c.tag for c in root] == ["mi", "mn"]


def test_cdata_is_text():
    root = parse_math(M % "<mtext><![CDATA[x < y & z]]></mtext>")
    assert _texts(root, "mtext") == ["x < y & z"]


# --- refused input -------------------------------------------------------------------------

@pytest.mark.parametrize("source, reason", [
    (M % '<!DOCTYPE m [<!ENTITY a "aa"><!ENTITY b "&a;&a;">]><mi>&b;</mi>', "DTD or entity"),
    ('<!DOCTYPE math [<!ENTITY x SYSTEM "file:///etc/passwd">]><math><mi>&x;</mi></math>',
     "root element is not MathML"),
    (M % '<!ENTITY x SYSTEM "http://127.0.0.1:9/x"><mi>&x;</mi>', "DTD or entity"),
    (M % "<!doctype html><mi>x</mi>", "DTD or entity"),
    (M % "<!ELEMENT mi ANY><mi>x</mi>", "DTD or entity"),
    (M % "<!ATTLIST mi a CDATA #IMPLIED><mi>x</mi>", "DTD or entity"),
    (M % "<mi>&x;</mi>", r"undefined entity &x;"),
    ('<math xmlns="http://example.com/other"><mi>x</mi></math>',
     "in namespace 'http://example.com/other', not MathML"),
    ('<mml:math xmlns:mml="http://example.com/other"><mml:mi>x</mml:mi></mml:math>',
     "not MathML"),
    ('<svg xmlns="http://www.w3.org/2000/svg"><text>x</text></svg>', "root element is not"),
    ("<mathx><mi>x</mi></mathx>", "root element is not"),
    (M % "<mi>x</mo>", "malformed MathML: Opening and ending tag mismatch"),
    (M % "<mi>x</mi", "malformed MathML"),
    (M % "<mi>x</mi></math><math>", "malformed MathML"),
    ("<math><mi>\x00</mi></math>", "malformed MathML"),
])
def test_refused_with_reason(source, reason):
    with pytest.raises(MathMLError, match=reason):
        parse_math(source)


def test_depth_limit_is_exact():
    def nested(levels: int) -> str:  # math + (levels - 2) mrows + mi = `levels` elements deep
        return "<math>" + "<mrow>" * (levels - 2) + "<mi>x</mi>" + "</mrow>" * (levels - 2) + \
            "</math>"

    limits = Limits(max_depth=10)
    assert parse_math(nested(10), limits).tag == "math"
    with pytest.raises(MathMLError, match="nested deeper than 10 levels"):
        parse_math(nested(11), limits)
    with pytest.raises(MathMLError, match="nested deeper than 128 levels"):
        parse_math(nested(200))


def test_hundred_thousand_deep_nesting_is_refused_without_recursion():
    source = "<math>" + "<mrow>" * 100_000 + "<mi>x</mi>" + "</mrow>" * 100_000 + "</math>"
    with pytest.raises(MathMLError, match="nested deeper than"):
        parse_math(source)
    with pytest.raises(MathMLError, match="nested deeper than"):
        parse_fragment(f"<record><answer>{source}</answer></record>")


def test_size_limit():
    source = M % ("<mn>1</mn>" * 20)
    assert parse_math(source, Limits(max_bytes=len(source))).tag == "math"
    with pytest.raises(MathMLError, match="larger than the limit of 100 bytes"):
        parse_math(source, Limits(max_bytes=100))


@pytest.mark.parametrize("kwargs", [{"max_bytes": 0}, {"max_depth": 0}, {"max_depth": -1}])
def test_limits_must_be_positive(kwargs):
    with pytest.raises(ValueError, match="limits must be positive"):
        Limits(**kwargs)


@pytest.mark.parametrize("doctype", [
    '<!DOCTYPE m [<!ENTITY x SYSTEM "{uri}">]>',
    '<!DOCTYPE m [<!ENTITY % p SYSTEM "{uri}"> %p;]>',
    '<!DOCTYPE m SYSTEM "{uri}">',
    '<!DOCTYPE m SYSTEM "{path}">',
], ids=["entity", "parameter entity", "external subset", "external subset path"])
def test_parser_never_reads_a_file_even_past_the_checks(tmp_path, doctype):
    # Defence in depth: lxml itself, handed a declaration, neither expands an external entity
    # nor opens the file (seen in its access time, set far in the past: a read would move it).
    secret = tmp_path / "secret.txt"
    secret.write_text('<!ENTITY leak "MARKER-9d1c2">', encoding="utf-8")
    os.utime(secret, (1, secret.stat().st_mtime))
    secret.read_bytes()
    reads_seen = secret.stat().st_atime != 1  # not on a file system mounted noatime
    os.utime(secret, (1, secret.stat().st_mtime))
    doc = doctype.format(uri=secret.as_uri(), path=secret) + "<m>&x;</m>"
    root = etree.fromstring(doc.encode(), mathml._PARSER)
    assert b"MARKER" not in etree.tostring(root)
    assert not reads_seen or secret.stat().st_atime == 1


def test_declared_encoding_cannot_smuggle_a_doctype(tmp_path):
    # In UTF-7, "+ADw-+ACE-DOCTYPE" is "<!DOCTYPE": the text check would not see it, so the
    # parser must read the bytes as the UTF-8 they are, whatever the declaration says.
    decl = '<!DOCTYPE record [<!ENTITY x SYSTEM "file:///dev/null">]>'
    text = ('<?xml version="1.0" encoding="UTF-7"?>'
            + decl.replace("<", "+ADw-").replace("!", "+ACE-")
            + "<record><answer>x</answer></record>")
    with pytest.raises(MathMLError, match="malformed XML"):
        parse_fragment(text)


def test_declared_latin1_is_read_as_the_utf8_it_is():
    root = parse_fragment('<?xml version="1.0" encoding="ISO-8859-1"?><record>é</record>')
    assert root.text == "é"


# --- splitting text fields -----------------------------------------------------------------

def test_split_math_segments_cover_the_text_exactly():
    text = ('Let <math><mi>x</mi></math> and <mml:math><mml:mn>2</mml:mn></mml:math >'
            "<math/> end")
    segs = list(split_math(text))
    assert [(s.is_math, s.text) for s in segs] == [
        (False, "Let "),
        (True, "<math><mi>x</mi></math>"),
        (False, " and "),
        (True, "<mml:math><mml:mn>2</mml:mn></mml:math >"),
        (True, "<math/>"),
        (False, " end"),
    ]
    assert "".join(s.text for s in segs) == text
    assert all(text[s.start:s.end] == s.text for s in segs)


def test_split_math_of_plain_text():
    assert [(s.text, s.is_math) for s in split_math("no math, x < 3 & y")] == [
        ("no math, x < 3 & y", False)]
    assert list(split_math("")) == []


def test_split_math_ignores_lookalike_tags():
    segs = list(split_math("<mathematics> is not <math><mi>x</mi></math>"))
    assert [s.is_math for s in segs] == [False, True]


def test_unclosed_math_is_refused_with_its_position():
    with pytest.raises(MathMLError, match=r"<math> at character 6 has no closing </math>"):
        list(split_math("Solve <math><mi>x</mi>"))
    with pytest.raises(MathMLError, match="no closing"):
        list(split_math("<mml:math><mml:mi>x</mml:mi></math>"))


@pytest.mark.parametrize("text", [
    '<!DOCTYPE math SYSTEM "http://127.0.0.1:9/mathml.dtd"><math><mi>x</mi></math>',
    '<!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]> text <math><mi>x</mi></math>',
    'plain text <!ENTITY a "b"> only',
])
def test_declarations_are_refused_anywhere_in_a_text_field(text):
    with pytest.raises(MathMLError, match="DTD or entity declarations are not allowed"):
        list(split_math(text))


def test_iter_formulas_parses_in_order():
    formulas = list(iter_formulas("a <math><mn>1</mn></math> b <math><mn>2</mn></math>"))
    assert [f.find("mn").text for f in formulas] == ["1", "2"]


# --- whole documents -----------------------------------------------------------------------

def test_parse_fragment_keeps_namespaces_and_normalise_math_strips_them():
    root = parse_fragment(f'<record xmlns:m="{MATHML_NS}"><answer><m:math><m:mi>x</m:mi>'
                          "</m:math></answer></record>")
    math_el = root.find(f"answer/{{{MATHML_NS}}}math")
    assert math_el is not None
    normalise_math(math_el)
    assert [c.tag for c in math_el.iter()] == ["math", "mi"]


def test_normalise_math_refuses_other_roots():
    root = parse_fragment('<math xmlns="http://example.com/other"><mi>x</mi></math>')
    with pytest.raises(MathMLError, match="not MathML"):
        normalise_math(root)


def test_parse_fragment_refuses_declarations_and_size():
    with pytest.raises(MathMLError, match="DTD or entity"):
        parse_fragment('<!DOCTYPE r SYSTEM "r.dtd"><r/>')
    with pytest.raises(MathMLError, match="larger than the limit of 10 bytes"):
        parse_fragment("<record>0123456789</record>", Limits(max_bytes=10))

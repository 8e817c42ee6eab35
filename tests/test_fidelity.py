"""MathML fidelity: MathML written by other producers reads as the formula it encodes.

``tests/data/fidelity/*.jsonl`` holds snippets from public producers (the MathML 4
specification's Content and Presentation examples, MathJax's test suite, LaTeXML's test
outputs and forum posts, latex2mathml's MATH answers, MDN's MathML reference), one JSON object a
line: ``id``, ``producer``, ``source`` (where the snippet was copied from), ``licence``,
``mathml`` (a whole ``<math>`` element) and ``expected``, the linear text a careful reader would
write for the formula in the conventions of :mod:`mathcore.linear`.

A snippet is *faithful* when ``to_linear(parse_math(mathml))``, with each run of white space
made one space and the ends stripped, equals ``expected`` exactly.  Every snippet must be
faithful: a change that garbles a formula fails here.  ``python -m benchmarks.fidelity`` prints
the same figures per producer, for this code and for an older copy.

Below the suite: valid input that other producers write (a web page that opens with
``<!DOCTYPE html>``, an undeclared ``mml:`` prefix in a file, ``<math>`` inside ``<mtext>``) is
accepted, and hostile input (entity declarations, external DTDs, XInclude) is still refused.
These last cases were written for the tests.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mathcore import Record, derive
from mathcore.linear import to_linear
from mathcore.loaders import read_mathml_file
from mathcore.mathml import MATHML_NS, MathMLError, parse_fragment, parse_math, split_math

SUITE = Path(__file__).resolve().parent / "data" / "fidelity"
SNIPPETS = [json.loads(line) for path in sorted(SUITE.glob("*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
_WS = re.compile(r"\s+")


def _normal(text: str) -> str:
    return _WS.sub(" ", text).strip()


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s["id"] for s in SNIPPETS])
def test_snippet_is_faithful(snippet):
    assert _normal(to_linear(parse_math(snippet["mathml"]))) == _normal(snippet["expected"])


def test_suite_covers_five_producers_with_sources_and_licences():
    assert len(SNIPPETS) >= 150
    assert len({s["id"] for s in SNIPPETS}) == len(SNIPPETS)
    assert len({s["producer"] for s in SNIPPETS}) >= 5
    assert all(s["source"] and s["licence"] and s["expected"] for s in SNIPPETS)


# --- the notations the issue names, one each --------------------------------------------------

def lin(body: str) -> str:
    return to_linear(parse_math(f'<math xmlns="{MATHML_NS}">{body}</math>'))


@pytest.mark.parametrize("body, expected", [
    ("<mfrac><mn>1</mn><mi>N</mi></mfrac><mi>x</mi>", "1/N x"),
    ("<msub><mi>w</mi><mn>1</mn></msub><msub><mi>x</mi><mn>1</mn></msub>", "w_1 x_1"),
    ("<msqrt><mn>2</mn></msqrt><mi>x</mi>", "sqrt(2) x"),
    ("<msub><mi>P</mi><msub><mi>C</mi><mn>12</mn></msub></msub>", "P_(C_12)"),
    ("<mover><munder><mo>&#x2211;</mo><mi>i</mi></munder><mi>n</mi></mover><mi>a</mi>",
     "sum_i^n a"),
    ("<msub><mo>&#x2211;</mo><mi>&#x3c3;</mi></msub><mi>a</mi>", "sum_\u03c3 a"),
    ("<munder><mo>&#x2211;</mo><mi>&#x3c3;</mi></munder><mi>a</mi>", "sum_\u03c3 a"),
    ("<mover><mn>4</mn><mo>&#x21C0;</mo></mover>", "vec(4)"),
    ('<mi><mglyph src="f.png" alt="frown"/></mi><mo>+</mo><mn>1</mn>', "frown + 1"),
    ('<menclose notation="phasorangle"><mi>x</mi><mo>-</mo><mn>1</mn></menclose>',
     "phasorangle(x - 1)"),
    ("<mtext>if <math><mi>n</mi></math> is prime</mtext>", "if n is prime"),
])
def test_named_notations(body, expected):
    assert lin(body) == expected


@pytest.mark.parametrize("body, expected", [
    ("<apply><sum/><bvar><ci>i</ci></bvar><lowlimit><ci>a</ci></lowlimit>"
     "<uplimit><ci>b</ci></uplimit><apply><ci>f</ci><ci>i</ci></apply></apply>",
     "sum_(i = a)^b f(i)"),
    ("<apply><limit/><bvar><ci>x</ci></bvar><lowlimit><cn>0</cn></lowlimit>"
     "<apply><sin/><ci>x</ci></apply></apply>", "lim_(x \u2192 0) sin(x)"),
    ("<apply><forall/><bvar><ci>x</ci></bvar><apply><geq/><ci>x</ci><ci>x</ci></apply></apply>",
     "\u2200x: x >= x"),
    ("<apply><diff/><bvar><ci>x</ci><degree><cn>2</cn></degree></bvar><ci>y</ci></apply>",
     "d^2/dx^2(y)"),
    ("<piecewise><piece><cn>0</cn><apply><lt/><ci>x</ci><cn>0</cn></apply></piece>"
     "<otherwise><ci>x</ci></otherwise></piecewise>", "{0 if x < 0; x otherwise}"),
])
def test_content_qualifiers_are_written_out(body, expected):
    assert lin(body) == expected


# --- valid input accepted ---------------------------------------------------------------------

def test_web_page_with_a_bare_doctype_is_read(tmp_path):
    page = tmp_path / "page.xhtml"
    page.write_text('<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml" id="p1"><body>'
                    f'<div class="answer"><math xmlns="{MATHML_NS}"><mn>2</mn></math></div>'
                    "</body></html>", encoding="utf-8")
    record = read_mathml_file(page)
    assert (record.id, derive(record).answer_text) == ("p1", "2")


@pytest.mark.parametrize("name, text", [
    ("lone.mml", "<mml:math><mml:mi>x</mml:mi></mml:math>"),
    ("page.xhtml", '<html><body><p class="answer"><mml:math><mml:mi>x</mml:mi></mml:math></p>'
                   "</body></html>"),
])
def test_undeclared_mml_prefix_in_a_file_is_mathml(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    record = read_mathml_file(path)
    assert derive(record).answer_text == "x"
    assert "<mml:math><mml:mi>x</mml:mi></mml:math>" in record.answer  # kept byte for byte


def test_math_inside_mtext_in_a_record():
    answer = f'<math xmlns="{MATHML_NS}"><mtext>if <math><mi>n</mi></math> is prime</mtext></math>'
    assert [s.text for s in split_math("so " + answer)] == ["so ", answer]
    assert derive(Record(id="r", question="", answer=answer)).answer_text == "if n is prime"


# --- hostile input still refused --------------------------------------------------------------

@pytest.mark.parametrize("text", [
    '<!DOCTYPE html SYSTEM "http://127.0.0.1:9/x.dtd"><html/>',
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "x.dtd"><html/>',
    '<!DOCTYPE html [<!ENTITY x "y">]><html/>',
    "<!DOCTYPE html><!DOCTYPE html><html/>",
    '<html><!DOCTYPE html><body/></html>',
    '<!DOCTYPE html><html><!ENTITY x "y"></html>',
])
def test_declarations_other_than_a_leading_bare_doctype_are_refused(text):
    with pytest.raises(MathMLError, match="DTD or entity declarations are not allowed"):
        parse_fragment(text)


def test_a_bare_doctype_inside_a_text_field_is_refused():
    with pytest.raises(MathMLError, match="DTD or entity declarations"):
        list(split_math("<!DOCTYPE html><math><mi>x</mi></math>"))


def test_xinclude_is_not_processed(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("MARKER-51c0", encoding="utf-8")
    text = ('<html xmlns:xi="http://www.w3.org/2001/XInclude"><body><p class="answer">'
            f'<xi:include href="{secret.as_uri()}" parse="text"/>'
            f'<math xmlns="{MATHML_NS}"><mi>x</mi></math></p></body></html>')
    root = parse_fragment(text)
    assert "MARKER" not in "".join(root.itertext())

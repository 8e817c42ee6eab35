"""Streaming corpus loaders (mathcore.loaders): records JSONL, BEIR, folders of MathML files.

Every record must come out exactly as it was written (the text of a field byte for byte), with
``file:line`` as its origin; input that cannot be a record comes out as a reject saying why.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest

from mathcore import CorpusError, Record, Reject, detect_format, iter_corpus, iter_source
from mathcore.loaders import file_digest, load_beir, load_folder, load_jsonl, read_mathml_file
from mathcore.mathml import Limits, MathMLError


def _lines(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _write_jsonl(path: Path, rows: list) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


# --- records JSONL -------------------------------------------------------------------------

def test_records_jsonl_fields_are_kept_exactly(data_dir):
    path = data_dir / "corpus_sample.jsonl"
    items = list(load_jsonl(path))
    originals = _lines(path)
    assert all(isinstance(i, Record) for i in items)
    assert [i.id for i in items] == [o["id"] for o in originals]
    for number, (rec, obj) in enumerate(zip(items, originals, strict=True), 1):
        assert rec.question == obj["question"]
        assert rec.answer == obj["answer"]
        assert rec.final == obj["final"]
        assert rec.source == obj["source"]
        assert rec.origin == f"{path}:{number}"
        # Fields of no meaning to mathmatch are kept as metadata.
        assert dict(rec.meta) == {k: v for k, v in obj.items()
                                  if k not in ("id", "question", "answer", "final", "source")}
    assert items[2].meta == {"split": "test", "subject": "Prealgebra", "level": "Level 3"}


def test_records_jsonl_defaults(tmp_path):
    path = _write_jsonl(tmp_path / "mini.jsonl", [
        {"id": "a", "answer": "<math><mn>1</mn></math>"},
        "",
        "   ",
        {"id": "b", "answer": "two", "question": None, "final": None, "source": "elsewhere"},
    ])
    a, b = load_jsonl(path)
    assert (a.id, a.question, a.final, a.source, a.origin) == ("a", "", None, "mini",
                                                               f"{path}:1")
    # Blank lines are skipped but still counted: origins are real line numbers.
    assert (b.id, b.question, b.source, b.origin) == ("b", "", "elsewhere", f"{path}:4")


def test_records_jsonl_rejects_say_why(tmp_path):
    path = _write_jsonl(tmp_path / "bad.jsonl", [
        {"id": "ok", "answer": "x"},
        "{not json",
        "[1, 2]",
        {"answer": "no id"},
        {"id": "no-answer"},
        {"id": 7, "answer": "x"},
        {"id": "q", "answer": "x", "question": ["a"]},
        {"id": "f", "answer": "x", "final": 2.5},
        {"id": "ok2", "answer": "y"},
    ])
    items = list(load_jsonl(path))
    assert [type(i).__name__ for i in items] == ["Record"] + ["Reject"] * 7 + ["Record"]
    reasons = [(i.origin.rsplit(":", 1)[1], i.id, i.reason) for i in items[1:-1]]
    assert reasons == [
        ("2", None, "invalid JSON: Expecting property name enclosed in double quotes at column 2"),
        ("3", None, "expected a JSON object, got list"),
        ("4", None, "missing 'id'"),
        ("5", "no-answer", "missing 'answer'"),
        ("6", None, "'id' must be a string, got int"),
        ("7", "q", "'question' must be a string, got list"),
        ("8", "f", "'final' must be a string, got float"),
    ]


def test_utf8_byte_order_mark_is_skipped(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "first", "answer": "a"}).encode()
                     + b"\n" + json.dumps({"id": "second", "answer": "b"}).encode() + b"\n")
    assert detect_format(path) == "records"
    assert [i.id for i in load_jsonl(path)] == ["first", "second"]


def test_start_skips_lines_already_loaded(data_dir):
    path = data_dir / "corpus_sample.jsonl"
    assert [i.origin for i in load_jsonl(path, start=8)] == [f"{path}:9", f"{path}:10"]


def test_gzip_is_read_transparently(tmp_path, data_dir):
    src = data_dir / "corpus_sample.jsonl"
    gz = tmp_path / "sample.jsonl.gz"
    with gzip.open(gz, "wb") as fh:
        fh.write(src.read_bytes())
    assert detect_format(gz) == "records"
    plain = [(r.id, r.question, r.answer, r.final) for r in iter_source(src)]
    assert [(r.id, r.question, r.answer, r.final) for r in iter_source(gz)] == plain
    assert {r.source for r in iter_source(gz)} == {"gsm8k", "math", "mathematics_dataset"}


# --- BEIR ----------------------------------------------------------------------------------

def test_beir_corpus_file(tmp_path):
    path = _write_jsonl(tmp_path / "arq.jsonl", [
        {"_id": "d1", "title": "Irrationality", "text": "<math><msqrt><mn>2</mn></msqrt></math>",
         "extra": 1},
        {"_id": "d2", "title": "", "text": "no title"},
        {"_id": "d3"},
        {"title": "t", "text": "no id"},
        {"_id": "d5", "text": ["not", "text"]},
    ])
    assert detect_format(path) == "beir"
    d1, d2, r3, r4, r5 = iter_source(path)
    assert (d1.id, d1.question, d1.answer, d1.source) == \
        ("d1", "", "<math><msqrt><mn>2</mn></msqrt></math>", "arq")
    assert d1.meta == {"title": "Irrationality", "extra": 1}
    assert d2.meta == {}  # an empty title is dropped
    assert (r3.id, r3.reason) == ("d3", "missing 'text'")
    assert (r4.id, r4.reason) == (None, "missing '_id'")
    assert (r5.id, r5.reason) == ("d5", "'text' must be a string, got list")
    assert [i.origin for i in load_beir(path, start=4)] == [f"{path}:5"]


def test_beir_folder_is_named_after_the_folder(tmp_path):
    folder = tmp_path / "arqmath"
    folder.mkdir()
    _write_jsonl(folder / "corpus.jsonl", [{"_id": "d1", "text": "x"}])
    _write_jsonl(folder / "queries.jsonl", [{"_id": "q1", "text": "y"}])
    assert detect_format(folder) == "beir-dir"
    (rec,) = iter_source(folder)
    assert (rec.id, rec.source, rec.origin) == ("d1", "arqmath", f"{folder / 'corpus.jsonl'}:1")


# --- folders of MathML files ---------------------------------------------------------------

def test_sample_folder_layouts(sample_dir):
    folder = sample_dir / "mathml"
    items = {i.id: i for i in load_folder(folder)}
    assert sorted(items) == ["derivative", "mathml-content", "mathml-fraction-sum",
                             "mathml-latexml", "mathml-mathjax", "mathml-quadratic"]
    assert all(isinstance(i, Record) for i in items.values())
    for rec in items.values():
        text = Path(rec.origin).read_text(encoding="utf-8")
        for value in (rec.question, rec.answer, rec.final):
            # Each section is stored exactly as it stands in its file.
            assert value is None or value in text
    quadratic = items["mathml-quadratic"]
    assert quadratic.source == "mathml-sample"
    assert quadratic.final == ('<math xmlns="http://www.w3.org/1998/Math/MathML"><mrow><mo>{</mo>'
                               "<mn>2</mn><mo>,</mo><mn>3</mn><mo>}</mo></mrow></math>")
    xhtml = items["mathml-fraction-sum"]
    assert xhtml.question.startswith("What is <mml:math><mml:mfrac>")
    assert xhtml.final == ("<mml:math><mml:mfrac><mml:mn>5</mml:mn><mml:mn>6</mml:mn>"
                           "</mml:mfrac></mml:math>")
    # A lone <math>: the whole file (less the XML declaration) is the answer.
    lone = items["derivative"]
    assert lone.answer == (folder / "derivative.mml").read_text(encoding="utf-8").strip()
    assert (lone.question, lone.final, lone.source) == ("", None, "mathml")


def test_more_layouts(data_dir):
    items = {i.id: i for i in load_folder(data_dir / "mathml")}
    assert sorted(items) == ["html-class-sections", "lone-no-namespace", "record-prefixed"]
    html = items["html-class-sections"]
    # The comment naming <div class="answer"> is not taken for the section; the nested <div>
    # does not end it early.
    assert html.answer.startswith("Since <math")
    assert html.answer.endswith('<div>the cube root is</div> <math xmlns="http://www.w3.org/1998/'
                                'Math/MathML"><mn>3</mn></math>.')
    assert html.question == ('Evaluate <math xmlns="http://www.w3.org/1998/Math/MathML"><mroot>'
                             "<mn>27</mn><mn>3</mn></mroot></math>.")
    assert html.final == '<math xmlns="http://www.w3.org/1998/Math/MathML"><mn>3</mn></math>'
    rec = items["record-prefixed"]
    assert (rec.source, dict(rec.meta)) == ("mathml-tests", {"level": "2"})
    assert rec.final == "<m:math><m:mn>2</m:mn></m:math>"
    lone = items["lone-no-namespace"]
    assert lone.answer.startswith('<math display="block"><mi>a</mi><mo>&InvisibleTimes;</mo>')


def test_sections_are_found_past_quoted_greater_than_signs(tmp_path):
    (tmp_path / "r.xml").write_text(
        '<record id="r" note="x > y"><question hint=\'a>b\'>Is <math><mi>x</mi><mo>&gt;</mo>'
        '<mi>y</mi></math>?</question><answer data-x="/>">Yes.</answer><final/></record>',
        encoding="utf-8")
    (tmp_path / "h.xhtml").write_text(
        '<html data-id="h"><body><p class="answer" title="1 > 0">Yes <math><mn>1</mn></math>'
        "</p></body></html>", encoding="utf-8")
    rec = read_mathml_file(tmp_path / "r.xml")
    assert (rec.question, rec.answer, rec.final) == \
        ("Is <math><mi>x</mi><mo>&gt;</mo><mi>y</mi></math>?", "Yes.", "")
    assert read_mathml_file(tmp_path / "h.xhtml").answer == "Yes <math><mn>1</mn></math>"


def test_a_single_mathml_file_is_a_corpus(sample_dir):
    path = sample_dir / "mathml" / "quadratic.xml"
    assert detect_format(path) == "file"
    (rec,) = iter_source(path)
    assert rec.id == "mathml-quadratic"
    assert list(iter_source(path, start=1)) == []


@pytest.mark.parametrize("content, reason", [
    ("<record><question>q</question></record>", "no answer section"),
    ("<record><answer>a</answer><answer>b</answer></record>", "more than one <answer> element"),
    ('<html><p data-mathmatch="answer">a</p><p class="answer">b</p></html>',
     "more than one 'answer' section"),
    ("<svg/>", "root element <svg> is neither <record>, <html> nor MathML <math>"),
    ("<record><answer>", "malformed XML"),
    ("", "malformed XML"),
])
def test_mathml_file_refused_with_reason(tmp_path, content, reason):
    path = tmp_path / "f.xml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(MathMLError, match=reason):
        read_mathml_file(path)


def test_mathml_file_size_limit_is_checked_before_reading(tmp_path):
    path = tmp_path / "big.mml"
    with open(path, "wb") as fh:
        fh.truncate(50 * 1024 * 1024)  # sparse: 50 MB of nothing, never read
    with pytest.raises(MathMLError, match=r"file of 52428800 bytes is over the limit of 4194304"):
        read_mathml_file(path)
    small = tmp_path / "small.mml"
    small.write_text("<math><mi>x</mi></math>", encoding="utf-8")
    with pytest.raises(MathMLError, match="over the limit of 10"):
        read_mathml_file(small, Limits(max_bytes=10))


def test_mathml_file_with_byte_order_mark(tmp_path):
    path = tmp_path / "bom.xml"
    path.write_bytes("\ufeff<record id='b'><answer>é</answer></record>".encode("utf-8"))
    assert read_mathml_file(path).answer == "é"


def test_folder_order_suffixes_and_start(tmp_path, sample_dir):
    folder = tmp_path / "corpus"
    shutil.copytree(sample_dir / "mathml", folder / "b")
    (folder / "a.MML").write_text("<math><mi>a</mi></math>", encoding="utf-8")
    (folder / "notes.txt").write_text("not a corpus file", encoding="utf-8")
    (folder / "dir.mml").mkdir()
    origins = [Path(i.origin).relative_to(folder).as_posix() for i in load_folder(folder)]
    assert origins == ["a.MML", "b/content-mathml.xml", "b/derivative.mml",
                       "b/fraction-sum.xhtml", "b/latexml-semantics.xml", "b/mathjax-output.xml",
                       "b/quadratic.xml"]
    assert [i.origin for i in load_folder(folder, start=5)] == \
        [str(folder / "b/mathjax-output.xml"), str(folder / "b/quadratic.xml")]


def test_symbolic_links_are_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.mml").write_text("<math><mi>secret</mi></math>", encoding="utf-8")
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "ok.mml").write_text("<math><mi>x</mi></math>", encoding="utf-8")
    before = file_digest(folder)
    (folder / "link.mml").symlink_to(outside / "secret.mml")
    (folder / "linked-dir").symlink_to(outside, target_is_directory=True)
    assert [i.id for i in load_folder(folder)] == ["ok"]
    assert file_digest(folder) == before  # the digest reads what the loader reads, no more


def test_file_name_that_is_not_utf8_is_rejected(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "ok.mml").write_text("<math><mi>x</mi></math>", encoding="utf-8")
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.mml"), "w", encoding="utf-8") as fh:
        fh.write("<math><mi>y</mi></math>")
    items = list(load_folder(folder))
    rejects = [i for i in items if isinstance(i, Reject)]
    assert [i.id for i in items if isinstance(i, Record)] == ["ok"]
    assert [(Path(r.origin).name, r.reason) for r in rejects] == \
        [("caf\ufffd.mml", "file name is not valid UTF-8")]


# --- formats and paths ---------------------------------------------------------------------

def test_detect_format(tmp_path, sample_dir, data_dir):
    assert detect_format(sample_dir / "records.jsonl") == "records"
    assert detect_format(sample_dir / "mathml") == "folder"
    assert detect_format(data_dir / "mathml" / "lone-no-namespace.mml") == "file"
    undecided = tmp_path / "junk.jsonl"
    undecided.write_bytes(b"\xff\xfe\n[1]\n\n")
    assert detect_format(undecided) == "records"


def test_missing_and_unknown_paths_raise(tmp_path):
    with pytest.raises(CorpusError, match="no such file or directory"):
        detect_format(tmp_path / "nowhere.jsonl")
    other = tmp_path / "corpus.txt"
    other.write_text("x", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"unknown corpus format \(expected .jsonl"):
        list(iter_source(other))


def test_iter_corpus_chains_paths_in_order(sample_dir, data_dir):
    items = list(iter_corpus([data_dir / "variants.jsonl", sample_dir / "mathml"]))
    assert [i.id for i in items[:2]] == ["variant-latexml-ntcir", "variant-latexml-arqmath-cmml"]
    assert [i.id for i in items[-2:]] == ["mathml-mathjax", "mathml-quadratic"]
    assert len(items) == 11 + 6


def test_file_digest_follows_content_and_names(tmp_path, sample_dir):
    folder = tmp_path / "m"
    shutil.copytree(sample_dir / "mathml", folder)
    first = file_digest(folder)
    assert file_digest(folder) == first
    (folder / "quadratic.xml").rename(folder / "quadratic2.xml")
    renamed = file_digest(folder)
    assert renamed != first
    (folder / "derivative.mml").write_text("<math/>", encoding="utf-8")
    assert file_digest(folder) not in (first, renamed)

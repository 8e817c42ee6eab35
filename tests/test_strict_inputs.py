"""Strict reading of queries and corpora (mathcore.runs, mathcore.loaders).

A queries file is read in the format asked for, or the one its name and first line say, and is
never silently read as something else; an id that cannot be a column of a TREC run is refused;
a damaged file is named with the line reached.  Corpus input of the same kinds becomes rejects
and the load carries on.  Every file is built from the real samples of ``data/sample`` and
``tests/data``.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import sys
from pathlib import Path

import pytest

from mathcore import Record, Reject, iter_corpus, iter_source
from mathcore.loaders import load_beir, load_folder, load_jsonl
from mathcore.runs import (
    QUERY_FORMATS,
    QueryFileError,
    iter_queries,
    iter_queries_with_finals,
    write_run,
)

BAD_IDS = ["q 1", "q\t1", "q\n1", "q\x001", "q\x1f1", "q\x7f1", " q1", "q1\r"]


def _rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _write(path: Path, rows: list) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


@pytest.fixture
def beir_queries(sample_dir) -> list[dict]:
    """The first five BEIR queries of the sample (``{"_id", "text"}``)."""
    return _rows(sample_dir / "queries.jsonl")[:5]


# --- queries: the format --------------------------------------------------------------------

def test_query_formats_constant():
    assert QUERY_FORMATS == ("auto", "beir", "records", "text")


def test_jsonl_queries_with_broken_first_line_are_an_error(tmp_path, beir_queries):
    first = json.dumps(beir_queries[0])
    path = _write(tmp_path / "q.jsonl", [first[: len(first) // 2]] + beir_queries[1:])
    with pytest.raises(QueryFileError, match=r"q\.jsonl:1: not valid JSON .*\"_id\" and "
                                             r"\"text\".*--queries-format text"):
        list(iter_queries(path))


def test_jsonl_queries_with_id_and_text_are_an_error(tmp_path, beir_queries):
    rows = [{"id": q["_id"], "text": q["text"]} for q in beir_queries]
    path = _write(tmp_path / "q.jsonl", rows)
    with pytest.raises(QueryFileError, match=r"q\.jsonl:1: an object with keys \[id, text\] is "
                                             r"not a query; .*records have \"id\" and "
                                             r"\"question\"; for plain text"):
        list(iter_queries_with_finals(path))


@pytest.mark.parametrize("name", ["q.json", "q.ndjson", "q.JSONL"])
def test_json_named_queries_never_fall_back_to_text(tmp_path, name):
    path = tmp_path / name
    path.write_text("What is 1+1?\n", encoding="utf-8")
    with pytest.raises(QueryFileError, match=rf"{name}:1: not valid JSON"):
        list(iter_queries(path))


def test_every_line_must_match_the_first_lines_format(tmp_path, beir_queries, data_dir):
    record = _rows(data_dir / "corpus_sample.jsonl")[0]
    broken = json.dumps(beir_queries[3])[:-5]
    path = _write(tmp_path / "q.jsonl", beir_queries[:2] + [record] + beir_queries[3:])
    with pytest.raises(QueryFileError, match=r"q\.jsonl:3: an object with keys \[answer, .*\] "
                                             r"is not a beir query; expected a BEIR query "
                                             r"\(\"_id\" and \"text\" strings\) like the "
                                             r"file's first query"):
        list(iter_queries(path))
    _write(path, beir_queries[:3] + [broken])
    queries = iter_queries(path)
    assert [next(queries) for _ in range(3)] == [(q["_id"], q["text"]) for q in beir_queries[:3]]
    with pytest.raises(QueryFileError, match=r"q\.jsonl:4: not valid JSON"):
        next(queries)


def test_records_queries_are_read_by_id_and_question(data_dir):
    path = data_dir / "corpus_sample.jsonl"
    rows = _rows(path)
    want = [(r["id"], r["question"], r["final"]) for r in rows]
    assert list(iter_queries_with_finals(path)) == want
    assert list(iter_queries_with_finals(path, fmt="records")) == want
    with pytest.raises(QueryFileError, match=r"corpus_sample\.jsonl:1: .* is not a beir query; "
                                             r"expected a BEIR query .*\(--queries-format beir\)"):
        list(iter_queries(path, fmt="beir"))


def test_explicit_beir_requires_every_line(tmp_path, beir_queries):
    path = _write(tmp_path / "q.txt", beir_queries)
    assert list(iter_queries(path, fmt="beir")) == [(q["_id"], q["text"]) for q in beir_queries]
    with pytest.raises(QueryFileError, match=r"q\.txt:1: .* is not a records query"):
        list(iter_queries(path, fmt="records"))
    text = tmp_path / "plain.txt"
    text.write_text("What is 1+1?\n", encoding="utf-8")
    with pytest.raises(QueryFileError, match=r"plain\.txt:1: not valid JSON"):
        list(iter_queries(text, fmt="beir"))


def test_explicit_text_reads_every_line_as_a_question(tmp_path, beir_queries):
    path = _write(tmp_path / "q.jsonl", beir_queries[:2] + [""] + beir_queries[2:3])
    lines = path.read_text(encoding="utf-8").splitlines()
    assert list(iter_queries(path, fmt="text")) == [("1", lines[0]), ("2", lines[1]),
                                                    ("4", lines[3])]


def test_auto_for_other_names_looks_at_the_first_line(tmp_path, sample_dir, beir_queries):
    demo = sample_dir / "demo_questions.txt"
    questions = demo.read_text(encoding="utf-8").splitlines()
    assert list(iter_queries(demo)) == [(str(n), q) for n, q in enumerate(questions, 1)]
    as_json = _write(tmp_path / "queries", [""] + beir_queries)
    assert list(iter_queries(as_json)) == [(q["_id"], q["text"]) for q in beir_queries]
    # Once a file is JSON by its first line, a later line of text is an error, not a question.
    _write(as_json, beir_queries[:1] + [questions[0]])
    with pytest.raises(QueryFileError, match=r"queries:2: not valid JSON"):
        list(iter_queries(as_json))


def test_standard_input(monkeypatch, beir_queries):
    data = "".join(json.dumps(q) + "\n" for q in beir_queries).encode("utf-8")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    assert list(iter_queries("-")) == [(q["_id"], q["text"]) for q in beir_queries]
    assert not sys.stdin.closed
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"ok\n\xff\n")))
    with pytest.raises(QueryFileError, match=r"-:2: not UTF-8 text"):
        list(iter_queries("-"))


def test_byte_order_mark_is_not_part_of_the_first_query(tmp_path, beir_queries):
    path = tmp_path / "q.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(beir_queries[0]).encode("utf-8") + b"\n")
    assert list(iter_queries(path)) == [(beir_queries[0]["_id"], beir_queries[0]["text"])]


def test_unknown_format_is_refused_at_once(sample_dir):
    with pytest.raises(ValueError, match=r"queries format must be one of auto, beir, records, "
                                         r"text; got 'tsv'"):
        iter_queries(sample_dir / "queries.jsonl", fmt="tsv")
    with pytest.raises(ValueError, match="got 'json'"):
        iter_queries_with_finals(sample_dir / "queries.jsonl", fmt="json")


# --- queries: ids, encoding, paths ------------------------------------------------------------

@pytest.mark.parametrize("bad", BAD_IDS)
def test_query_ids_with_whitespace_or_control_characters(tmp_path, beir_queries, bad):
    rows = beir_queries[:2] + [{"_id": bad, "text": beir_queries[2]["text"]}]
    path = _write(tmp_path / "q.jsonl", rows)
    with pytest.raises(QueryFileError, match=r"q\.jsonl:3: query id .* contains whitespace or "
                                             r"control characters"):
        list(iter_queries(path))


def test_empty_query_id(tmp_path, beir_queries):
    path = _write(tmp_path / "q.jsonl", [{"_id": "", "text": beir_queries[0]["text"]}])
    with pytest.raises(QueryFileError, match=r"q\.jsonl:1: empty query id"):
        list(iter_queries(path))


@pytest.mark.parametrize("name", ["q.jsonl", "q.txt"])
def test_invalid_utf8_in_a_queries_file(tmp_path, beir_queries, name):
    good = json.dumps(beir_queries[0]).encode("utf-8")
    latin1 = json.dumps({"_id": beir_queries[1]["_id"], "text": "Café: " + beir_queries[1]["text"]},
                        ensure_ascii=False)
    path = tmp_path / name
    path.write_bytes(good + b"\n" + latin1.encode("latin-1") + b"\n")
    with pytest.raises(QueryFileError, match=rf"{name}:2: not UTF-8 text \(invalid byte at "
                                             r"position \d+ of the line: invalid continuation "
                                             r"byte\)"):
        list(iter_queries(path))


def test_a_folder_or_a_missing_file_as_queries(tmp_path):
    with pytest.raises(QueryFileError, match=rf"{tmp_path}: is a folder; a queries file is "
                                             "expected"):
        list(iter_queries(tmp_path))
    with pytest.raises(QueryFileError, match=r"nope\.jsonl: no such file"):
        list(iter_queries_with_finals(tmp_path / "nope.jsonl"))


def test_gzip_queries_and_a_truncated_one(tmp_path, sample_dir):
    src = sample_dir / "queries.jsonl"
    data = src.read_bytes()
    gz = tmp_path / "q.jsonl.gz"
    gz.write_bytes(gzip.compress(data))
    assert list(iter_queries(gz)) == list(iter_queries(src))
    gz.write_bytes(gzip.compress(data)[:-len(gzip.compress(data)) // 3])
    with pytest.raises(QueryFileError, match=r"q\.jsonl\.gz:\d+: truncated or damaged gzip"):
        list(iter_queries(gz))


def test_query_file_error_is_a_value_error():
    # mathmatch.cli.main reports ValueError as a one-line error (exit status 2).
    assert issubclass(QueryFileError, ValueError)


# --- runs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", BAD_IDS + [""])
def test_trec_run_refuses_ids_that_break_its_columns(bad):
    for run in ({bad: {"d1": 1.0}}, {"q1": {"d1": 1.0, bad: 0.5}}):
        with pytest.raises(ValueError, match="cannot write a TREC run: .*(whitespace or control "
                                             "characters|id is empty)"):
            write_run(io.StringIO(), run, "trec")
    out = io.StringIO()
    write_run(out, {bad: {"d1": 1.0}}, "jsonl")  # JSON escapes them
    assert json.loads(out.getvalue())["query_id"] == bad
    with pytest.raises(ValueError, match="run tag"):
        write_run(io.StringIO(), {"q1": {"d1": 1.0}}, "trec", tag="my run")


# --- corpus records: ids ------------------------------------------------------------------------

@pytest.mark.parametrize("bad", BAD_IDS)
def test_record_ids_with_whitespace_become_rejects(tmp_path, data_dir, bad):
    rows = _rows(data_dir / "corpus_sample.jsonl")
    rows[1]["id"] = bad
    path = _write(tmp_path / "c.jsonl", rows)
    items = list(load_jsonl(path))
    assert [i.id for i in items if isinstance(i, Record)] == [r["id"] for r in rows
                                                              if r["id"] != bad]
    (rej,) = [i for i in items if isinstance(i, Reject)]
    assert rej == Reject(f"{path}:2", f"id {bad!r} contains whitespace or control characters",
                         bad)


def test_beir_ids_with_whitespace_become_rejects(tmp_path, data_dir):
    rows = [{"_id": r["id"], "title": r["source"], "text": r["answer"]}
            for r in _rows(data_dir / "corpus_sample.jsonl")]
    rows[0]["_id"] = "gsm8k test 1"
    path = _write(tmp_path / "corpus.jsonl", rows)
    first, *rest = load_beir(path)
    assert first == Reject(f"{path}:1", "id 'gsm8k test 1' contains whitespace or control "
                                        "characters", "gsm8k test 1")
    assert [r.id for r in rest] == [r["_id"] for r in rows[1:]]


def test_mathml_file_names_with_whitespace_become_rejects(tmp_path, sample_dir):
    folder = tmp_path / "mathml"
    shutil.copytree(sample_dir / "mathml", folder)
    (folder / "derivative.mml").rename(folder / "my derivative.mml")
    items = list(load_folder(folder))
    rejects = [i for i in items if isinstance(i, Reject)]
    assert rejects == [Reject(str(folder / "my derivative.mml"),
                              "id 'my derivative' contains whitespace or control characters",
                              "my derivative")]
    assert len(items) == len(list(load_folder(sample_dir / "mathml")))


# --- corpus: a truncated gzip --------------------------------------------------------------------

def _truncated(src: Path, out: Path, keep: float) -> Path:
    packed = gzip.compress(src.read_bytes())
    out.write_bytes(packed[:int(len(packed) * keep)])
    return out


def test_truncated_gzip_keeps_the_records_before_the_damage(tmp_path, data_dir):
    src = data_dir / "corpus_sample.jsonl"
    gz = _truncated(src, tmp_path / "c.jsonl.gz", 2 / 3)
    items = list(iter_corpus([gz, data_dir / "variants.jsonl"]))
    plain = [r.id for r in iter_source(src)]
    damaged = next(n for n, i in enumerate(items) if isinstance(i, Reject))
    assert 0 < damaged < len(plain)
    assert [i.id for i in items[:damaged]] == plain[:damaged]
    rej = items[damaged]
    assert rej.origin == f"{gz}:{damaged + 1}"
    assert rej.reason.startswith("truncated or damaged gzip (Compressed file ended before the "
                                 "end-of-stream marker was reached)")
    assert rej.reason.endswith(f"the records after line {damaged} are lost; the file must be "
                               "re-exported")
    # The load goes on with the next file.
    assert [i.id for i in items[damaged + 1:]] == [r.id for r in iter_source(
        data_dir / "variants.jsonl")]


def test_gzip_damaged_before_its_first_record(tmp_path, data_dir):
    gz = _truncated(data_dir / "corpus_sample.jsonl", tmp_path / "c.jsonl.gz", 0.05)
    (rej,) = iter_source(gz)
    assert rej.origin == f"{gz}:1"
    assert "the records after line 0 are lost" in rej.reason


def test_truncated_beir_gzip(tmp_path, data_dir):
    rows = [{"_id": r["id"], "text": r["answer"]} for r in _rows(data_dir / "corpus_sample.jsonl")]
    plain = _write(tmp_path / "b.jsonl", rows)
    items = list(iter_source(_truncated(plain, tmp_path / "b.jsonl.gz", 2 / 3)))
    assert isinstance(items[-1], Reject) and "truncated or damaged gzip" in items[-1].reason
    assert [i.id for i in items[:-1]] == [r["_id"] for r in rows[:len(items) - 1]]


def test_index_load_writes_the_gzip_damage_to_the_rejects_file(tmp_path, data_dir):
    from index.corpora import LoadConfig, load_corpora

    gz = _truncated(data_dir / "corpus_sample.jsonl", tmp_path / "c.jsonl.gz", 2 / 3)
    out = tmp_path / "idx"
    report = load_corpora(LoadConfig([gz, data_dir / "variants.jsonl"], out, workers=0,
                                     progress=False))
    rejects = _rows(out / "rejects.jsonl")
    assert [(r["origin"].rsplit(":", 1)[0], r["reason"][:29]) for r in rejects] == \
        [(str(gz), "truncated or damaged gzip (Co")]
    assert report.rejected == 1
    assert report.added == int(rejects[0]["origin"].rsplit(":", 1)[1]) - 1 + len(
        list(iter_source(data_dir / "variants.jsonl")))

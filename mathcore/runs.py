"""Queries in, runs out: the file formats of ``mathmatch match`` and ``mathmatch bench``.

Queries (read streaming; the format is given, or told by the file name and first line, see
:func:`iter_queries_with_finals`):

* BEIR ``queries.jsonl``: ``{"_id", "text"}``;
* our records JSONL: ``{"id", "question", "final"?, ...}`` (the question side, and its final
  answer where given: ``mathmatch dedup`` compares it with the candidates');
* plain text: one question per line; its id is the line number.

Runs: JSONL rows ``{"query_id", "hits": [{"doc_id", "score", "rank"}]}`` or TREC lines
``qid Q0 docid rank score tag`` (readable by ranx and trec_eval).  Qrels: BEIR ``qrels.tsv``
(``query-id<TAB>corpus-id<TAB>score``, with a header) or TREC qrels (``qid 0 docid rel``).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import re
import sys
import zlib
from pathlib import Path
from typing import IO, Iterable, Iterator

from mathcore.records import RecordError, id_problem, query_text

logger = logging.getLogger(__name__)

_TAG_RE = re.compile(r"<[^>]*>")

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]
FORMATS = ("jsonl", "trec")
QUERY_FORMATS = ("auto", "beir", "records", "text")
_LONE_SURROGATE_RE = re.compile("[\udc80-\udcff]")  # undecodable bytes (surrogateescape)
_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


class QueryFileError(ValueError):
    """A queries or qrels file that cannot be read; the message names the file and line."""


def _query_format(obj: object) -> str | None:
    """``beir`` or ``records`` for a parsed JSON query line, None when it is neither."""
    if isinstance(obj, dict) and "_id" in obj and "text" in obj:
        return "beir"
    if isinstance(obj, dict) and "id" in obj and "question" in obj:
        return "records"
    return None


def _is_json_name(path: Path | str) -> bool:
    name = str(path).lower().removesuffix(".gz")
    return name.endswith((".jsonl", ".json", ".ndjson"))


def _open_queries(path: Path | str) -> IO[str]:
    """A queries file (or standard input for ``-``) as text lines; bytes that are not UTF-8
    come through as lone surrogates, so the caller can name the line that holds them."""
    if str(path) == "-":
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is None:  # standard input replaced by a text stream (tests, notebooks)
            return sys.stdin
        return io.TextIOWrapper(buffer, encoding="utf-8", errors="surrogateescape")
    if Path(path).is_dir():
        raise QueryFileError(f"{path}: is a folder; a queries file is expected (BEIR "
                             "queries.jsonl, records JSONL, or plain text with one question a "
                             "line)")
    try:
        if str(path).lower().endswith(".gz"):
            return gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape")
        return open(path, encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        raise QueryFileError(f"{path}: no such file (expected a queries file)") from None
    except OSError as exc:
        raise QueryFileError(f"{path}: cannot read the queries file ({exc.strerror or exc})") \
            from None


def _check_utf8(line: str, where: str) -> None:
    if _LONE_SURROGATE_RE.search(line):
        try:
            line.encode("utf-8", "surrogateescape").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise QueryFileError(f"{where}: not UTF-8 text (invalid byte at position "
                                 f"{exc.start} of the line: {exc.reason}); save the file as "
                                 "UTF-8") from None


def _query_lines(path: Path | str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a queries file's non-empty lines, checked to be UTF-8."""
    fh = _open_queries(path)
    lineno = 0
    try:
        for lineno, line in enumerate(fh, 1):
            if lineno == 1:
                line = line.removeprefix("\ufeff")  # a byte order mark (Windows tools)
            if not line.strip():
                continue
            _check_utf8(line, f"{path}:{lineno}")
            yield lineno, line
    except _GZIP_ERRORS as exc:
        raise QueryFileError(f"{path}:{lineno + 1}: truncated or damaged gzip ({exc}); the "
                             f"queries after line {lineno} are lost: export the file "
                             "again") from None
    finally:
        if fh is not sys.stdin:
            if str(path) == "-":
                fh.detach()  # leave standard input open
            else:
                fh.close()


def iter_queries(path: Path | str, fmt: str = "auto") -> Iterator[tuple[str, str]]:
    """``(query_id, text)`` pairs of a queries file, streaming; ``-`` reads standard input.

    Args:
        path: the queries file (``.gz`` is read transparently), or ``-``.
        fmt: one of :data:`QUERY_FORMATS`; see :func:`iter_queries_with_finals`.

    Raises:
        QueryFileError: on a missing file or a folder, a line that is not UTF-8, a line that is
            not a query of the format, or a query id with whitespace (names the file and line).
        ValueError: on an unknown *fmt*.
    """
    _check_query_format(fmt)
    return (pair[:2] for pair in _iter_queries(path, fmt))


def iter_queries_with_finals(path: Path | str,
                             fmt: str = "auto") -> Iterator[tuple[str, str, str | None]]:
    """``(query_id, text, final)`` triples of a queries file: :func:`iter_queries` with the
    query's final answer (a JSON line's ``final`` string, MathML or text), None if it has none.

    Formats (*fmt*):

    * ``beir``: every line a JSON object with ``_id`` and ``text`` strings;
    * ``records``: every line a JSON object with ``id`` and ``question`` strings;
    * ``text``: every non-empty line is a question, its id the line number;
    * ``auto``: a file named ``.jsonl``, ``.json`` or ``.ndjson`` (``.gz`` or not) is JSON and
      never read as text; another file (or ``-``) is JSON when its first non-empty line starts
      with ``{``, else text.  A JSON file is ``beir`` or ``records`` by its first line, and
      every other line must be of the same format.

    Query ids must not hold whitespace or control characters (they are a column of TREC runs).

    Raises:
        QueryFileError: on a missing file or a folder, a line that is not UTF-8, a line that is
            not a query of the format, a query id that is not a valid id, or a ``final`` that
            is not a string (names the file and line, and says what was expected).
        ValueError: on an unknown *fmt*.
    """
    _check_query_format(fmt)
    return _iter_queries(path, fmt)


def _check_query_format(fmt: str) -> None:
    if fmt not in QUERY_FORMATS:
        raise ValueError(f"queries format must be one of {', '.join(QUERY_FORMATS)}; "
                         f"got {fmt!r}")


def _iter_queries(path: Path | str, fmt: str) -> Iterator[tuple[str, str, str | None]]:
    fixed = fmt
    for lineno, line in _query_lines(path):
        where = f"{path}:{lineno}"
        if fmt == "auto":
            fmt = "json" if _is_json_name(path) or line.lstrip().startswith("{") else "text"
            logger.debug("%s: %s queries", path, fmt)
        if fmt == "text":
            yield str(lineno), line.rstrip("\r\n"), None
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QueryFileError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); "
                                 f"{_expected(fmt, fixed)}") from None
        except RecursionError:
            raise QueryFileError(f"{where}: not valid JSON (nested too deeply); "
                                 f"{_expected(fmt, fixed)}") from None
        kind = _query_format(obj)
        if fmt == "json":
            if kind is None:
                raise QueryFileError(f"{where}: {_shape(obj)} is not a query; "
                                     f"{_expected(fmt, fixed)}")
            fmt = kind
            logger.debug("%s: %s queries", path, fmt)
        keys = ("_id", "text") if fmt == "beir" else ("id", "question")
        if not isinstance(obj, dict) or any(k not in obj for k in keys):
            raise QueryFileError(f"{where}: {_shape(obj)} is not a {fmt} query; "
                                 f"{_expected(fmt, fixed)}")
        qid, text = obj[keys[0]], obj[keys[1]]
        final = obj.get("final")
        if not isinstance(qid, str) or not isinstance(text, str):
            raise QueryFileError(f"{where}: query id and text must be strings")
        if not qid:
            raise QueryFileError(f"{where}: empty query id")
        problem = id_problem(qid)
        if problem:
            raise QueryFileError(f"{where}: query {problem}: ids are a column of TREC runs and "
                                 "qrels; give the query an id without them")
        if final is not None and not isinstance(final, str):
            raise QueryFileError(f"{where}: final answer must be a string")
        yield qid, text, final or None


def _shape(obj: object) -> str:
    if isinstance(obj, dict):
        keys = ", ".join(sorted(map(str, obj))[:8])
        return f"an object with keys [{keys}]" if keys else "an empty object"
    return f"a JSON {type(obj).__name__}"


def _expected(fmt: str, fixed: str) -> str:
    """What a line of the file should be, and what to do otherwise."""
    if fmt == "beir":
        want = 'expected a BEIR query ("_id" and "text" strings)'
    elif fmt == "records":
        want = 'expected a records query ("id" and "question" strings)'
    else:
        want = "expected one JSON object a line"
    if fmt in ("beir", "records"):
        want += " like the file's first query" if fixed == "auto" else \
            f" (--queries-format {fixed})"
    return (f'{want}. BEIR queries have "_id" and "text"; records have "id" and "question"; '
            "for plain text (one question a line) use --queries-format text")


def batched(items: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_run(fh: IO[str], run: Run, fmt: str, tag: str = "mathmatch") -> None:
    """Write a run's rankings (each ``{doc_id: score}`` in rank order) in *fmt*.

    Raises:
        ValueError: on an unknown *fmt*; for ``trec``, on a query id, doc id or tag that is
            empty or holds whitespace or a control character (it would break the columns).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "trec":
        _check_trec_id(tag, "run tag")
    for qid, ranking in run.items():
        if fmt == "jsonl":
            fh.write(json.dumps({"query_id": qid, "hits": [
                {"doc_id": doc, "score": round(float(score), 6), "rank": rank}
                for rank, (doc, score) in enumerate(ranking.items(), 1)]},
                ensure_ascii=False) + "\n")
        else:
            _check_trec_id(qid, "query")
            for rank, (doc, score) in enumerate(ranking.items(), 1):
                _check_trec_id(doc, f"query {qid}: document")
                fh.write(f"{qid} Q0 {doc} {rank} {float(score):.6f} {tag}\n")


def _check_trec_id(value: object, what: str) -> None:
    problem = "id is empty" if value == "" else id_problem(str(value))
    if problem:
        raise ValueError(f"cannot write a TREC run: {what} {problem}; write the run as JSONL "
                         "(--format jsonl) or give it ids without whitespace")


def read_qrels(path: Path | str) -> Qrels:
    """Relevance judgements from a BEIR ``qrels.tsv`` or a TREC qrels file.

    Raises:
        QueryFileError: on a line that is neither (names the file and line).
    """
    qrels: Qrels = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts or lineno == 1 and parts[0] in ("query-id", "query_id", "qid"):
                continue
            if len(parts) == 3:
                qid, doc, rel = parts
            elif len(parts) == 4:
                qid, _, doc, rel = parts
            else:
                raise QueryFileError(f"{path}:{lineno}: expected 'query-id corpus-id score' "
                                     f"(BEIR) or 'qid 0 docid rel' (TREC), got {line.strip()!r}")
            try:
                qrels.setdefault(qid, {})[doc] = int(rel)
            except ValueError:
                raise QueryFileError(f"{path}:{lineno}: relevance {rel!r} is not an integer") \
                    from None
    return qrels


def read_run(path: Path | str) -> Run:
    """A run from a JSONL or TREC run file."""
    run: Run = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if line.lstrip().startswith("{"):
                obj = json.loads(line)
                run[obj["query_id"]] = {h["doc_id"]: float(h["score"]) for h in obj["hits"]}
                continue
            parts = line.split()
            if len(parts) != 6:
                raise QueryFileError(f"{path}:{lineno}: not a TREC run line")
            run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
    return run

def linear_query(qid: str, text: str) -> str:
    """A query's linear text; a query with refused MathML falls back to its bare text."""
    try:
        return query_text(text)
    except RecordError as exc:
        logger.warning("query %s: %s; searching its text without the markup", qid, exc)
        return " ".join(_TAG_RE.sub(" ", text).split())

"""Queries in, runs out: the file formats of ``mathmatch match`` and ``mathmatch bench``.

Queries (read streaming, format detected from the first line):

* BEIR ``queries.jsonl``: ``{"_id", "text"}``;
* our records JSONL: ``{"id", "question", "final"?, ...}`` (the question side, and its final
  answer where given: ``mathmatch dedup`` compares it with the candidates');
* plain text: one question per line; its id is the line number.

Runs: JSONL rows ``{"query_id", "hits": [{"doc_id", "score", "rank"}]}`` or TREC lines
``qid Q0 docid rank score tag`` (readable by ranx and trec_eval).  Qrels: BEIR ``qrels.tsv``
(``query-id<TAB>corpus-id<TAB>score``, with a header) or TREC qrels (``qid 0 docid rel``).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import IO, Iterable, Iterator

from mathcore.records import RecordError, query_text

logger = logging.getLogger(__name__)

_TAG_RE = re.compile(r"<[^>]*>")

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]
FORMATS = ("jsonl", "trec")


class QueryFileError(ValueError):
    """A queries or qrels file that cannot be read; the message names the file and line."""


def _query_format(first: str) -> str:
    try:
        obj = json.loads(first)
    except json.JSONDecodeError:
        return "text"
    if isinstance(obj, dict) and "_id" in obj and "text" in obj:
        return "beir"
    if isinstance(obj, dict) and "id" in obj and "question" in obj:
        return "records"
    return "text"


def iter_queries(path: Path | str) -> Iterator[tuple[str, str]]:
    """``(query_id, text)`` pairs of a queries file, streaming; ``-`` reads standard input.

    Raises:
        QueryFileError: on a JSON line that is not a query (names the file and line).
    """
    for qid, text, _ in iter_queries_with_finals(path):
        yield qid, text


def iter_queries_with_finals(path: Path | str) -> Iterator[tuple[str, str, str | None]]:
    """``(query_id, text, final)`` triples of a queries file: :func:`iter_queries` with the
    query's final answer (a JSON line's ``final`` string, MathML or text), None if it has none.

    Raises:
        QueryFileError: on a JSON line that is not a query, or a ``final`` that is not a string
            (names the file and line).
    """
    import sys

    fh = sys.stdin if str(path) == "-" else open(path, encoding="utf-8")
    try:
        fmt = None
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if fmt is None:
                fmt = _query_format(line)
                logger.debug("%s: %s queries", path, fmt)
            if fmt == "text":
                yield str(lineno), line.rstrip("\n"), None
                continue
            try:
                obj = json.loads(line)
                qid, text = (obj["_id"], obj["text"]) if fmt == "beir" else (obj["id"],
                                                                             obj["question"])
                final = obj.get("final")
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise QueryFileError(f"{path}:{lineno}: not a {fmt} query line ({exc})") from None
            if not isinstance(qid, str) or not isinstance(text, str):
                raise QueryFileError(f"{path}:{lineno}: query id and text must be strings")
            if final is not None and not isinstance(final, str):
                raise QueryFileError(f"{path}:{lineno}: final answer must be a string")
            yield qid, text, final or None
    finally:
        if fh is not sys.stdin:
            fh.close()


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
    """Write a run's rankings (each ``{doc_id: score}`` in rank order) in *fmt*."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    for qid, ranking in run.items():
        if fmt == "jsonl":
            fh.write(json.dumps({"query_id": qid, "hits": [
                {"doc_id": doc, "score": round(float(score), 6), "rank": rank}
                for rank, (doc, score) in enumerate(ranking.items(), 1)]},
                ensure_ascii=False) + "\n")
        else:
            for rank, (doc, score) in enumerate(ranking.items(), 1):
                fh.write(f"{qid} Q0 {doc} {rank} {float(score):.6f} {tag}\n")


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

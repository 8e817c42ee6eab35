"""Streaming corpus loaders: our JSONL records, BEIR ``corpus.jsonl``, folders of MathML files.

Every loader yields :class:`~mathcore.records.Record` or :class:`~mathcore.records.Reject`
items one at a time, so a corpus of any size is never held in memory.  Input that cannot be
read as a record (bad JSON, invalid UTF-8, a missing field, an id holding whitespace or a
control character, an oversized line) becomes a ``Reject`` naming the file and line; the loader
carries on with the next one.  A truncated or damaged ``.gz`` file keeps the records read
before the damage and gives one reject naming the file and the line reached.

Formats:

* **records JSONL** (``{"id", "question", "answer", "final"?, "source"?, ...}``): one record a
  line; other fields are kept as metadata.
* **BEIR** ``corpus.jsonl`` (``{"_id", "title"?, "text"}``): ``text`` is the answer side, the
  title is kept as metadata and prefixed to the text the embedder sees.
* **MathML folder**: one record per ``.mml``, ``.xml``, ``.xhtml``, ``.html`` or ``.htm`` file
  (see :func:`read_mathml_file` for the three accepted layouts).

``*.jsonl.gz`` files are read transparently.  Example:
    >>> for item in iter_corpus(["data/sample/records.jsonl"]):  # doctest: +SKIP
    ...     print(item.id)
"""

from __future__ import annotations

import gzip
import json
import os
import re
import zlib
from pathlib import Path
from typing import IO, Iterable, Iterator, NamedTuple, Union

from lxml import etree

from mathcore.mathml import DEFAULT_LIMITS, MATHML_NS, Limits, MathMLError, parse_fragment
from mathcore.records import Derived, Record, RecordError, Reject, derive, id_problem

Item = Union[Record, Reject]
MATHML_SUFFIXES = (".mml", ".xml", ".xhtml", ".html", ".htm")
_RECORD_KEYS = ("id", "question", "answer", "final", "source")
# JSON may escape a lone UTF-16 surrogate ("\ud800"): valid JSON, but not text that UTF-8 or
# SQLite can hold.  Only lines with such an escape are checked.
_SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# What reading a cut or corrupted ``.gz`` file raises (BadGzipFile also for a bad CRC).
_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


class CorpusError(ValueError):
    """A corpus path that cannot be read at all (missing, unknown format)."""


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _bounded_lines(fh: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """Lines of a binary file; a line over *limit* bytes is skipped whole and yields ``None``."""
    while True:
        line = fh.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            # Drain the rest of the oversized line without holding it.
            while True:
                chunk = fh.readline(1 << 20)
                if not chunk or chunk.endswith(b"\n"):
                    break
            yield None
            continue
        yield line


def _json_object(text: str, origin: str) -> dict | Reject:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return Reject(origin, f"invalid JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        return Reject(origin, "invalid JSON: nested too deeply")
    if not isinstance(obj, dict):
        return Reject(origin, f"expected a JSON object, got {type(obj).__name__}")
    if _SURROGATE_ESCAPE_RE.search(text):
        bad = _SURROGATE_RE.search(json.dumps(obj, ensure_ascii=False))
        if bad:
            rid = _id_of(obj)
            return Reject(origin, f"invalid JSON string: unpaired surrogate "
                                  f"\\u{ord(bad.group()):04x} is not a Unicode character",
                          None if rid is None or _SURROGATE_RE.search(rid) else rid)
    return obj


def _str_field(obj: dict, key: str, origin: str, required: bool) -> str | None | Reject:
    value = obj.get(key)
    if value is None:
        return Reject(origin, f"missing {key!r}", _id_of(obj)) if required else None
    if not isinstance(value, str):
        return Reject(origin, f"{key!r} must be a string, got {type(value).__name__}", _id_of(obj))
    return value


def _id_of(obj: dict) -> str | None:
    value = obj.get("id", obj.get("_id"))
    return value if isinstance(value, str) else None


class Unit(NamedTuple):
    """One unit of input as read from disk, not yet parsed: a JSONL line or a MathML file.

    Reading units is cheap and sequential; parsing them (:func:`parse_unit`) is the costly part
    and can run in other processes.
    """

    kind: str  # "records" | "beir" | "file"
    origin: str  # "path:line" or the file's path
    position: int  # line number, or file number within a folder (1-based)
    source: str  # the corpus name used when the record does not give one
    payload: bytes | None  # the raw line; None for a file (read by the parser)
    error: str | None = None  # set when the unit was refused while reading


def _jsonl_units(path: Path, kind: str, limits: Limits, start: int) -> Iterator[Unit]:
    if kind == "beir":
        source = path.parent.name if path.name.startswith("corpus.") else path.name.split(".")[0]
    else:
        source = path.name.split(".")[0]
    with _open(path) as fh:
        lineno = 0
        try:
            for lineno, raw in enumerate(_bounded_lines(fh, limits.max_bytes), 1):
                if lineno <= start:
                    continue
                origin = f"{path}:{lineno}"
                if raw is None:
                    yield Unit(kind, origin, lineno, source, None,
                               f"line longer than the limit of {limits.max_bytes} bytes")
                elif raw.strip():
                    yield Unit(kind, origin, lineno, source, raw)
        except _GZIP_ERRORS as exc:
            # The lines read so far are good; the rest of the file cannot be read.  One reject,
            # at the line where reading stopped (a resumed load does not report it twice).
            if lineno + 1 > start:
                yield Unit(kind, f"{path}:{lineno + 1}", lineno + 1, source, None,
                           f"truncated or damaged gzip ({exc}): the records after line {lineno} "
                           "are lost; the file must be re-exported")


def _parse_json_line(unit: Unit) -> dict | Reject:
    try:
        text = unit.payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Reject(unit.origin, f"invalid UTF-8 at byte {exc.start}: {exc.reason}")
    if unit.position == 1 and text.startswith("\ufeff"):  # a byte order mark (Windows tools)
        text = text[1:]
    return _json_object(text, unit.origin)


def _record_from_json(obj: dict, unit: Unit) -> Item:
    origin = unit.origin
    fields = {}
    for key, required in (("id", True), ("answer", True), ("question", False),
                          ("final", False), ("source", False)):
        value = _str_field(obj, key, origin, required)
        if isinstance(value, Reject):
            return value
        fields[key] = value
    meta = {k: v for k, v in obj.items() if k not in _RECORD_KEYS}
    return Record(id=fields["id"], question=fields["question"] or "", answer=fields["answer"],
                  final=fields["final"], source=fields["source"] or unit.source, meta=meta,
                  origin=origin)


def _record_from_beir(obj: dict, unit: Unit) -> Item:
    origin = unit.origin
    rid = obj.get("_id")
    if not isinstance(rid, str) or not rid.strip():
        return Reject(origin, "missing '_id'")
    body = _str_field(obj, "text", origin, True)
    title = _str_field(obj, "title", origin, False)
    bad = next((v for v in (body, title) if isinstance(v, Reject)), None)
    if bad is not None:
        return Reject(origin, bad.reason, rid)
    meta = {k: v for k, v in obj.items() if k not in ("_id", "text")}
    if not title:
        meta.pop("title", None)
    return Record(id=rid, question="", answer=body, source=unit.source, meta=meta, origin=origin)


def parse_unit(unit: Unit, limits: Limits = DEFAULT_LIMITS) -> Item:
    """Turn one unit of input into a record, or a reject that says why not."""
    item = _parse_unit(unit, limits)
    if isinstance(item, Record) and item.id.strip():  # a blank id: "missing id" (derive)
        problem = id_problem(item.id)  # the id must fit in a column of a TREC run file
        if problem:
            return Reject(item.origin, problem, item.id)
    return item


def _parse_unit(unit: Unit, limits: Limits) -> Item:
    if unit.error is not None:
        return Reject(unit.origin, unit.error)
    if unit.kind == "file":
        try:
            return read_mathml_file(Path(unit.origin), limits)
        except MathMLError as exc:
            return Reject(unit.origin, str(exc))
        except OSError as exc:
            return Reject(unit.origin, f"cannot read: {exc.strerror}")
    obj = _parse_json_line(unit)
    if isinstance(obj, Reject):
        return obj
    return _record_from_beir(obj, unit) if unit.kind == "beir" else _record_from_json(obj, unit)


def derive_unit(unit: Unit, limits: Limits = DEFAULT_LIMITS) -> tuple[Record, Derived] | Reject:
    """Parse one unit and build its derived forms, or a reject that says why not."""
    item = parse_unit(unit, limits)
    if isinstance(item, Reject):
        return item
    try:
        return item, derive(item, limits)
    except RecordError as exc:
        return Reject(item.origin, str(exc), item.id)


def load_jsonl(path: Path, limits: Limits = DEFAULT_LIMITS, start: int = 0) -> Iterator[Item]:
    """Records from our JSONL format; lines up to *start* (1-based, inclusive) are skipped."""
    for unit in _jsonl_units(Path(path), "records", limits, start):
        yield parse_unit(unit, limits)


def load_beir(path: Path, limits: Limits = DEFAULT_LIMITS, start: int = 0) -> Iterator[Item]:
    """Records from a BEIR ``corpus.jsonl``: ``text`` is the answer, ``title`` metadata."""
    for unit in _jsonl_units(Path(path), "beir", limits, start):
        yield parse_unit(unit, limits)


# --- MathML files ---------------------------------------------------------------------------

_SECTION_ATTRS = ("data-mathmatch", "data-field", "class")
_HIDDEN_RE = re.compile(r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>", re.DOTALL)
# The attributes of a start tag: a quoted value may hold ">".
_ATTRS = r"""(?:[^>"']|"[^"]*"|'[^']*')*?"""
_FIELDS = ("question", "answer", "final")


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _inner_source(text: str, el: etree._Element, field: str) -> str:
    """The exact source text between an element's start and end tags.

    lxml does not keep byte offsets, so the span is found again in the source: the n-th
    element with this field's tag (or marker) in document order.
    """
    # Comments and CDATA may mention tags; blank them (same length) before searching.
    text_scan = _HIDDEN_RE.sub(lambda m: " " * len(m.group(0)), text)
    tag = el.tag.split("}")[-1] if isinstance(el.tag, str) else ""
    prefix = el.prefix + ":" if el.prefix else ""
    open_re = re.compile(rf"<{re.escape(prefix + tag)}(?=[\s>/]){_ATTRS}(/?)>")
    # The position of this element among same-tag elements, in document order.
    root = el.getroottree()
    index = [e for e in root.iter(el.tag)].index(el)
    pos = 0
    for _ in range(index + 1):
        m = open_re.search(text_scan, pos)
        if m is None:
            raise MathMLError(f"cannot locate the {field} section in the source")
        pos = m.end()
    if m.group(1) == "/":
        return ""
    # Same-tag elements may nest (XHTML divs): count depth to find the matching end tag.
    close = f"</{prefix}{tag}"
    depth, cur = 1, pos
    tag_re = re.compile(rf"<(/?){re.escape(prefix + tag)}(?=[\s>/]){_ATTRS}(/?)>")
    for m2 in tag_re.finditer(text_scan, pos):
        if m2.group(1):
            depth -= 1
        elif not m2.group(2):
            depth += 1
        if depth == 0:
            return text[cur:m2.start()]
    raise MathMLError(f"no end tag {close}> for the {field} section")


def read_mathml_file(path: Path, limits: Limits = DEFAULT_LIMITS) -> Record:
    """Read one record from a MathML/XML/XHTML file.

    Three layouts are accepted, tried in this order:

    1. A ``<record id="..." source="...">`` root (any namespace) with ``<question>``,
       ``<answer>`` and optional ``<final>`` children holding text with inline ``<math>``.
    2. XHTML/HTML (well-formed XML) whose sections are marked with
       ``data-mathmatch="question|answer|final"`` (or ``class="question"`` ...); the id is the
       ``<html>`` element's ``data-id`` or ``id``, else the file name without suffix.
    3. A lone ``<math>`` root: the whole file is the answer, the id is the file name.

    Section content is stored exactly as it appears in the file.

    Raises:
        MathMLError: with the reason the file is refused.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise MathMLError(f"file of {size} bytes is over the limit of {limits.max_bytes}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MathMLError(f"invalid UTF-8 at byte {exc.start}: {exc.reason}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    root = parse_fragment(text, limits)
    name = _local(root)
    stem = path.name.split(".")[0]
    if name == "math":
        if etree.QName(root).namespace not in (None, MATHML_NS):
            raise MathMLError("root <math> is not in the MathML namespace")
        # The prolog is not part of the formula: an XML declaration, a bare <!DOCTYPE math>.
        body = re.sub(r"^\s*(?:<\?xml[^>]*\?>\s*)?(?:<!DOCTYPE\s+[\w.:-]+\s*>\s*)?", "", text,
                      flags=re.IGNORECASE)
        return Record(id=stem, question="", answer=body.strip(), source=path.parent.name,
                      origin=str(path))
    sections: dict[str, etree._Element] = {}
    if name == "record":
        for child in root:
            field = _local(child)
            if field in _FIELDS:
                if field in sections:
                    raise MathMLError(f"more than one <{field}> element")
                sections[field] = child
        rid = root.get("id") or stem
        source = root.get("source") or path.parent.name
    elif name == "html":
        for el in root.iter():
            marker = next((el.get(a) for a in _SECTION_ATTRS if el.get(a) in _FIELDS), None)
            if marker:
                if marker in sections:
                    raise MathMLError(f"more than one {marker!r} section")
                sections[marker] = el
        rid = root.get("data-id") or root.get("id") or stem
        source = root.get("data-source") or path.parent.name
    else:
        raise MathMLError(f"root element <{name}> is neither <record>, <html> nor MathML <math>")
    if "answer" not in sections:
        raise MathMLError("no answer section")
    fields = {f: _inner_source(text, el, f).strip() for f, el in sections.items()}
    meta = {k: v for k, v in root.attrib.items() if k not in ("id", "source", "data-id")}
    return Record(id=rid, question=fields.get("question", ""), answer=fields["answer"],
                  final=fields.get("final"), source=source, meta=meta, origin=str(path))


def _folder_units(path: Path, start: int) -> Iterator[Unit]:
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()
                   and p.suffix.lower() in MATHML_SUFFIXES)
    for number, file in enumerate(files, 1):
        if number > start:
            name = str(file)
            if _SURROGATE_RE.search(name):
                # Bytes of another encoding in the name (os.fsdecode made them surrogates):
                # neither an id nor an origin can be made of it.
                shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                yield Unit("file", shown, number, path.name, None, "file name is not valid UTF-8")
                continue
            yield Unit("file", name, number, path.name, None)


def load_folder(path: Path, limits: Limits = DEFAULT_LIMITS, start: int = 0) -> Iterator[Item]:
    """Records from a folder of MathML files (recursively, sorted by path for a stable order).

    Symbolic links are not followed (input never makes us read a file outside the folder).
    *start* skips the first *start* files (used when a build resumes).
    """
    for unit in _folder_units(Path(path), start):
        yield parse_unit(unit, limits)


def detect_format(path: Path) -> str:
    """``records``, ``beir`` or ``folder`` for a corpus path.

    Raises:
        CorpusError: when the path is missing or of no known format.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "corpus.jsonl").is_file():
            return "beir-dir"
        return "folder"
    if not path.is_file():
        raise CorpusError(f"{path}: no such file or directory")
    if path.suffix.lower() in MATHML_SUFFIXES:
        return "file"
    if not (path.name.endswith(".jsonl") or path.name.endswith(".jsonl.gz")
            or path.suffix == ".json"):
        raise CorpusError(f"{path}: unknown corpus format (expected .jsonl, .jsonl.gz, a MathML "
                          "file or a folder)")
    try:
        with _open(path) as fh:
            for raw in _bounded_lines(fh, 1 << 20):
                if raw is None or not raw.strip():
                    continue
                try:
                    obj = json.loads(raw.removeprefix(b"\xef\xbb\xbf"))
                except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                    continue
                if isinstance(obj, dict):
                    return "beir" if "_id" in obj and "id" not in obj else "records"
    except _GZIP_ERRORS:
        pass  # damaged before its first record: loading it reports the damage as a reject
    return "records"


def iter_units(path: Path, limits: Limits = DEFAULT_LIMITS, start: int = 0) -> Iterator[Unit]:
    """Units of input of one corpus path in a stable order, past position *start*."""
    path = Path(path)
    kind = detect_format(path)
    if kind in ("records", "beir"):
        return _jsonl_units(path, kind, limits, start)
    if kind == "beir-dir":
        return _jsonl_units(path / "corpus.jsonl", "beir", limits, start)
    if kind == "file":
        return iter([Unit("file", str(path), 1, path.parent.name, None)] if start < 1 else [])
    return _folder_units(path, start)


def iter_source(path: Path, limits: Limits = DEFAULT_LIMITS, start: int = 0) -> Iterator[Item]:
    """Records and rejects of one corpus path, in a stable order."""
    for unit in iter_units(path, limits, start):
        yield parse_unit(unit, limits)


def iter_corpus(paths: Iterable[Path], limits: Limits = DEFAULT_LIMITS) -> Iterator[Item]:
    """Items of several corpus paths, one after the other."""
    for path in paths:
        yield from iter_source(Path(path), limits)


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, or of a folder's MathML files (names and contents, in order)."""
    import hashlib

    h = hashlib.sha256()
    path = Path(path)
    # The files _folder_units reads: symbolic links are not followed here either.
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and not p.is_symlink()
        and p.suffix.lower() in MATHML_SUFFIXES)
    for f in files:
        if path.is_dir():
            h.update(os.fsencode(f.relative_to(path)) + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(chunk), b""):
                h.update(block)
    return h.hexdigest()


__all__ = ["CorpusError", "Item", "Unit", "detect_format", "file_digest", "iter_corpus",
           "iter_source", "iter_units", "load_beir", "load_folder", "load_jsonl", "parse_unit",
           "read_mathml_file"]

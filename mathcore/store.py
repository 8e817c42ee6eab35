"""The record store: one SQLite file (WAL) inside an index folder.

Records keep their original text byte for byte beside the derived fields.  Each record has an
integer ``rowid`` (``AUTOINCREMENT``, so a removed row's id is never reused): the vector and
BM25 indexes use it as their document id.  Rejected input is kept in the same file, so a build
that is interrupted and resumed neither loses nor doubles a reject.

The store also keeps an order-independent checksum of its content (the sum of SHA-256 digests of
``id`` and ``answer``), updated in the same transaction as every insert or delete: an index
built over the store records it, and refuses to load once the store has changed.

Example:
    >>> store = Store(Path("idx/records.sqlite"))  # doctest: +SKIP
    >>> store.count()  # doctest: +SKIP
    14192
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from mathcore.records import Derived, Record, Reject

SCHEMA_VERSION = 1
_MOD = 1 << 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    origin TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    final TEXT,
    meta TEXT NOT NULL,
    question_text TEXT NOT NULL,
    answer_text TEXT NOT NULL,
    final_text TEXT NOT NULL,
    digest BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS records_source ON records(source);
CREATE TABLE IF NOT EXISTS rejects (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    id TEXT,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    format TEXT NOT NULL,
    position INTEGER NOT NULL DEFAULT 0,
    records INTEGER NOT NULL DEFAULT 0,
    rejects INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    seconds REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class StoreError(RuntimeError):
    """The store file is missing, damaged, of another version, or cannot be written."""


def read_only_uri(path: Path) -> str:
    """The SQLite URI that opens *path* read-only (any character of the path quoted)."""
    return Path(path).absolute().as_uri() + "?mode=ro"


def _open_error(path: Path, exc: sqlite3.DatabaseError) -> str:
    """What to tell about a store SQLite could not open or read."""
    if getattr(exc, "sqlite_errorname", "") in ("SQLITE_NOTADB", "SQLITE_CORRUPT") \
            or "no such table" in str(exc):
        return (f"{path}: not a readable record store ({exc}): the file is damaged; it holds "
                "the records, which no other part of the index can restore: rebuild the index "
                "into a new folder with `mathmatch index build CORPUS... --out NEW_DIR`")
    return f"{path}: cannot open the record store ({exc})"


@dataclass(frozen=True)
class StoredRecord:
    """A record as kept in the store, with its row id and derived fields."""

    rowid: int
    record: Record
    question_text: str
    answer_text: str
    final_text: str


def record_digest(record_id: str, answer: str) -> bytes:
    return hashlib.sha256(record_id.encode() + b"\0" + answer.encode()).digest()


ROW_COLUMNS = ("id", "source", "origin", "question", "answer", "final", "meta", "question_text",
               "answer_text", "final_text", "digest")
_INSERT = (f"INSERT INTO records ({', '.join(ROW_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(ROW_COLUMNS))})")


def record_row(rec: Record, der: Derived) -> tuple:
    """The row a record is stored as (plain values, cheap to send between processes)."""
    return (rec.id, rec.source, rec.origin, rec.question, rec.answer, rec.final,
            json.dumps(dict(rec.meta), ensure_ascii=False, sort_keys=True),
            der.question_text, der.answer_text, der.final_text,
            record_digest(rec.id, rec.answer))


class Store:
    """Records of an index, in SQLite.

    Args:
        path: the SQLite file; created (with its folder) unless *readonly*.
        readonly: open for reading only; a missing file is an error.
    """

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly and not self.path.is_file():
            raise StoreError(f"{self.path}: no record store here (build an index first)")
        try:
            self._open(readonly)
        except BaseException as exc:
            if "_db" in self.__dict__:
                self._db.close()
            if isinstance(exc, sqlite3.DatabaseError):  # OperationalError included
                raise StoreError(_open_error(self.path, exc)) from exc
            raise

    def _open(self, readonly: bool) -> None:
        if readonly:
            self._db = sqlite3.connect(read_only_uri(self.path), uri=True)
            # Connecting reads nothing: this first read fails on a file that is no store.
            version = self._state("schema_version")
            if version is not None and int(version) != SCHEMA_VERSION:
                raise StoreError(f"{self.path}: store schema {version}, this mathmatch reads "
                                 f"{SCHEMA_VERSION}; rebuild the index")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            version = self._state("schema_version")
            if version is None:
                self._set_state("schema_version", str(SCHEMA_VERSION))
                self._set_state("checksum", "0")
                self._db.commit()
            elif int(version) != SCHEMA_VERSION:
                raise StoreError(f"{self.path}: store schema {version}, this mathmatch reads "
                                 f"{SCHEMA_VERSION}; rebuild the index")
        self._db.execute("PRAGMA foreign_keys=ON")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- state -----------------------------------------------------------------------------
    def _state(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _set_state(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all."""
        try:
            yield
        except BaseException:
            self._db.rollback()
            raise
        self._db.commit()

    def checksum(self) -> str:
        """Hex checksum of the current content (ids and answers), independent of order."""
        return f"{int(self._state('checksum') or '0'):064x}"

    def _bump_checksum(self, digests: Iterable[bytes], sign: int) -> None:
        total = int(self._state("checksum") or "0")
        for d in digests:
            total = (total + sign * int.from_bytes(d, "big")) % _MOD
        self._set_state("checksum", str(total))

    # --- writing ---------------------------------------------------------------------------
    def insert(self, items: Sequence[tuple[Record, Derived]],
               replace: bool = False) -> list[Reject]:
        """Insert records with their derived forms; see :meth:`insert_rows`."""
        return self.insert_rows([record_row(rec, der) for rec, der in items], replace)

    def insert_rows(self, rows: Sequence[tuple], replace: bool = False) -> list[Reject]:
        """Insert rows made by :func:`record_row` (inside the caller's transaction).

        Args:
            rows: one tuple per record, in the order of ``ROW_COLUMNS``.
            replace: a record whose id exists replaces the old one (which gets a new rowid,
                so indexes built on the old one see it removed and the new one added).

        Returns:
            Rejects for duplicate ids, naming where the first copy came from.
        """
        rejects: list[Reject] = []
        added: list[bytes] = []
        removed: list[bytes] = []
        cur = self._db.cursor()
        for row in rows:
            try:
                cur.execute(_INSERT, row)
            except sqlite3.IntegrityError:
                old = cur.execute("SELECT rowid, origin, digest FROM records WHERE id=?",
                                  (row[0],)).fetchone()
                if old is None:
                    raise
                if not replace:
                    rejects.append(Reject(row[2], f"duplicate id {row[0]!r}: already loaded "
                                          f"from {old[1]} (`mathmatch index add --replace` "
                                          "replaces it)", row[0]))
                    continue
                cur.execute("DELETE FROM records WHERE rowid=?", (old[0],))
                removed.append(old[2])
                cur.execute(_INSERT, row)
            added.append(row[-1])
        self._bump_checksum(added, +1)
        self._bump_checksum(removed, -1)
        return rejects

    def add_rejects(self, rejects: Iterable[Reject]) -> int:
        rows = [(r.origin, r.id, r.reason) for r in rejects]
        self._db.executemany("INSERT INTO rejects (origin, id, reason) VALUES (?,?,?)", rows)
        return len(rows)

    def remove(self, ids: Iterable[str]) -> list[int]:
        """Delete records by id (inside the caller's transaction); returns their rowids."""
        rowids, digests = [], []
        for rid in ids:
            row = self._db.execute("SELECT rowid, digest FROM records WHERE id=?",
                                   (rid,)).fetchone()
            if row is not None:
                self._db.execute("DELETE FROM records WHERE rowid=?", (row[0],))
                rowids.append(row[0])
                digests.append(row[1])
        self._bump_checksum(digests, -1)
        return rowids

    # --- sources (resumable builds) --------------------------------------------------------
    def source(self, path: str) -> dict | None:
        row = self._db.execute("SELECT path, sha256, size, format, position, records, rejects, "
                               "done, seconds FROM sources WHERE path=?", (path,)).fetchone()
        return dict(zip(_SOURCE_COLS, row, strict=False)) if row else None

    def sources(self) -> list[dict]:
        rows = self._db.execute("SELECT path, sha256, size, format, position, records, rejects, "
                                "done, seconds FROM sources ORDER BY rowid").fetchall()
        return [dict(zip(_SOURCE_COLS, r, strict=False)) for r in rows]

    def start_source(self, path: str, sha256: str, size: int, fmt: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO sources (path, sha256, size, format) "
                         "VALUES (?,?,?,?)", (path, sha256, size, fmt))

    def forget_source(self, path: str) -> None:
        """Forget a source and the rejects it gave (it is about to be loaded again)."""
        self._db.execute("DELETE FROM sources WHERE path=?", (path,))
        # Its rejects' origins are the path itself, "path:line" or, for a folder, "path/file".
        self._db.execute("DELETE FROM rejects WHERE origin=? OR substr(origin, 1, ?) IN (?, ?)",
                         (path, len(path) + 1, path + ":", path + "/"))

    def advance_source(self, path: str, position: int, records: int, rejects: int,
                       seconds: float, done: bool = False) -> None:
        self._db.execute("UPDATE sources SET position=?, records=records+?, rejects=rejects+?, "
                         "seconds=seconds+?, done=? WHERE path=?",
                         (position, records, rejects, seconds, int(done), path))

    def count_from_source(self, path: str) -> int:
        """How many stored records came from the source *path* (by their origins)."""
        return self._db.execute("SELECT COUNT(*) FROM records WHERE origin=? OR "
                                "substr(origin, 1, ?) IN (?, ?)",
                                (path, len(path) + 1, path + ":", path + "/")).fetchone()[0]

    def digests_of(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The content digests of the stored records among *ids* (absent ids are left out)."""
        out: dict[str, bytes] = {}
        for start in range(0, len(ids), 900):
            chunk = list(ids[start:start + 900])
            marks = ",".join("?" * len(chunk))
            out.update(self._db.execute(f"SELECT id, digest FROM records WHERE id IN ({marks})",
                                        chunk))
        return out

    # --- reading ---------------------------------------------------------------------------
    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0]

    def count_by_source(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT source, COUNT(*) FROM records GROUP BY source "
                                     "ORDER BY source"))

    def reject_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM rejects").fetchone()[0]

    def iter_rejects(self) -> Iterator[Reject]:
        for origin, rid, reason in self._db.execute(
                "SELECT origin, id, reason FROM rejects ORDER BY n"):
            yield Reject(origin, reason, rid)

    def rowids(self) -> list[int]:
        return [r[0] for r in self._db.execute("SELECT rowid FROM records ORDER BY rowid")]

    def iter_column(self, column: str, after: int = 0,
                    batch: int = 4096) -> Iterator[list[tuple[int, str]]]:
        """Batches of ``(rowid, value)`` of one derived column, in rowid order, past *after*."""
        if column not in ("answer_text", "question_text", "final_text", "id", "source"):
            raise ValueError(f"unknown column {column!r}")
        last = after
        while True:
            rows = self._db.execute(f"SELECT rowid, {column} FROM records WHERE rowid>? "
                                    "ORDER BY rowid LIMIT ?", (last, batch)).fetchall()
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    def get(self, rowids: Sequence[int]) -> list[StoredRecord]:
        """Records by rowid, in the order asked; unknown rowids are skipped."""
        found: dict[int, StoredRecord] = {}
        for start in range(0, len(rowids), 900):
            chunk = [int(r) for r in rowids[start:start + 900]]
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(f"SELECT {_RECORD_COLS} FROM records WHERE rowid IN "
                                        f"({marks})", chunk):
                found[row[0]] = _stored(row)
        return [found[r] for r in rowids if r in found]

    def texts(self, rowids: Sequence[int], column: str = "answer_text",
              missing: str | None = None) -> list[str]:
        """One derived text column for the given rowids, in the order asked; a rowid not in
        the store gives *missing* (a reader of an older committed state meets rows removed
        since) or, when *missing* is None, an error.

        Raises:
            KeyError: naming a rowid that is not in the store (*missing* None).
        """
        if column not in ("answer_text", "question_text", "final_text"):
            raise ValueError(f"unknown text column {column!r}")
        found: dict[int, str] = {}
        for start in range(0, len(rowids), 900):
            chunk = [int(r) for r in rowids[start:start + 900]]
            marks = ",".join("?" * len(chunk))
            found.update(self._db.execute(
                f"SELECT rowid, {column} FROM records WHERE rowid IN ({marks})", chunk))
        if missing is not None:
            return [found.get(r, missing) for r in rowids]
        absent = [r for r in rowids if r not in found]
        if absent:
            raise KeyError(f"rowid {absent[0]} is not in the store {self.path}")
        return [found[r] for r in rowids]

    def by_id(self, record_id: str) -> StoredRecord | None:
        row = self._db.execute(f"SELECT {_RECORD_COLS} FROM records WHERE id=?",
                               (record_id,)).fetchone()
        return _stored(row) if row else None

    def ids_of(self, rowids: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for start in range(0, len(rowids), 900):
            chunk = [int(r) for r in rowids[start:start + 900]]
            marks = ",".join("?" * len(chunk))
            out.update(self._db.execute(f"SELECT rowid, id FROM records WHERE rowid IN ({marks})",
                                        chunk))
        return out

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))


_SOURCE_COLS = ("path", "sha256", "size", "format", "position", "records", "rejects", "done",
                "seconds")
_RECORD_COLS = ("rowid, id, question, answer, final, source, meta, origin, question_text, "
                "answer_text, final_text")


def _stored(row: tuple) -> StoredRecord:
    rec = Record(id=row[1], question=row[2], answer=row[3], final=row[4], source=row[5],
                 meta=json.loads(row[6]), origin=row[7])
    return StoredRecord(row[0], rec, row[8], row[9], row[10])

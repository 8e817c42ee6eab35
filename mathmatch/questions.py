"""A second vector set of an index folder: the records' *questions*, for finding duplicates.

Matching searches the answers; duplicate detection compares questions with questions. The
question vectors live in ``DIR/questions/`` (the same open files as ``dense/``: ``vectors.npy``,
``ids.npy``, ``vector_index.json``) and a ``questions`` section of ``manifest.json`` records the
encoder and the store checksum they were made from. They are built on first use -- every
record with a non-empty question, encoded with the index's own encoder -- and rebuilt when the
store or the encoder changed.

Example:
    >>> qi = QuestionIndex.open(Path("idx"))  # doctest: +SKIP
    >>> scores, rowids = qi.search(["What is 2+2?"], k=5)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from mathcore.store import Store
from mathmatch.build import STORE_FILE
from mathmatch.manifest import ManifestError, load_or_new, write_manifest

logger = logging.getLogger(__name__)

QUESTIONS_DIR = "questions"
SECTION = "questions"


def _encoder_name(manifest: dict, encoder: str | None) -> str | None:
    if encoder is not None:
        return encoder
    dense = manifest.get("dense")
    return dense.get("encoder") if dense else None


def _current(section: dict | None, store: Store, checksum: str, folder: Path) -> bool:
    return bool(section) and section.get("corpus_checksum") == store.checksum() \
        and section.get("encoder_checksum") == checksum \
        and (folder / "vector_index.json").is_file()


def build_question_vectors(index_dir: Path, store: Store, encoder: Any, progress: bool = False,
                           chunk_rows: int = 1024) -> dict:
    """Encode every stored question and save them in ``DIR/questions/``.

    Returns:
        The manifest section written (encoder, count, corpus checksum, timing).
    """
    from index import VectorIndex

    t0 = time.perf_counter()
    rowids: list[int] = []
    texts: list[str] = []
    for batch in store.iter_column("question_text"):
        for rowid, text in batch:
            if text and text.strip():
                rowids.append(rowid)
                texts.append(text)
    logger.info("encoding %d questions of %s (first use of duplicate search; saved for later)",
                len(texts), index_dir)
    index = VectorIndex(encoder.dim)
    bar = tqdm(total=len(texts), unit="q", desc="questions", disable=not progress)
    for start in range(0, len(texts), chunk_rows):
        vecs = encoder.encode(texts[start:start + chunk_rows])
        index.add(np.asarray(rowids[start:start + chunk_rows], dtype=np.int64), vecs)
        bar.update(len(vecs))
    bar.close()
    folder = Path(index_dir) / QUESTIONS_DIR
    if folder.exists():
        shutil.rmtree(folder)
    index.save(folder)
    spec = encoder.spec
    return {"encoder": spec.name, "encoder_checksum": spec.checksum, "dim": index.dim,
            "metric": "inner_product", "kind": "exact", "count": len(index),
            "corpus_checksum": store.checksum(),
            "seconds": round(time.perf_counter() - t0, 3)}


class QuestionIndex:
    """The question vectors of an index folder, with the encoder that made them.

    Use :meth:`open`; :meth:`search` returns store row ids, :meth:`similarity` compares
    query texts with given rows.
    """

    def __init__(self, index_dir: Path, store: Store, vectors: Any, encoder: Any) -> None:
        self.index_dir, self.store, self.vectors, self.encoder = index_dir, store, vectors, encoder

    @classmethod
    def open(cls, index_dir: Path, encoder: str | None = None, device: str = "cpu",
             build: bool = True, progress: bool = False, store: Store | None = None
             ) -> QuestionIndex:
        """Load (building or refreshing when needed) the question vectors of *index_dir*.

        Args:
            index_dir: an index folder.
            encoder: a sentence-transformers folder (default: the index's dense encoder, or
                the packaged MiniLM for an index without vectors).
            device: ``cpu``, ``cuda`` or ``auto`` for encoding.
            build: encode the questions when the vectors are missing or out of date; when
                False that is an error.
            progress: show a progress bar while encoding.
            store: the index's store, already open (default: opened read-only here).

        Raises:
            ManifestError: not an index folder, or (``build=False``) no current vectors.
        """
        from index import VectorIndex
        from retriever.encoder import Encoder

        index_dir = Path(index_dir)
        manifest = load_or_new(index_dir)
        if not manifest:
            raise ManifestError(f"{index_dir}: not an index folder (no manifest.json)")
        store = store or Store(index_dir / STORE_FILE, readonly=True)
        enc = Encoder(_encoder_name(manifest, encoder), device=device)
        folder = index_dir / QUESTIONS_DIR
        section = manifest.get(SECTION)
        if not _current(section, store, enc.spec.checksum, folder):
            if not build:
                raise ManifestError(f"{index_dir}: no current question vectors; run "
                                    f"`mathmatch dedup {index_dir}` once to build them")
            if store.count() == 0:
                raise ManifestError(f"{index_dir}: the index holds no records")
            if not (folder.parent / STORE_FILE).is_file():
                raise ManifestError(f"{index_dir}: no record store")
            section = build_question_vectors(index_dir, store, enc, progress=progress)
            manifest = load_or_new(index_dir)  # re-read: keep what others wrote meanwhile
            manifest[SECTION] = section
            write_manifest(index_dir, manifest)
        vectors = VectorIndex.load(folder, mmap=True)
        return cls(index_dir, store, vectors, enc)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised vectors of linear texts."""
        return self.encoder.encode(list(texts))

    def search_vectors(self, vecs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores [n, k], rowids [n, k])`` of the nearest stored questions; -1 pads."""
        return self.vectors.search(vecs, k)

    def search(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Nearest stored questions of linear query texts (cosine, rowids)."""
        return self.search_vectors(self.encode(texts), k)

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rowids, vectors)`` of every stored question."""
        ids = self.vectors.ids()
        return ids, self.vectors.vectors_of(ids)

    def close(self) -> None:
        self.store.close()

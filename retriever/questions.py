"""Searching the question vectors of an index folder (duplicate search, the tie-break's
duplicates): :class:`QuestionIndex` opens them, building or refreshing them first through
:func:`index.questions.build_question_vectors` when they are missing or out of date.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from index.layout import STORE_FILE, part_dir
from index.lock import WriteLock
from index.manifest import ManifestError, load_or_new, read_manifest
from index.questions import SECTION, build_question_vectors, current, encoder_name
from mathcore.store import Store

logger = logging.getLogger(__name__)

class QuestionIndex:
    """The question vectors of an index folder, with the encoder that made them.

    Use :meth:`open`; :meth:`search` returns store row ids, :meth:`similarity` compares
    query texts with given rows.
    """

    def __init__(self, index_dir: Path, store: Store, vectors: Any, encoder: Any) -> None:
        self.index_dir, self.store, self.vectors, self.encoder = index_dir, store, vectors, encoder

    @classmethod
    def open(cls, index_dir: Path, encoder: str | None = None, device: str = "cpu",
             build: bool = True, progress: bool = False, store: Store | None = None,
             wait: float = 0.0, backend: str = "auto") -> QuestionIndex:
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
            wait: seconds to wait for another writer of the folder before building.
            backend: how questions are encoded (:mod:`retriever.backends`; ``auto``: the
                fastest of the family of the question vectors there, else of the answers').

        Raises:
            ManifestError: not an index folder, or (``build=False``) no current vectors.
        """
        from index import VectorIndex
        from retriever.backends import index_encoder

        index_dir = Path(index_dir)
        manifest = load_or_new(index_dir)
        if not manifest:
            raise ManifestError(f"{index_dir}: not an index folder (no manifest.json)")
        store = store or Store(index_dir / STORE_FILE, readonly=True)
        # Queries meet the question vectors there (or, for new ones, the answers' vectors).
        made = manifest.get(SECTION) or manifest.get("dense")
        enc = index_encoder(encoder_name(manifest, encoder), device,
                            made.get("backend", "torch") if made else None, backend,
                            where=f"{index_dir}'s question vectors")
        committed = manifest.get("store", {}).get("checksum")
        folder = part_dir(index_dir, manifest, SECTION)
        if not current(manifest.get(SECTION), committed, enc.spec.checksum, folder):
            if not build:
                raise ManifestError(f"{index_dir}: no current question vectors; run "
                                    f"`mathmatch dedup {index_dir}` once to build them")
            if not manifest.get("store", {}).get("records"):
                raise ManifestError(f"{index_dir}: the index holds no records")
            if not (index_dir / STORE_FILE).is_file():
                raise ManifestError(f"{index_dir}: no record store")
            manifest = _build_questions(index_dir, enc, wait, progress)
            folder = part_dir(index_dir, manifest, SECTION)
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


def _build_questions(index_dir: Path, enc: Any, wait: float, progress: bool) -> dict:
    """Encode the questions under the folder's write lock and commit them; returns the
    manifest committed (another writer may have built them while this one waited)."""
    from index.build import commit

    with WriteLock(index_dir, wait=wait):
        manifest = read_manifest(index_dir)
        section = manifest.get(SECTION)
        committed = manifest["store"]["checksum"]
        if current(section, committed, enc.spec.checksum, part_dir(index_dir, manifest,
                                                                     SECTION)):
            return manifest
        with Store(index_dir / STORE_FILE) as store:
            if store.checksum() != committed:
                raise ManifestError(
                    f"{index_dir}: its store holds records its manifest does not name (an "
                    "`index add` or `index build` was interrupted); run it again to finish, "
                    "then find duplicates")
            manifest[SECTION] = build_question_vectors(index_dir, store, enc, section,
                                                       progress=progress)
        return commit(index_dir, manifest)

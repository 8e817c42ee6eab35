"""A second vector set of an index folder: the records' *questions*, for finding duplicates.

Matching searches the answers; duplicate detection compares questions with questions. The
question vectors live in ``DIR/questions/`` (the same open files as ``dense/``: ``vectors.npy``,
``ids.npy``, ``vector_index.json``) and a ``questions`` section of ``manifest.json`` records the
encoder and the store checksum they were made from. They are built on first use -- every
record with a non-empty question, encoded with the index's own encoder -- by the same
resumable path as the answers' vectors: when the store changed only the difference is encoded;
when the encoder changed they are encoded again.

Example:
    >>> qi = QuestionIndex.open(Path("idx"))  # doctest: +SKIP
    >>> scores, rowids = qi.search(["What is 2+2?"], k=5)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from index.parts import update_dense
from mathcore.store import Store

logger = logging.getLogger(__name__)

SECTION = "questions"


def encoder_name(manifest: dict, encoder: str | None) -> str | None:
    if encoder is not None:
        return encoder
    dense = manifest.get("dense")
    return dense.get("encoder") if dense else None


def current(section: dict | None, store_checksum: str, checksum: str, folder: Path) -> bool:
    """Whether the question vectors *section* (in *folder*) were made from the store state of
    *store_checksum* by the encoder of *checksum*."""
    return bool(section) and section.get("corpus_checksum") == store_checksum \
        and section.get("encoder_checksum") == checksum \
        and (folder / "vector_index.json").is_file()


def build_question_vectors(index_dir: Path, store: Store, encoder: Any, previous: dict | None,
                           progress: bool = False) -> dict:
    """Bring ``DIR/questions/`` up to date with the store: every stored question with a text
    gets a vector (:func:`index.parts.update_dense` over ``question_text``: resumable, and only
    the difference is encoded). Vectors of another encoder are replaced.

    Returns:
        The manifest section to write (encoder, count, corpus checksum, timing).
    """
    if previous and previous.get("encoder_checksum") != encoder.spec.checksum:
        # A new generation folder; the old one goes once the manifest no longer names it.
        logger.info("%s: question vectors of another encoder; encoding them again", index_dir)
        previous = None
    logger.info("encoding the questions of %s (duplicate search; saved for later)", index_dir)
    return update_dense(index_dir, store, encoder, previous, chunk_rows=1024, progress=progress,
                        section_name=SECTION, column="question_text")

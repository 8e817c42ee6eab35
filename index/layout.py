"""The index folder's layout: one name for each file and folder it holds.

An index folder is ``manifest.json`` (the commit point: what the other parts are), the record
store ``records.sqlite``, ``rejects.jsonl``, ``dense/`` (answer vectors, under rowids or,
built with passages, passage ids: :mod:`index.passages`), ``lexical/`` (BM25)
and, once duplicate search has run, ``questions/`` (question vectors).

A writer never changes a part that the manifest names: it writes the new part into a fresh
folder (``dense.3``, ``lexical.3``: the section's name and a generation number), then replaces
the manifest, whose section names that folder in ``dir``.  Readers open what the manifest
names, so they see the last committed state while a writer works (:func:`part_dir`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

MANIFEST = "manifest.json"
STORE_FILE = "records.sqlite"
REJECTS_FILE = "rejects.jsonl"
DENSE_DIR = "dense"
LEXICAL_DIR = "lexical"
QUESTIONS_DIR = "questions"
# Chunks of vectors encoded but not yet in the vector index: an interrupted build resumes here.
PENDING_DIR = "pending"
# The writers' lock (see :mod:`index.lock`): who holds it is written inside.
LOCK_FILE = ".lock"

# The manifest section of each vector or BM25 part, and its folder's name before generations.
SECTIONS = {"dense": DENSE_DIR, "lexical": LEXICAL_DIR, "questions": QUESTIONS_DIR}


def part_dir(index_dir: Path | str, manifest: Mapping[str, Any], section: str) -> Path:
    """The folder of *section* (``dense``, ``lexical``, ``questions``) as *manifest* commits
    it: the section's ``dir``, or for an index written before generations, its plain name."""
    entry = manifest.get(section) or {}
    return Path(index_dir) / entry.get("dir", SECTIONS[section])

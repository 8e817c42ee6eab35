"""Helpers shared by the index modules: input checks, optional imports (FAISS, and how many GPUs
GPU FAISS sees), atomic writes."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# Device choice is mathcore's (one rule for every stage); what the index adds is GPU FAISS.

PAD_ID = -1
"""Id of a padded result slot (fewer than ``k`` hits). Filter results on ``ids >= 0``."""

FORMAT_VERSION = 1

FAISS_INSTALL_HINT = (
    "Install it with `pip install faiss-cpu`. For GPU FAISS use the `gpu` extra instead, which "
    "REPLACES faiss-cpu (never install both): `pip uninstall -y faiss-cpu && pip install "
    'faiss-gpu-cu12` (or `pip install "mathmatch[gpu]"` after the uninstall).'
)

@functools.lru_cache(maxsize=1)
def require_faiss() -> Any:
    """Imports faiss, or explains how to install it.

    Returns:
        The ``faiss`` module.

    Raises:
        ImportError: faiss is not installed; the message carries the install command.
    """
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(f"faiss is needed for this index. {FAISS_INSTALL_HINT}") from exc
    return faiss


def faiss_gpu_count() -> int:
    """Number of GPUs GPU-FAISS can use; 0 when faiss is absent or CPU-only."""
    try:
        faiss = require_faiss()
    except ImportError:
        return 0
    get_num_gpus = getattr(faiss, "get_num_gpus", None)
    return int(get_num_gpus()) if get_num_gpus is not None else 0


def check_ids(ids: Any, what: str = "ids") -> np.ndarray:
    """Validates caller row ids: a 1-D array of non-negative integers, returned as int64."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must be integers (int64 row ids), got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    negative = np.flatnonzero(arr < 0)
    if negative.size:
        raise ValueError(f"{what} must be >= 0 (-1 marks padding); got {int(arr[negative[0]])}")
    return arr


def first_duplicate(ids: np.ndarray) -> int | None:
    """Returns one id that occurs more than once in ``ids``, or None."""
    if ids.size < 2:
        return None
    s = np.sort(ids)
    dup = np.flatnonzero(s[1:] == s[:-1])
    return int(s[dup[0]]) if dup.size else None


def check_k(k: Any) -> int:
    """Validates a result count."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Writes a file through a temporary sibling and renames it into place.

    Renaming keeps any memory map of the previous file valid (it holds the old inode), so an
    index loaded with ``mmap=True`` can be saved back into its own directory.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npy(path: Path, array: np.ndarray) -> None:
    """Saves one array as ``.npy`` (never pickled), atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(array), allow_pickle=False)

    atomic_write(path, write)


def save_json(path: Path, obj: dict) -> None:
    """Saves a dict as sorted, indented JSON, atomically."""

    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    atomic_write(path, write)


def load_json(path: Path, expected_format: str) -> dict:
    """Reads an index parameter file and checks its format name and version.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file is not JSON, or is for another format or a newer version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is this a saved {expected_format} folder?")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if meta.get("format") != expected_format:
        raise ValueError(
            f"{path}: expected format {expected_format!r}, found {meta.get('format')!r}"
        )
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {version!r} is not supported "
            f"(this code reads <= {FORMAT_VERSION})"
        )
    return meta


def load_npy(path: Path, mmap: bool) -> np.ndarray:
    """Loads a ``.npy`` array without pickle, memory-mapped read-only when ``mmap``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)

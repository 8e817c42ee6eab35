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

# What to do about a damaged file of an index folder (the folder is not known down here).
REPAIR_HINT = ("rebuild the index (`mathmatch index build CORPUS... --out NEW_DIR`), or run "
               "`mathmatch index verify DIR`, which says whether the damaged part can be "
               "rebuilt from the index's record store")


class DamagedFileError(ValueError):
    """A file of an index that cannot be read as what it should be.

    The message names the file, says what is wrong (``reason``, also on its own) and how to
    repair it.
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}: the file is damaged; {REPAIR_HINT}")


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
        ValueError: the file is not JSON (:class:`DamagedFileError`), or is for another format
            or a newer version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is this a saved {expected_format} folder? "
                                f"If it is part of an index folder, {REPAIR_HINT}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DamagedFileError(path, f"not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise DamagedFileError(path, f"expected a JSON object, found {type(meta).__name__}")
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


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """The shape and dtype of a ``.npy`` file and the size it should have, from its header
    alone (nothing else is read).

    Returns:
        ``(shape, dtype, expected file size in bytes)``.

    Raises:
        DamagedFileError: when it is not a ``.npy`` file of plain values (a short or garbled
            header, or pickled objects).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                shape = None
            offset = fh.tell()
        if shape is None:  # 3.0 (utf-8 field names), never written here: numpy reads it
            mapped = np.load(path, mmap_mode="r", allow_pickle=False)
            shape, dtype, offset = mapped.shape, mapped.dtype, int(mapped.offset)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise DamagedFileError(path, f"not a readable .npy file ({exc})") from exc
    if dtype.hasobject:
        raise DamagedFileError(path, "holds Python objects (pickle), which mathmatch never "
                                     "writes")
    return tuple(shape), dtype, offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def load_npy(path: Path, mmap: bool) -> np.ndarray:
    """Loads a ``.npy`` array without pickle, memory-mapped read-only when ``mmap``.

    Raises:
        FileNotFoundError: the file is missing.
        DamagedFileError: (a ValueError) when it is truncated or not a ``.npy`` file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the index part that holds it is "
                                f"incomplete or damaged; {REPAIR_HINT}")
    shape, dtype, expected = npy_header(path)
    size = path.stat().st_size
    if size < expected:
        raise DamagedFileError(path, f"truncated to {size:,} bytes, but its header describes "
                                     f"{dtype} {list(shape)} ({expected:,} bytes)")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DamagedFileError(path, f"cannot be read ({exc})") from exc

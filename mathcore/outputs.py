"""Output files written whole or not at all.

Every file mathmatch writes for a user (``--out`` of ``match``, ``dedup``, ``choose``, ``bench``,
the tuning reports) goes to a temporary file beside its target and is renamed over it when
complete: a run that fails or is killed leaves the earlier file as it was, and a reader never
sees half a file.  An output that is one of the command's inputs is refused before anything is
read.

Example:
    >>> with atomic_output(Path("run.jsonl"), inputs=[Path("queries.jsonl")]) as fh:
    ...     fh.write("...")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import IO, Iterable, Iterator


class OutputError(ValueError):
    """An output path that cannot be written: a folder, or one of the inputs."""


def check_output(path: Path | str, inputs: Iterable[Path | str | None] = (),
                 flag: str = "--out") -> Path:
    """*path* as a Path, after checking it may be written.

    Raises:
        OutputError: when it is a folder, its folder does not exist, or it is one of *inputs*
            (the same file under any name).
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise OutputError(f"{flag} {path}: the folder {path.parent} does not exist")
    for other in inputs:
        if other is None or str(other) == "-":
            continue
        other = Path(other)
        same = path.resolve() == other.resolve()
        if not same and path.exists() and other.exists():
            with contextlib.suppress(OSError):
                same = os.path.samefile(path, other)
        if same:
            raise OutputError(f"{flag} {path} is also an input of this command; write the "
                              "results to another file")
    return path


def _tmp_for(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temporary path beside *path* to write to; renamed over *path* when the block ends
    without an error, deleted otherwise."""
    path = Path(path)
    tmp = _tmp_for(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(path: Path | str, inputs: Iterable[Path | str | None] = (),
                  flag: str = "--out") -> Iterator[IO[str]]:
    """A text file to write *path* through (``-``: standard output, written as it comes);
    see the module's docstring.

    Raises:
        OutputError: as :func:`check_output`.
    """
    if str(path) == "-":
        yield sys.stdout
        return
    path = check_output(path, inputs, flag)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_text(path: Path | str, text: str) -> Path:
    """Write *text* to *path* atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path

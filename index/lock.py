"""One writer at a time: the lock an index folder's writers take, and the clean-up they do.

Every write of an index folder (``index build``, ``add``, ``remove``, building question
vectors) holds :class:`WriteLock` on ``DIR/.lock``: an advisory ``flock`` that the operating
system releases when the holder exits, even by ``kill -9``, so a dead writer never leaves a
stale lock.  The holder writes who it is (pid, host, command, start time) into the file; a
second writer waits up to ``wait`` seconds for it, then is refused with a message naming the
holder.

Readers take no lock: the manifest is the commit point (:mod:`index.layout`), and a writer
writes new parts into fresh folders, so a reader opens the last committed state.  What a dead
writer left -- part folders and temporary files the manifest does not name -- is removed by the
next writer when it takes the lock (:func:`clean_up`); the store and the pending chunks of
vectors stay, since resuming needs them.

Example:
    >>> with WriteLock(Path("idx"), wait=60):  # doctest: +SKIP
    ...     ...  # write, then commit the manifest
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import sys
import time
from pathlib import Path

from index.layout import LOCK_FILE, MANIFEST, REJECTS_FILE, SECTIONS

logger = logging.getLogger(__name__)

# Part folders a writer makes: a section's plain name or with a generation (``dense.12``).
_PART_RE = re.compile(rf"^({'|'.join(SECTIONS.values())})(\.\d+)?$")


# Temporary files the index writers make at the folder's top level (a user's own files, and
# the temporary files of outputs written into the folder, are never touched).
_WRITER_TEMPS = {MANIFEST + ".tmp", REJECTS_FILE.rsplit(".", 1)[0] + ".tmp"}


class LockError(RuntimeError):
    """Another writer holds the index folder."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another process"
    if not info:
        return "another process"
    return (f"pid {info.get('pid')} on {info.get('host')} ({info.get('command', '?')}, since "
            f"{info.get('started', '?')})")


class WriteLock:
    """The exclusive write lock of an index folder (a context manager).

    Args:
        index_dir: the index folder (created if missing).
        wait: seconds to wait for another writer to finish; 0 refuses at once.
        purpose: what the holder does, written into the lock file for others to read.
    """

    def __init__(self, index_dir: Path | str, wait: float = 0.0, purpose: str = "") -> None:
        self.index_dir = Path(index_dir)
        self.wait = float(wait)
        self.purpose = purpose or " ".join(Path(a).name if i == 0 else a
                                           for i, a in enumerate(sys.argv[:4]))
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.index_dir / LOCK_FILE

    def acquire(self) -> WriteLock:
        """Take the lock (waiting up to ``wait`` seconds), then clean up after dead writers.

        Raises:
            LockError: naming the holder, when it is still held after ``wait`` seconds.
        """
        if self.wait < 0:
            raise ValueError(f"--wait must be 0 or more seconds, got {self.wait}")
        self.index_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockError(
                        f"{self.index_dir} is being written by {_holder(self.path)}; wait for "
                        "it to finish (or give --wait SECONDS), then run this again") from None
                if not said:
                    logger.info("%s is being written by %s; waiting up to %.0f s",
                                self.index_dir, _holder(self.path), self.wait)
                    said = True
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "command": self.purpose,
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }).encode(), 0)
        self._fd = fd
        clean_up(self.index_dir)
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriteLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def held_by_other(index_dir: Path | str) -> str | None:
    """Who holds the write lock of *index_dir*, or None when no writer is at work."""
    path = Path(index_dir) / LOCK_FILE
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _holder(path)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def committed_parts(index_dir: Path | str) -> set[str]:
    """Names of the part folders the manifest names (none without a readable manifest)."""
    from index.layout import part_dir

    try:
        manifest = json.loads((Path(index_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return {part_dir(index_dir, manifest, s).name for s in SECTIONS if s in manifest}


def clean_up(index_dir: Path | str, keep: set[str] = frozenset()) -> list[str]:
    """Remove what no committed state names: part folders other than the manifest's (and
    *keep*'s), and temporary files of interrupted writes.  Call it holding the lock.

    Returns:
        The names removed.
    """
    index_dir = Path(index_dir)
    if not (index_dir / MANIFEST).is_file():
        return []  # not committed yet: an interrupted first build resumes from what is here
    named = committed_parts(index_dir) | set(keep)
    removed = []
    for path in index_dir.iterdir():
        stale = (path.is_dir() and _PART_RE.match(path.name) and path.name not in named) or \
                (path.is_file() and path.name in _WRITER_TEMPS)
        if stale:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path.name)
    if removed:
        logger.debug("%s: removed %s, left by an earlier writer", index_dir, ", ".join(removed))
    return removed


def next_part_dir(index_dir: Path | str, section: str) -> Path:
    """A fresh folder name for a new generation of *section*'s part (not created)."""
    index_dir = Path(index_dir)
    base = SECTIONS[section]
    numbers = [int(m.group(2)[1:]) for p in index_dir.glob(base + "*")
               if (m := _PART_RE.match(p.name)) and m.group(1) == base and m.group(2)]
    return index_dir / f"{base}.{max(numbers, default=0) + 1}"

"""Loading corpora into an index folder's record store: streaming, parallel, resumable.

Records are read one at a time, parsed in worker processes in batches, and written to SQLite
in one transaction per batch together with the batch's rejects and the position reached in
the source file.  A build that is killed resumes from its last committed batch: nothing is
lost and nothing doubled.

Example:
    >>> report = load_corpora(LoadConfig(corpora=[Path("data/sample/records.jsonl")],
    ...                                  out=Path("/tmp/idx")))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from tqdm.auto import tqdm

from index.layout import REJECTS_FILE, STORE_FILE
from mathcore.loaders import Unit, derive_unit, detect_format, file_digest, iter_units
from mathcore.mathml import DEFAULT_LIMITS, Limits
from mathcore.options import option
from mathcore.records import Reject
from mathcore.store import Store, record_row

logger = logging.getLogger(__name__)



class BuildError(RuntimeError):
    """A build that cannot go on (a source changed under a resumed build, ...)."""


@dataclass
class LoadConfig:
    """What to load and how.

    Args:
        corpora: corpus paths (records JSONL, BEIR corpus.jsonl or folder, MathML folders).
        out: the index folder.
        replace: a record whose id is already in the store replaces it (else: a reject).
        limits: per-record size and nesting limits.
        workers: parsing processes (0 parses in this process; default: the CPU count, at most 4).
        batch_size: records per transaction.
        progress: show a progress bar.
        strict: any reject makes the command fail (exit status 1); the load itself goes on
            and keeps every good record.

    The command-line fields own their flags and help (``index build``, ``index add``:
    :func:`mathcore.options.add_options`); the limits are :class:`~mathcore.mathml.Limits`'s.
    """

    corpora: Sequence[Path]
    out: Path
    replace: bool = option(False, "a record whose id is already in the index replaces it "
                           "(default: it is rejected as a duplicate)")
    limits: Limits = DEFAULT_LIMITS
    workers: int | None = option(None, "parsing processes", metavar="N",
                                 default_text="CPU count, at most 4; 0: none")
    batch_size: int = 1000
    progress: bool = True
    strict: bool = option(False, "exit with status 1 if any record is rejected")

    def __post_init__(self) -> None:
        self.corpora = [Path(p) for p in self.corpora]
        self.out = Path(self.out)
        if not self.corpora:
            raise ValueError("no corpus given")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.workers is None:
            self.workers = min(os.cpu_count() or 1, 4)
        if self.workers < 0:
            raise ValueError(f"workers must be 0 or more, got {self.workers}")


@dataclass
class LoadReport:
    """What a load did."""

    added: int = 0
    rejected: int = 0
    skipped_sources: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return (self.added + self.rejected) / self.seconds if self.seconds else 0.0


def process_units(units: list[Unit], limits: Limits) -> list[tuple | Reject]:
    """Parse and derive a batch of input units into store rows or rejects (worker function)."""
    out: list[tuple | Reject] = []
    for unit in units:
        item = derive_unit(unit, limits)
        out.append(item if isinstance(item, Reject) else record_row(*item))
    return out


def _batches(path: Path, limits: Limits, start: int, size: int) -> Iterator[tuple[int, list]]:
    batch: list[Unit] = []
    for unit in iter_units(path, limits, start):
        batch.append(unit)
        if len(batch) >= size:
            yield unit.position, batch
            batch = []
    if batch:
        yield batch[-1].position, batch


def _processed_batches(path: Path, cfg: LoadConfig, start: int,
                       pool: ProcessPoolExecutor | None) -> Iterator[tuple[int, list]]:
    """Processed batches in input order; with a pool, a bounded number are in flight."""
    source = _batches(path, cfg.limits, start, cfg.batch_size)
    if pool is None:
        for position, batch in source:
            yield position, process_units(batch, cfg.limits)
        return
    pending: deque[tuple[int, Future]] = deque()
    for position, batch in source:
        pending.append((position, pool.submit(process_units, batch, cfg.limits)))
        if len(pending) >= 2 * cfg.workers:
            pos, fut = pending.popleft()
            yield pos, fut.result()
    while pending:
        pos, fut = pending.popleft()
        yield pos, fut.result()


def _mp_context():
    """Fork where the platform has it (workers start at once, nothing to re-import); spawn
    elsewhere.  Loading runs before any model is created, so no thread is forked with it."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def load_corpora(cfg: LoadConfig) -> LoadReport:
    """Load corpora into ``cfg.out/records.sqlite``, resuming an interrupted load.

    Raises:
        BuildError: when a source of an unfinished load has changed since.
        mathcore.CorpusError: when a corpus path is missing or of no known format.
    """
    report = LoadReport()
    t0 = time.perf_counter()
    formats = {str(p): detect_format(p) for p in cfg.corpora}  # fail early on a bad path
    cfg.out.mkdir(parents=True, exist_ok=True)
    pool = None
    if cfg.workers:
        pool = ProcessPoolExecutor(cfg.workers, mp_context=_mp_context())
    bar = tqdm(unit="rec", desc="loading", disable=not cfg.progress, smoothing=0.1)
    try:
        with Store(cfg.out / STORE_FILE) as store:
            for path in cfg.corpora:
                key = str(path)
                digest = file_digest(path)
                state = store.source(key)
                if state is not None and state["sha256"] != digest:
                    if not state["done"]:
                        raise BuildError(f"{key} changed since the interrupted build started; "
                                         f"delete {cfg.out} and build again")
                    if not cfg.replace:
                        raise BuildError(f"{key} changed since it was loaded; load it again "
                                         "over the records it gave with `mathmatch index add "
                                         f"{cfg.out} {key} --replace`")
                    with store.transaction():
                        store.forget_source(key)
                    state = None
                reread = False
                if state is not None and state["done"] and \
                        store.count_from_source(key) < state["records"]:
                    # Some of its records were removed since: read it again; the records
                    # still stored are left as they are, the removed ones come back.
                    logger.info("%s: %d of its records were removed since it was loaded; "
                                "loading them again", key,
                                state["records"] - store.count_from_source(key))
                    with store.transaction():
                        store.forget_source(key)
                    state, reread = None, True
                if state is not None and state["done"]:
                    report.skipped_sources.append(key)
                    logger.info("%s already loaded (%d records), skipped", key, state["records"])
                    continue
                start = state["position"] if state else 0
                if start:
                    logger.info("resuming %s after position %d", key, start)
                with store.transaction():
                    store.start_source(key, digest, _size(path), formats[key])
                t_src = time.perf_counter()
                for position, results in _processed_batches(path, cfg, start, pool):
                    good = [r for r in results if not isinstance(r, Reject)]
                    bad = [r for r in results if isinstance(r, Reject)]
                    if reread:  # the records still stored, unchanged, are not duplicates
                        have = store.digests_of([r[0] for r in good])
                        same = [r for r in good if have.get(r[0]) == r[-1]]
                        good = [r for r in good if have.get(r[0]) != r[-1]]
                        with store.transaction():
                            store.advance_source(key, position, len(same), 0, 0.0)
                        kept = {id(r) for r in same}
                        results = [r for r in results if id(r) not in kept]
                    with store.transaction():
                        bad += store.insert_rows(good, replace=cfg.replace)
                        store.add_rejects(bad)
                        now = time.perf_counter()
                        store.advance_source(key, position, len(results) - len(bad), len(bad),
                                             now - t_src)
                        t_src = now
                    report.added += len(results) - len(bad)
                    report.rejected += len(bad)
                    bar.update(len(results))
                    for r in bad:
                        logger.debug("rejected %s: %s", r.origin, r.reason)
                with store.transaction():
                    src = store.source(key)
                    store.advance_source(key, src["position"], 0, 0, 0.0, done=True)
            write_rejects(store.iter_rejects(), cfg.out / REJECTS_FILE)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    report.seconds = time.perf_counter() - t0
    return report


def write_rejects(rejects: Iterable[Reject], path: Path) -> int:
    """Write rejects to a JSONL file, one per line (rewritten whole, atomically)."""
    tmp = path.with_suffix(".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for rej in rejects:
            fh.write(rej.to_json() + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

"""Writing ``/search`` responses beside the search: the hits of a searched batch as JSON-ready
dicts with the safe HTML of their questions and answers (:func:`mathmatch.display.display`).

Writing the HTML (parsing every formula of every hit, cleaning and serialising it) is about a
third of the server's work for a request, and it needs neither the index nor the models: a
:class:`Job` holds what a response says, and the writer gives back its JSON body (serialising
it too is then off the server's event loop). :class:`ResponseWriter` writes the jobs of a batch
while the server's worker searches the next one: in a process of its own where the machine
has a core to spare, else on a thread. A thread shares the interpreter lock with the search:
on 2 cores, with 8 clients (``benchmarks.serve_load --writer``, runs back to back), a thread
gave 81.9 and 88.5 requests/s (p95 166 and 151 ms), a process 100.4 and 111.5 (p95 122 and
105 ms). A writer process that dies is replaced, and the batch it held is written on the
thread instead.

Example:
    >>> writer = ResponseWriter("thread")
    >>> writer.write([job], [future])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import threading
import traceback
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Sequence

from mathcore.mathml import Limits
from mathmatch.display import display

logger = logging.getLogger(__name__)

WRITERS = ("auto", "process", "thread")


@dataclass(frozen=True)
class Hit:
    """One hit as stored: what its response entry shows."""

    id: str
    score: float
    source: str
    question: str
    answer: str
    final: str | None
    answer_text: str  # the store's linear text of the answer
    why: dict


@dataclass(frozen=True)
class Job:
    """Everything a ``/search`` response says, as plain data (it crosses to another process).

    Attributes:
        question: the question as asked; *text*: as searched (LaTeX written as MathML).
        numbers: the question's numbers (:func:`retriever.givens.numbers` of its linear text).
        limits: the index's MathML limits; *current_linear*: its stored linear texts are
            this mathmatch's (:func:`~mathmatch.display.display` may read them).
        state: the committed state answered from (:meth:`mathmatch.service.State.info`).
    """

    question: str
    text: str
    mode: str
    k: int
    numbers: frozenset[str]
    hits: tuple[Hit, ...]
    limits: Limits
    current_linear: bool
    state: dict


def shown_record(question: str, answer_html: str, final: str | None, limits: Limits) -> dict:
    """The ``display`` entry of a record: safe HTML of its question, answer and final answer
    (*answer_html*: its answer already shown)."""
    return {"question": display(question, limits=limits)[0], "answer": answer_html,
            "final": display(final, limits=limits)[0] if final else None}


def response(job: Job) -> dict:
    """The ``/search`` response of *job*: each hit with its score parts, the numbers and
    formulas of the question its answer has, and its safe HTML."""
    from retriever.formulas import MAX_QUESTION_FORMULAS, formulas
    from retriever.givens import numbers

    asked = formulas(job.text, MAX_QUESTION_FORMULAS)
    shown = []
    for rank, hit in enumerate(job.hits, 1):
        marked = frozenset(job.numbers & numbers(hit.answer_text))
        answer_html, found = display(hit.answer, marked, asked, job.limits,
                                     hit.answer_text if job.current_linear else None)
        shown.append({
            "rank": rank, "id": hit.id, "score": hit.score, "source": hit.source,
            "question": hit.question, "answer": hit.answer, "final": hit.final, "why": hit.why,
            "highlight": {"numbers": sorted(marked, key=lambda n: (float(n), n)),
                          "formulas": found},
            "display": shown_record(hit.question, answer_html, hit.final, job.limits)})
    return {"question": job.question, "query": job.text, "mode": job.mode, "k": job.k,
            "state": job.state, "hits": shown}


class _Failed:
    """A response that could not be written, with the traceback (from another process)."""

    def __init__(self, trace: str) -> None:
        self.trace = trace


def response_json(job: Job) -> bytes:
    """:func:`response` as the JSON body of the HTTP response (UTF-8; no NaN or infinity)."""
    return json.dumps(response(job), ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")


def _responses(jobs: Sequence[Job]) -> list[bytes | _Failed]:
    """:func:`response_json` of each job; a job that fails fails alone."""
    out: list[bytes | _Failed] = []
    for job in jobs:
        try:
            out.append(response_json(job))
        except Exception:  # a bug: reported to the server, which logs it
            out.append(_Failed(traceback.format_exc()))
    return out


def _settle(waiting: Sequence[Future], results: Sequence[bytes | _Failed]) -> None:
    for done, result in zip(waiting, results, strict=True):
        if isinstance(result, _Failed):
            logger.error("writing a /search response failed:\n%s", result.trace)
            done.set_exception(RuntimeError("writing the response failed"))
        else:
            done.set_result(result)


class ResponseWriter:
    """Writes the responses of searched batches (:func:`response_json`: the body, ready to
    send) and hands each to the request waiting for it.

    Args:
        how: ``process`` (a process of its own, started at the first batch), ``thread``, or
            ``auto``: a process on a machine with more than one core.
    """

    def __init__(self, how: str = "auto") -> None:
        if how not in WRITERS:
            raise ValueError(f"the response writer must be one of {WRITERS}, got {how!r}")
        self.process = how == "process" or (how == "auto" and (os.cpu_count() or 1) > 1)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mathmatch-write")
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _process_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                import multiprocessing

                # spawn: the server's threads (ONNX Runtime's, the worker's) do not survive
                # a fork
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            return self._pool

    def _broken(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def write(self, jobs: Sequence[Job], waiting: Sequence[Future]) -> None:
        """Write the responses of *jobs* and give each to its future in *waiting*."""
        if not self.process:
            self._thread.submit(self._here, jobs, waiting)
            return
        pool = self._process_pool()
        try:
            written = pool.submit(_responses, list(jobs))
        except (BrokenProcessPool, RuntimeError):  # died, or shut down: this batch here
            self._broken(pool)
            self._thread.submit(self._here, jobs, waiting)
            return
        written.add_done_callback(lambda f: self._done(f, pool, jobs, waiting))

    def _done(self, written: Future, pool: ProcessPoolExecutor, jobs: Sequence[Job],
              waiting: Sequence[Future]) -> None:
        try:
            results = written.result()
        except BrokenProcessPool:
            logger.warning("the process writing responses died; writing them here, and "
                           "starting another for the next")
            self._broken(pool)
            self._thread.submit(self._here, jobs, waiting)
            return
        except BaseException:  # cancelled at shutdown, or a pickling error
            results = [_Failed(traceback.format_exc())] * len(jobs)
        _settle(waiting, results)

    @staticmethod
    def _here(jobs: Sequence[Job], waiting: Sequence[Future]) -> None:
        _settle(waiting, _responses(jobs))

    def close(self) -> None:
        """Stop the writer process (a later batch starts another)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def job_of(question: str, text: str, mode: str, k: int, asked_numbers: set[str],
           hits: Sequence[tuple[str, float, Any]], whys: Sequence[dict], limits: Limits,
           current_linear: bool, state: dict) -> Job:
    """The :class:`Job` of one searched question; *hits* are ``(id, score, stored record)``
    (:class:`mathcore.store.StoredRecord`)."""
    return Job(question, text, mode, k, frozenset(asked_numbers), tuple(
        Hit(doc, float(score), rec.record.source, rec.record.question, rec.record.answer,
            rec.record.final, rec.answer_text, why)
        for (doc, score, rec), why in zip(hits, whys, strict=True)),
        limits, current_linear, state)

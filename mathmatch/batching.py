"""``/search`` requests searched in batches, each stage busy with other requests than the one
before it.

1. **Waiting.** A request waits in :class:`SearchQueue`'s list.
2. **Encoding ahead.** The encoder thread (:attr:`SearchQueue.ahead`) takes every request
   waiting (at most :data:`MAX_BATCH`), prepares its question (LaTeX written as MathML,
   :func:`~mathmatch.display.prepare`) and encodes its search text with the query encoder of
   the state served (``onnx-int8``: a pass a question, the passes side by side).
3. **Searching.** The service's worker thread takes every batch encoded meanwhile (at most
   :data:`MAX_BATCH` requests) and searches them together
   (:meth:`~mathmatch.service.Service.search_many`): inside :func:`reusing`, the encoder finds
   the vectors made ahead, and the dense and BM25 retrievers keep the rankings they made, so
   that explaining each hit (:func:`~mathmatch.explain.explain`) searches nothing again.
4. **Writing.** The responses go to the service's
   :class:`~mathmatch.respond.ResponseWriter`, and the worker takes the next batch.

A question that cannot be read fails alone; a vector that was not made ahead (a mode opened
later, a state opened since) is made by the worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from mathmatch.display import prepare
from mathmatch.explain import QUERY_ID, dense_of
from retriever.searcher import search_text

if TYPE_CHECKING:
    from mathmatch.pipeline import Pipeline
    from mathmatch.service import Service

logger = logging.getLogger(__name__)

# Most /search requests searched as one batch: more wait for the next one (a flood of requests
# is not one huge search).
MAX_BATCH = 32


class _KeptVectors:
    """An encoder that keeps the vectors it made, so that the score parts of a batch
    (:func:`~mathmatch.explain.explain`, one query at a time) reuse the vectors the batch was
    searched with instead of encoding each question again (a record past the dense ranking
    needs the query's vector for its cosine).

    A forward pass pads every text to the longest of its pass, and the questions of a batch
    differ in length (on the dev queries, padding a random 8 to the longest costs 1.7 times
    their tokens): the texts are encoded in runs of similar length, each run padding at most
    :data:`PADDING` times its tokens.
    """

    PADDING = 1.25

    def __init__(self, encoder: Any) -> None:
        self.encoder, self.kept = encoder, {}

    def encode(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self.kept]
        for run in self._runs(new):
            self.kept.update(zip(run, self.encoder.encode(run, **kwargs), strict=True))
        if not texts:
            return self.encoder.encode(texts, **kwargs)
        return np.stack([self.kept[t] for t in texts])

    def _runs(self, texts: list[str]) -> list[list[str]]:
        """*texts* in runs of similar token length, shortest first (one run when each text
        has a pass of its own)."""
        enc = self.encoder
        if len(texts) < 2 or getattr(enc, "one_per_pass", False):
            return [texts] if texts else []
        ids = enc.tokenizer(texts, truncation=True, max_length=enc.max_seq_length)
        length = {t: len(i) for t, i in zip(texts, ids["input_ids"], strict=True)}
        runs, run, tokens = [], [], 0
        for t in sorted(texts, key=length.get):
            if run and length[t] * (len(run) + 1) > self.PADDING * (tokens + length[t]):
                runs.append(run)
                run, tokens = [], 0
            run.append(t)
            tokens += length[t]
        return [*runs, run]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)


def encoder_key(encoder: Any) -> tuple:
    """What makes two query encoders give the same vectors."""
    return encoder.spec.checksum, encoder.device, getattr(encoder, "backend", "torch")


@contextmanager
def reusing(pipeline: Pipeline, vectors: dict[tuple, np.ndarray] | None = None
            ) -> Iterator[None]:
    """While in the block, *pipeline*'s query encoder keeps the vectors it made (starting
    with those of *vectors*, by ``(encoder key, text)``, that it would make) and its
    retrievers the rankings they made, so that explaining a batch's hits searches nothing
    again (worker thread only: the pipeline is the worker's)."""
    retriever = pipeline.searcher.retriever
    parts = [p for p in (getattr(retriever, "dense", None), getattr(retriever, "lexical", None))
             if p is not None] or [retriever]
    dense = dense_of(retriever)
    encoder = dense.encoder if dense is not None else None
    with ExitStack() as stack:
        for part in parts:
            stack.enter_context(part.keeping())
        if dense is not None:
            dense.encoder = _KeptVectors(encoder)
            key = encoder_key(encoder)
            dense.encoder.kept.update((t, v) for (k, t), v in (vectors or {}).items()
                                      if k == key)
        try:
            yield
        finally:
            if dense is not None:
                dense.encoder = encoder


class SearchQueue:
    """The ``/search`` requests of a :class:`~mathmatch.service.Service`: waiting, encoded
    ahead, searched in batches on its worker thread, written by its writer."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mathmatch-encode")
        self._waiting: list[tuple[tuple[str, int, str | None], Future]] = []
        self._encoded: list[tuple[list, list, dict]] = []
        self._lock = threading.Lock()

    async def search(self, question: str, k: int, mode: str | None) -> bytes:
        """The ``/search`` response to *question*, as JSON, awaited.

        Raises:
            QueryError, Unavailable: as :meth:`mathmatch.service.Service.search`.
        """
        done: Future = Future()
        with self._lock:
            self._waiting.append(((question, k, mode), done))
        # One turn of the encoder thread per request, then of the worker per batch: a turn
        # finds every request waiting (up to MAX_BATCH), the turns of requests already taken
        # find none.
        self.ahead.submit(self._encode_waiting)
        return await asyncio.wrap_future(done)

    def _encode_waiting(self) -> None:
        """Prepare the questions waiting and encode them (on the encoder thread), then leave
        them for the worker, which searches them with the vectors made here."""
        with self._lock:
            taken, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
        # A request whose client went away (its future cancelled) is not searched.
        taken = [(asked, done) for asked, done in taken if done.set_running_or_notify_cancel()]
        if not taken:
            return
        prepared: list[str | Exception] = []
        for (question, _, _), _ in taken:
            try:
                prepared.append(prepare(question))
            except Exception as exc:
                prepared.append(exc)
        try:
            vectors = self._encode_ahead([asked for asked, _ in taken], prepared)
        except Exception:  # the worker encodes them, and says what fails
            logger.debug("encoding ahead failed", exc_info=True)
            vectors = {}
        with self._lock:
            self._encoded.append((taken, prepared, vectors))
        self.service.executor.submit(self._search_waiting)

    def _encode_ahead(self, asked: Sequence[tuple[str, int, str | None]],
                      prepared: Sequence[str | Exception]) -> dict[tuple, np.ndarray]:
        """The query vectors of the questions, by ``(encoder key, search text)``, made with
        the query encoders of the state served now (a request of a mode not opened yet, or
        of a state opened after, is encoded by the worker)."""
        state = self.service.state
        if state is None:
            return {}
        wanted: dict[tuple, tuple[Any, list[str]]] = {}
        for (_, _, mode), text in zip(asked, prepared, strict=True):
            encoder = state.encoders.get(mode or state.default_mode)
            if encoder is not None and not isinstance(text, Exception):
                key = encoder_key(encoder)
                wanted.setdefault(key, (encoder, []))[1].append(search_text(QUERY_ID, text))
        out = {}
        for key, (encoder, texts) in wanted.items():
            texts = list(dict.fromkeys(texts))
            out.update(zip([(key, t) for t in texts], encoder.encode(texts), strict=True))
        return out

    def _search_waiting(self) -> None:
        """Search the requests encoded (on the worker thread) and answer each."""
        taken, prepared, vectors = [], [], {}
        with self._lock:  # the batches encoded while the worker was busy: one search
            while self._encoded and (not taken or
                                     len(taken) + len(self._encoded[0][0]) <= MAX_BATCH):
                t, p, v = self._encoded.pop(0)
                taken += t
                prepared += p
                vectors.update(v)
        if not taken:
            return
        logger.debug("searching %d waiting requests", len(taken))
        try:
            results = self.service.search_many([asked for asked, _ in taken], show=False,
                                               prepared=prepared, vectors=vectors)
        except BaseException as exc:
            for _, done in taken:
                done.set_exception(exc)
            raise
        jobs, waiting = [], []
        for (_, done), result in zip(taken, results, strict=True):
            if isinstance(result, BaseException):
                done.set_exception(result)
            else:
                jobs.append(result)
                waiting.append(done)
        # Their responses are written by the writer while this thread searches the next batch.
        if jobs:
            self.service.writer.write(jobs, waiting)

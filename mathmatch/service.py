"""Serving one index folder read-only: the committed state, reopened after each commit.

:class:`Service` holds the models a server loads once (the encoder's weights, the
cross-scorer) and the :class:`State` it answers from: the match pipeline
(:class:`~mathmatch.pipeline.Pipeline`, one per retrieval mode), the question vectors and the
duplicate finder of the last committed state of the folder. Before each request it looks at
the manifest (one ``stat``); when a writer has committed since, the next request opens the
new state (without loading any model again) and closes the old one. Readers take no lock
(:mod:`index.lock`): while ``index add`` works, requests are answered from the state before
it, and a record the writer has put in the store but not committed is not shown.

The service never writes the folder. Duplicate search needs the question vectors that
``mathmatch dedup DIR`` builds (under the folder's write lock, and costly on a large
corpus): without them :meth:`Service.duplicates` is refused with :class:`Unavailable` saying
to run it; when records were added since they were built, it answers from the questions they
cover and says so. The symbolic tie-break likewise uses them only when they exist.

Every method that touches the pipeline runs on :attr:`Service.executor`'s one thread: SQLite
connections belong to the thread that opened them. So that concurrent clients do not each
wait for every search before theirs, ``/search`` requests (:meth:`Service.search_queued`)
are encoded ahead on another thread, searched in batches on the worker (the requests of one
mode and ``k`` together; a lone request is searched exactly as before) and their responses
written by :attr:`Service.writer` (:mod:`mathmatch.respond`: a process of its own on a
machine with cores to spare), each stage busy with other requests than the one before it
(:mod:`mathmatch.batching`).

Example:
    >>> service = Service(Path("idx"), ServeConfig())  # doctest: +SKIP
    >>> service.executor.submit(service.search, "What is 12 + 30?", 5, None).result()["hits"]
    ... # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from index.layout import MANIFEST, STORE_FILE, part_dir
from index.lock import held_by_other
from index.manifest import ManifestError, read_manifest
from mathcore import __version__
from mathcore.linear import LINEAR_VERSION
from mathcore.mathml import DEFAULT_LIMITS, Limits
from mathcore.runs import linear_query
from mathcore.store import StoreError
from mathmatch.batching import SearchQueue, reusing
from mathmatch.display import QueryError, display, prepare
from mathmatch.explain import QUERY_ID, dense_of, explain
from mathmatch.pipeline import MatchConfig, Pipeline
from mathmatch.respond import Job, ResponseWriter, job_of, response, shown_record
from retriever.givens import numbers
from retriever.retrievers import MODES

if TYPE_CHECKING:
    from mathmatch.server import ServeConfig

logger = logging.getLogger(__name__)

class Unavailable(RuntimeError):
    """What the index cannot answer in its committed state; the message says what to do."""


class ServePipeline(Pipeline):
    """The match pipeline of one committed state: it shares the service's loaded models (the
    encoder's weights, the cross-scorer) across states, and its tie-break finds the query's
    duplicates over the question vectors the service opened, never building them (which
    would write the folder)."""

    def __init__(self, index_dir: Path, config: MatchConfig, service: Service,
                 questions: Any) -> None:
        super().__init__(index_dir, config)
        self._service, self._questions = service, questions

    def load(self) -> None:
        """Open the searcher and load every model now, so that no request pays for it."""
        _ = self.searcher, self.reranker, self.tiebreaker

    @property
    def searcher(self):
        if self._searcher is None:
            dense = dense_of(Pipeline.searcher.fget(self).retriever)
            if dense is not None:
                self._service.adopt(dense.encoder)
        return self._searcher

    @property
    def reranker(self):
        if self._reranker is None and self.config.rerank is not None:
            self._reranker = self._service.cross_scorer()
        return self._reranker

    @property
    def tiebreaker(self):
        if self._tiebreaker is None and self.config.symbolic:
            from dedup.finder import DuplicateFinder
            from reranker.tiebreak import DEFAULT_MARGINS, TieBreaker

            c = self.config
            margin = DEFAULT_MARGINS.get(c.mode, 0.0) if c.margin is None else c.margin
            finder = DuplicateFinder(self._questions, judge_all=False) \
                if c.duplicates and self._questions is not None else None
            self._tiebreaker = TieBreaker(margin=margin, timeout=c.symbolic_timeout,
                                          finder=finder)
        return self._tiebreaker


def _committed_rows(index_dir: Path, manifest: dict) -> int | None:
    """The largest store row id the committed parts hold (rows are never reused, so a larger
    one was added by a writer that has not committed), or None without parts."""
    from index.passages import SLOTS

    for section in ("lexical", "dense"):
        if section in manifest:
            ids = np.load(part_dir(index_dir, manifest, section) / "ids.npy", mmap_mode="r")
            if not ids.size:
                return 0
            top = int(ids.max())
            return top // SLOTS if section == "dense" and manifest[section].get("passages") \
                else top
    return None


class State:
    """One committed state of the index: its pipelines (one per mode, opened on first use),
    its question vectors (when built) and their duplicate finder. Used on the worker thread
    only (SQLite connections belong to the thread that opened them)."""

    def __init__(self, service: Service, manifest: dict, key: Any) -> None:
        self.service, self.manifest, self.key = service, manifest, key
        self.index_dir = service.index_dir
        self.limits = Limits(**manifest.get("limits", {})) if manifest.get("limits") \
            else DEFAULT_LIMITS
        self.last_row = _committed_rows(self.index_dir, manifest)
        # Whether the stored linear texts are those this mathmatch writes (display reads them).
        self.current_linear = manifest.get("store", {}).get("linear_version", 1) == \
            LINEAR_VERSION
        self.pipelines: dict[str, ServePipeline] = {}
        # The query encoder of each mode opened (read by the encoder thread: encoding ahead).
        self.encoders: dict[str, Any] = {}
        self.default_mode = MatchConfig().mode if {"dense", "lexical"} <= manifest.keys() \
            else "bm25" if "lexical" in manifest else "dense"
        self.questions, self.questions_state = None, "missing"
        self._finder = None
        try:
            self.questions, self.questions_state = self._open_questions()
            self.pipeline(self.default_mode)  # every model loaded now, not by a request
        except BaseException:
            self.close()
            raise

    def _open_questions(self) -> tuple[Any, str]:
        """The committed question vectors (``current``, or ``stale``: made before the last
        records were added) or None (``missing``: never built, or by another encoder)."""
        from index import VectorIndex
        from index.questions import SECTION, encoder_name
        from mathcore.store import Store
        from retriever.backends import index_encoder
        from retriever.questions import QuestionIndex

        section = self.manifest.get(SECTION)
        folder = part_dir(self.index_dir, self.manifest, SECTION)
        if not section or not (folder / "vector_index.json").is_file():
            return None, "missing"
        enc = index_encoder(encoder_name(self.manifest, None), self.service.cfg.device,
                            section.get("backend", "torch"), self.service.cfg.backend,
                            where=f"{self.index_dir}'s question vectors")
        if section.get("encoder_checksum") != enc.spec.checksum:
            return None, "missing"
        self.service.adopt(enc)
        store = Store(self.index_dir / STORE_FILE, readonly=True)
        questions = QuestionIndex(self.index_dir, store, VectorIndex.load(folder, mmap=True), enc)
        fresh = section.get("corpus_checksum") == self.manifest["store"].get("checksum")
        return questions, "current" if fresh else "stale"

    def pipeline(self, mode: str) -> ServePipeline:
        """The pipeline of *mode* (opened, its models loaded, on first use).

        Raises:
            QueryError: the index lacks a part the mode needs.
        """
        if mode not in self.pipelines:
            p = ServePipeline(self.index_dir, self.service.cfg.match_config(mode), self.service,
                               self.questions)
            try:
                p.load()
            except ManifestError as exc:
                p.close()
                raise QueryError(f"this index cannot be searched in {mode} mode: {exc}") \
                    from None
            self.pipelines[mode] = p
            dense = dense_of(p.searcher.retriever)
            self.encoders[mode] = dense.encoder if dense is not None else None
        return self.pipelines[mode]

    @property
    def finder(self):
        """The duplicate finder over the question vectors.

        Raises:
            Unavailable: there are none (``mathmatch dedup DIR`` builds them).
        """
        if self.questions is None:
            raise Unavailable(f"{self.index_dir} has no question vectors: run `mathmatch dedup "
                              f"{self.index_dir}` once to build them (the server never writes "
                              "the index)")
        if self._finder is None:
            from dedup.finder import DuplicateFinder

            self._finder = DuplicateFinder(self.questions)
        return self._finder

    def committed(self, row: int) -> bool:
        """Whether a store row belongs to this committed state (not a writer's uncommitted)."""
        return self.last_row is None or row <= self.last_row

    def info(self) -> dict:
        """The state's identity: when it was committed, the store's checksum and count."""
        store = self.manifest.get("store", {})
        return {"updated": self.manifest.get("updated"), "checksum": store.get("checksum"),
                "records": store.get("records")}

    def display(self, rec: Any) -> dict:
        """Safe HTML of a stored record's question, answer and final answer."""
        return shown_record(rec.question, display(rec.answer, limits=self.limits)[0],
                            rec.final, self.limits)

    def close(self) -> None:
        for p in self.pipelines.values():
            p.close()
        if self.questions is not None:
            self.questions.close()


class Service:
    """The index folder, the models loaded once, and the state served; every method that
    touches the pipeline runs on :attr:`executor`'s one thread."""

    def __init__(self, index_dir: Path, cfg: ServeConfig) -> None:
        self.index_dir, self.cfg = Path(index_dir), cfg
        self.manifest_path = self.index_dir / MANIFEST
        read_manifest(self.index_dir)  # refuses a folder that is not an index, naming it
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mathmatch-serve")
        # /search requests, encoded ahead and searched in batches (mathmatch.batching).
        self.queue = SearchQueue(self)
        # Writes the responses of searched batches (HTML of every hit: a third of the work)
        # while the worker searches the next batch.
        self.writer = ResponseWriter(cfg.writer)
        self.state: State | None = None
        self._failed: Any = None
        self._models: dict[tuple, Any] = {}
        self._cross_scorer = None

    async def call(self, fn: Callable, *args: Any) -> Any:
        """``fn(*args)`` on the worker thread, awaited."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def search_queued(self, question: str, k: int, mode: str | None) -> bytes:
        """:meth:`search`, awaited, its response as JSON (:func:`~mathmatch.respond
        .response_json`): encoded ahead, then searched on the worker thread together with
        the other ``/search`` requests waiting (:class:`~mathmatch.batching.SearchQueue`).

        Raises:
            QueryError, Unavailable: as :meth:`search`.
        """
        return await self.queue.search(question, k, mode)

    def adopt(self, encoder: Any) -> None:
        """Give *encoder* the weights of an equal one loaded before (or load them now), so a
        new state costs no model load."""
        backend = getattr(encoder, "backend", "torch")
        name = "onnx" if backend.startswith("onnx") else "model"  # what runs it
        key = (encoder.spec.checksum, encoder.device, backend)
        if key in self._models and isinstance(type(encoder).__dict__.get(name),
                                              cached_property):
            encoder.__dict__[name] = self._models[key]
        else:
            self._models[key] = getattr(encoder, name)
            if name == "onnx":  # the worker searches between encodes: threads must not spin
                self._models[key].spin = False

    def cross_scorer(self):
        """The cross-scorer of ``--rerank``, loaded once for every state."""
        if self._cross_scorer is None:
            from reranker import load_reranker

            self._cross_scorer = load_reranker(self.cfg.rerank, device=self.cfg.device)
        return self._cross_scorer

    def _stat(self) -> tuple | None:
        try:
            st = os.stat(self.manifest_path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def current(self) -> State:
        """The state of the last commit, opened again when a writer committed since."""
        key, state = self._stat(), self.state
        if state is not None and key in (state.key, self._failed):
            return state
        try:
            manifest = read_manifest(self.index_dir)
            if state is not None and manifest == state.manifest:  # rewritten, not changed
                state.key = key
                return state
            fresh = State(self, manifest, key)
        except Exception as exc:  # whatever fails, a state that works keeps answering
            if state is None:
                if isinstance(exc, (ManifestError, StoreError, OSError, QueryError, ValueError)):
                    raise Unavailable(f"{self.index_dir}: {exc}") from None
                raise
            logger.warning("%s changed, but its new state cannot be opened (%s); answering "
                           "from the state of %s until it changes again", self.index_dir, exc,
                           state.info()["updated"], exc_info=True)
            self._failed = key
            return state
        if state is not None:
            state.close()
            logger.info("%s: opened the state committed at %s (%s records)", self.index_dir,
                        manifest.get("updated"), manifest.get("store", {}).get("records"))
        self.state, self._failed = fresh, None
        return fresh

    def close(self) -> None:
        """Close the state served and the symbolic workers (a later request opens anew)."""
        from mathcore.symbolic import close_default_pool

        if self.state is not None:
            self.state.close()
            self.state = None
        close_default_pool()
        self.writer.close()

    # -- what the endpoints ask, on the worker thread -----------------------------------------
    def search(self, question: str, k: int, mode: str | None) -> dict:
        """``/search``: the *k* best records for *question*, why each ranked, and how to
        show it (see the response model in :mod:`mathmatch.server`).

        Raises:
            QueryError: the question cannot be read, or the index lacks what *mode* needs.
            Unavailable: the index cannot be opened.
        """
        result = self.search_many([(question, k, mode)])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def search_many(self, asked: Sequence[tuple[str, int, str | None]], show: bool = True,
                    prepared: Sequence[str | Exception] | None = None,
                    vectors: dict[tuple, np.ndarray] | None = None
                    ) -> list[dict | Exception | Job]:
        """:meth:`search` for several ``(question, k, mode)`` requests, from one committed
        state: those of one mode and *k* are searched as one batch.

        Args:
            show: write the responses; False gives, for each request searched, the
                :class:`~mathmatch.respond.Job` of its response (written anywhere: it needs
                neither the worker thread nor the store).
            prepared: the questions already prepared (:func:`~mathmatch.display.prepare`:
                the text, or the exception refusing it).
            vectors: query vectors already made, by ``(encoder key, search text)``.

        Returns:
            For each request, in order, its response or the exception that refuses it (a
            question that cannot be read fails alone; a batch that fails is searched again
            one request at a time, so that each gets its own error).
        """
        results: list[dict | Exception | None] = [None] * len(asked)
        texts = {}
        for i, (question, _, _) in enumerate(asked):
            try:
                text = prepare(question) if prepared is None else prepared[i]
                if isinstance(text, Exception):
                    raise text
                texts[i] = text
            except Exception as exc:
                results[i] = exc
        if not texts:
            return results
        try:
            state = self.current()
        except Exception as exc:
            return [exc if r is None else r for r in results]
        groups: dict[tuple[str, int], list[int]] = {}
        for i in texts:
            _, k, mode = asked[i]
            groups.setdefault((mode or state.default_mode, k), []).append(i)
        for (mode, k), members in groups.items():
            try:
                found = self._search_batch(state, mode, k, [asked[i][0] for i in members],
                                           [texts[i] for i in members], vectors)
            except Exception as exc:
                if len(members) == 1:
                    found = [exc]
                else:
                    logger.warning("a batch of %d searches failed (%s); searching them one at "
                                   "a time", len(members), exc, exc_info=True)
                    found = []
                    for i in members:
                        try:
                            found += self._search_batch(state, mode, k, [asked[i][0]],
                                                        [texts[i]], vectors)
                        except Exception as one:
                            found.append(one)
            for i, result in zip(members, found, strict=True):
                results[i] = result
        if show:
            return [r if isinstance(r, BaseException) else response(r) for r in results]
        return results

    def _search_batch(self, state: State, mode: str, k: int, questions: list[str],
                      texts: list[str], vectors: dict[tuple, np.ndarray] | None = None
                      ) -> list[Job]:
        """*questions* (*texts*: as prepared) searched as one batch: the job of each one's
        response."""
        pipeline = state.pipeline(mode)
        qids = [f"{QUERY_ID}{i}" for i in range(len(texts))]
        store = pipeline.store
        searched = max(k, pipeline.rerank_depth) if pipeline.reranker is not None else k
        answered = []
        with reusing(pipeline, vectors):
            run = pipeline.run(list(zip(qids, texts, strict=True)), k)
            for qid, text in zip(qids, texts, strict=True):
                hits = [(doc, score, store.by_id(doc)) for doc, score in run.get(qid, {}).items()]
                hits = [(doc, score, rec) for doc, score, rec in hits if rec is not None]
                whys = explain(pipeline, text, [rec.rowid for _, _, rec in hits],
                               [rec.answer_text for _, _, rec in hits], searched)
                answered.append((hits, whys))
        if pipeline.reranker is not None:  # the first rerank_depth hits were rescored
            pairs = [(linear_query(qid, text), rec.answer_text)
                     for qid, text, (hits, _) in zip(qids, texts, answered, strict=True)
                     for _, _, rec in hits[:pipeline.rerank_depth]]
            cross = iter(pipeline.reranker.score([q for q, _ in pairs], [a for _, a in pairs]))
            for hits, whys in answered:
                for why, _ in zip(whys, hits[:pipeline.rerank_depth], strict=False):
                    why["rerank"] = float(next(cross))
        info = state.info()
        return [job_of(question, text, pipeline.config.mode, k, numbers(linear_query(qid, text)),
                       hits, whys, state.limits, state.current_linear, info)
                for qid, question, text, (hits, whys) in zip(qids, questions, texts, answered,
                                                            strict=True)]

    def duplicates(self, question: str, final: str | None, k: int) -> dict:
        """``/duplicates``: the stored questions nearest *question*, each with the finder's
        verdict and score and the evidence: the givens and formulas both have or one lacks,
        and whether the two final answers differ (with *final*)."""
        from dedup.features import (
            COSINE_FULL,
            SHARED_FULL,
            Side,
            answers_differ,
            restated,
            shared_givens,
        )

        text = prepare(question)
        if final is not None:
            final = prepare(final, "final")
        state = self.current()
        finder = state.finder
        found = finder.find([(QUERY_ID, text)], k, finals={QUERY_ID: final})[0]
        query = Side.of(linear_query(QUERY_ID, text), text, final)
        out = []
        for c in found:
            rec = finder.store.by_id(c.doc_id)
            if rec is None or not state.committed(rec.rowid):
                continue
            side = Side.of(rec.question_text, rec.record.question, rec.record.final)
            shared = shared_givens(query, side)
            kind = "duplicate" if c.duplicate else "near-duplicate" \
                if c.cosine >= COSINE_FULL and shared >= SHARED_FULL else "different"
            both = final is not None and rec.record.final is not None
            out.append({
                "id": c.doc_id, "score": c.score, "duplicate": c.duplicate, "kind": kind,
                "cosine": c.cosine, "question": rec.record.question, "final": rec.record.final,
                "display": display(rec.record.question, limits=state.limits)[0],
                "evidence": {
                    "restated": restated(query, side), "shared_givens": shared,
                    "givens": _differ(query.givens.values, side.givens.values),
                    "formulas": _differ(query.givens.formulas, side.givens.formulas),
                    "answers": {"query": final, "candidate": rec.record.final,
                                "differ": answers_differ(final, rec.record.final)
                                if both else None}}})
        kinds = {c["kind"] for c in out}
        verdict = next((v for v in ("duplicate", "near-duplicate") if v in kinds), "new")
        note = None if state.questions_state == "current" else (
            "records added since the question vectors were built are not compared: run "
            f"`mathmatch dedup {self.index_dir}` to bring them up to date")
        return {"question": question, "verdict": verdict, "threshold": finder.threshold,
                "questions": state.questions_state, "note": note, "state": state.info(),
                "candidates": out}

    def record(self, record_id: str) -> dict | None:
        """``/records/{id}``: a committed record as stored, or None."""
        state = self.current()
        found = state.pipeline(state.default_mode).store.by_id(record_id)
        if found is None or not state.committed(found.rowid):
            return None
        rec = found.record
        return {"id": rec.id, "source": rec.source, "origin": rec.origin,
                "question": rec.question, "answer": rec.answer, "final": rec.final,
                "meta": dict(rec.meta), "display": state.display(rec)}

    def health(self) -> dict:
        """What ``/healthz`` says: read from the manifest and the lock, no store needed."""
        manifest = read_manifest(self.index_dir)
        dense = manifest.get("dense") or {}
        state = self.state
        return {"status": "ok", "version": __version__, "index": str(self.index_dir),
                "records": manifest.get("store", {}).get("records"),
                "encoder": dense.get("encoder"),
                "modes": [m for m in MODES if m == "bm25" and "lexical" in manifest
                          or m == "dense" and "dense" in manifest
                          or m == "hybrid" and {"dense", "lexical"} <= manifest.keys()],
                "rerank": self.cfg.rerank, "symbolic": self.cfg.symbolic,
                "committed": {"updated": manifest.get("updated"),
                              "checksum": manifest.get("store", {}).get("checksum"),
                              "records": manifest.get("store", {}).get("records")},
                "serving": state.info() if state is not None else None,
                "writer": held_by_other(self.index_dir),
                "questions": state.questions_state if state is not None else None}


def _givens_text(value: Any) -> str:
    """A given as text: ``12``, ``3/4``, ``precision 1/10`` ("to the nearest tenth")."""
    if isinstance(value, tuple):
        return f"{value[0]} {value[1]}"
    return str(value)


def _differ(mine: Any, theirs: Any) -> dict:
    """The givens (or formulas) two questions share and those only one has (multisets)."""
    def listed(counter: Any) -> list[str]:
        return sorted(_givens_text(v) for v in counter.elements())

    return {"shared": listed(mine & theirs), "only_query": listed(mine - theirs),
            "only_candidate": listed(theirs - mine)}

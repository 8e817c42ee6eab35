"""The Python API: an index folder to build, open, update and match questions against.

Example:
    >>> from mathmatch import Index, MatchConfig, as_run
    >>> index = Index.build(["data/sample/records.jsonl"], "build/api-index")  # doctest: +SKIP
    >>> matches = index.match(["How many clips did Natalia sell?"], k=3)  # doctest: +SKIP
    >>> as_run(matches)  # doctest: +SKIP
    {'1': {'gsm8k-train-00000': 0.93, ...}}

Questions are plain text, text with inline MathML, or MathML alone; give them as a list (ids
``"1"``, ``"2"``, ... in order), a list of ``(id, text)`` pairs or a ``{id: text}`` dict.
Results are plain frozen dataclasses; :func:`as_run` turns matches into the BEIR-style run
``{query_id: {doc_id: score}}`` that every evaluator takes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from index.build import IndexConfig, build_index, index_info, remove_records
from index.corpora import LoadConfig, LoadReport
from index.layout import STORE_FILE
from index.manifest import read_manifest
from index.verify import VerifyReport, verify_index
from mathcore.records import Record
from mathcore.runs import Run
from mathcore.store import Store
from mathmatch.pipeline import MatchConfig, Pipeline
from retriever.encoder import ENCODERS

Questions = Sequence[str] | Sequence[tuple[str, str]] | Mapping[str, str]


@dataclass(frozen=True)
class Hit:
    """One matched record: its id, its score and its rank (1 is best)."""

    doc_id: str
    score: float
    rank: int


@dataclass(frozen=True)
class Match:
    """The records matched to one question, best first."""

    query_id: str
    question: str
    hits: tuple[Hit, ...]


@dataclass(frozen=True)
class DuplicateCandidate:
    """A stored question that may duplicate the asked one (``duplicate``: the verdict)."""

    doc_id: str
    score: float
    duplicate: bool
    cosine: float


@dataclass(frozen=True)
class Duplicates:
    """The duplicate candidates of one question, best score first."""

    query_id: str
    question: str
    candidates: tuple[DuplicateCandidate, ...]


def as_run(matches: Iterable[Match]) -> Run:
    """Matches as a run ``{query_id: {doc_id: score}}`` (BEIR's results format)."""
    return {m.query_id: {h.doc_id: h.score for h in m.hits} for m in matches}


def _pairs(questions: Questions) -> list[tuple[str, str]]:
    if isinstance(questions, Mapping):
        return [(str(q), t) for q, t in questions.items()]
    if isinstance(questions, str):
        raise TypeError("questions: give a list of questions, not one string")
    out = []
    for i, q in enumerate(questions, 1):
        out.append((str(i), q) if isinstance(q, str) else (str(q[0]), q[1]))
    ids = [q for q, _ in out]
    if len(set(ids)) != len(ids):
        raise ValueError("questions: query ids must be unique")
    return out


class Index:
    """An index folder (see ``docs/formats.md``): build or open one, then match against it.

    The pipeline's parts (encoder, vectors, BM25, the cross-scorer) are loaded on the first
    :meth:`match` and kept for the next one with the same settings. Use it as a context
    manager, or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        read_manifest(self.path)  # refuses a folder that is not an index, naming it
        self._pipeline: Pipeline | None = None
        self._store: Store | None = None

    @classmethod
    def open(cls, path: str | os.PathLike) -> Index:
        """An existing index folder."""
        return cls(path)

    @classmethod
    def build(cls, corpora: Sequence[str | os.PathLike], out: str | os.PathLike, *,
              encoder: str | None = None, device: str = "auto", progress: bool = False,
              replace: bool = False, wait: float = 0.0, **settings: Any) -> Index:
        """Load corpora (records JSONL, BEIR ``corpus.jsonl``, folders of MathML files) into
        the index folder *out* and encode them; an existing index is brought up to date, a
        folder holding anything else is refused (as ``mathmatch index build``).

        Args:
            corpora: files or folders.
            out: the index folder.
            encoder: a sentence-transformers folder (default: the shipped encoder).
            device: ``auto``, ``cpu`` or ``cuda`` for encoding.
            progress: show progress bars.
            replace: *out* is an index: remove it and build a new one in its place.
            wait: seconds to wait for another writer of *out* (default: refuse at once).
            **settings: other :class:`index.build.IndexConfig` fields (``batch_size``,
                ``approximate``, ``vectors``, ``passages``) or
                :class:`index.corpora.LoadConfig` fields (``workers``, ``limits``).
        """
        load_fields = set(LoadConfig.__dataclass_fields__)
        load = LoadConfig([Path(c) for c in corpora], Path(out), progress=progress,
                          **{k: v for k, v in settings.items() if k in load_fields})
        cfg = IndexConfig(load=load, encoder=encoder, device=device,
                          **{k: v for k, v in settings.items() if k not in load_fields})
        build_index(cfg, ENCODERS, wait=wait, replace=replace, new=True)
        return cls(out)

    def add(self, corpora: Sequence[str | os.PathLike], *, device: str = "auto",
            progress: bool = False, wait: float = 0.0, **settings: Any) -> LoadReport:
        """Load more corpora; new records are encoded with the index's own encoder.  *wait*:
        seconds to wait for another writer; *settings*: :class:`index.corpora.LoadConfig`
        fields (``replace``: a record whose id is already stored replaces it)."""
        self.close()
        manifest = read_manifest(self.path)
        load = LoadConfig([Path(c) for c in corpora], self.path, progress=progress, **settings)
        report, _ = build_index(IndexConfig(load=load, device=device,
                                            vectors="dense" in manifest), ENCODERS, wait=wait)
        return report

    def remove(self, ids: Iterable[str], progress: bool = False, wait: float = 0.0) -> int:
        """Remove records by id; returns how many were in the index."""
        self.close()
        ids = list(dict.fromkeys(ids))
        absent, _ = remove_records(self.path, ids, ENCODERS, progress=progress, wait=wait)
        return len(ids) - len(absent)

    def info(self) -> dict[str, Any]:
        """Counts, sources, rejects and file sizes (what ``mathmatch index info`` shows)."""
        return index_info(self.path)

    def verify(self) -> VerifyReport:
        """The parts checked against each other (what ``mathmatch index verify`` shows):
        ``.ok``, ``.status``, ``.problems`` with what to repair."""
        return verify_index(self.path)

    def record(self, record_id: str) -> Record | None:
        """The stored record (question, answer, final answer as given), or None."""
        if self._store is None:
            self._store = Store(self.path / STORE_FILE, readonly=True)
        found = self._store.by_id(record_id)
        return found.record if found else None

    def pipeline(self, config: MatchConfig | None = None, **overrides: Any) -> Pipeline:
        """The match pipeline over this index (kept while its settings stay the same)."""
        config = config or MatchConfig()
        config = replace(config, **overrides) if overrides else config
        if self._pipeline is None or self._pipeline.config != config:
            if self._pipeline is not None:
                self._pipeline.close()
            self._pipeline = Pipeline(self.path, config)
        return self._pipeline

    def match(self, questions: Questions, k: int | None = None,
              config: MatchConfig | None = None, **overrides: Any) -> list[Match]:
        """Match questions to the index's answers.

        Args:
            questions: see the module docstring.
            k: hits per question (default: the config's, 10).
            config: the pipeline's settings (default: hybrid retrieval with the givens
                agreement; ``MatchConfig(rerank="default", symbolic=True)`` runs every stage).
            **overrides: :class:`MatchConfig` fields to change, e.g. ``mode="dense"``.
        """
        pairs = _pairs(questions)
        if k is not None:
            overrides["k"] = k
        pipeline = self.pipeline(config, **overrides)
        run: Run = {}
        for _, found in pipeline.stream(pairs):
            run.update(found)
        return [Match(qid, text, tuple(Hit(doc, score, rank) for rank, (doc, score)
                                       in enumerate(run.get(qid, {}).items(), 1)))
                for qid, text in pairs]

    def duplicates(self, questions: Questions, k: int = 10,
                   finals: Mapping[str, str] | None = None, threshold: float | None = None,
                   device: str = "auto") -> list[Duplicates]:
        """The stored questions that may duplicate each question (same problem, same givens;
        the same answer where both final answers are known: pass them in *finals*)."""
        from dedup.finder import DuplicateFinder
        from retriever.questions import QuestionIndex

        pairs = _pairs(questions)
        finder_args = {} if threshold is None else {"threshold": threshold}
        finder = DuplicateFinder(QuestionIndex.open(self.path, device=device), **finder_args)
        try:
            found = finder.find(pairs, k, finals=dict(finals or {}))
        finally:
            finder.questions.close()
        return [Duplicates(qid, text, tuple(DuplicateCandidate(c.doc_id, c.score, c.duplicate,
                                                               c.cosine) for c in cands))
                for (qid, text), cands in zip(pairs, found, strict=True)]

    def close(self) -> None:
        """Release the pipeline's parts and the store."""
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

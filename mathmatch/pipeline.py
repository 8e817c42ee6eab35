"""The match pipeline: one object that runs every stage, for ``match``, ``bench``, the benchmarks
and the Python API alike.

Stages, each taking a run (``{query_id: {doc_id: score}}`` in rank order) and returning one:

1. **first stage** (:meth:`Pipeline.search`): dense, BM25 or hybrid retrieval (fusion, then the
   givens agreement, and the formula agreement with --formula-weight);
2. **cross-scorer** (:meth:`Pipeline.rerank`, with ``rerank``): the first ``rerank_depth``
   candidates rescored and fused with the first stage;
3. **cut** to ``k`` hits;
4. **tie-break** (:meth:`Pipeline.tiebreak`, with ``symbolic``): near-ties reordered by
   symbolic evidence about the candidates' final answers.

Example:
    >>> with Pipeline("idx", MatchConfig(k=3)) as p:  # doctest: +SKIP
    ...     run = p.run([("q1", "Solve x^2 = 4")])
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from mathcore.device import backend_option, device_option
from mathcore.options import option
from mathcore.runs import Run, batched
from reranker.scorer import DEFAULT_RERANK_DEPTH
from retriever.formulas import DEFAULT_FORMULA_WEIGHT, FORMULA_WEIGHT_HELP
from retriever.formulas import check_weight as check_formula_weight
from retriever.givens import DEFAULT_GIVENS_WEIGHT, GIVENS_WEIGHT_HELP, check_weight
from retriever.retrievers import DEFAULT_FUSION, FUSIONS, MODES
from retriever.searcher import DEFAULT_MODE

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MatchConfig:
    """How questions are matched: every stage's settings, each default defined here once.

    Example:
        >>> MatchConfig(rerank="default", symbolic=True).k
        10
    """

    mode: str = option(DEFAULT_MODE, "retrieval mode (hybrid is the best on the dev benchmark)",
                       choices=MODES)
    k: int = option(10, "hits per query")
    depth: int = option(100, "candidates per ranking fused in hybrid mode", metavar="N")
    fusion: str = option(DEFAULT_FUSION, "hybrid fusion: z-scored or min-max scores weighted "
                         "0.7 dense / 0.3 BM25, or reciprocal rank fusion", choices=FUSIONS)
    givens_weight: float = option(DEFAULT_GIVENS_WEIGHT, GIVENS_WEIGHT_HELP, metavar="W")
    formula_weight: float = option(DEFAULT_FORMULA_WEIGHT, FORMULA_WEIGHT_HELP, metavar="W")
    rerank: str | None = option(
        None, "rescore the first candidates with this cross-scorer checkpoint (from mathmatch "
        "tune reranker; 'default': the one shipped with mathmatch); the tie-break runs after it",
        metavar="CKPT", default_text="none")
    rerank_depth: int | None = option(
        None, "candidates the cross-scorer rescores", metavar="N",
        default_text="the depth the checkpoint's fusion was fitted at, "
                     f"else {DEFAULT_RERANK_DEPTH}")
    rerank_weight: float | None = option(
        None, "order the rescored candidates by z(cross-scorer) + W * z(first stage); 0: the "
        "cross-scorer alone", metavar="W",
        default_text="the checkpoint's fusion weight, 0 if it has none")
    symbolic: bool = option(False, "break near-ties of the ranking by symbolic evidence about "
                            "the candidates' final answers (docs/symbolic.md)")
    margin: float | None = option(None, "scores within M of a near-tie group's head are tied",
                                  metavar="M", default_text="chosen per mode on dev data")
    symbolic_timeout: float = option(2.0, "seconds per symbolic call", metavar="S")
    duplicates: bool = option(True, "with --symbolic: skip the agreement with the answers of "
                              "the query's duplicates (no question vectors needed)",
                              negate="--no-duplicates")
    encoder: str | None = option(None, "must be the index's encoder", metavar="PATH",
                                 default_text="the index's own")
    device: str = device_option()
    backend: str = backend_option()
    batch_size: int = option(256, "queries read and searched at a time", metavar="N")
    progress: bool = option(False, cli=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        for name in ("k", "depth", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.rerank_depth is not None and self.rerank_depth < 1:
            raise ValueError(f"rerank_depth must be at least 1, got {self.rerank_depth}")
        if self.symbolic_timeout <= 0:
            raise ValueError(f"symbolic_timeout must be positive, got {self.symbolic_timeout}")
        check_weight(self.givens_weight)
        check_formula_weight(self.formula_weight)

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


class Pipeline:
    """Run a :class:`MatchConfig` over an index folder; its parts are loaded once, on first use.

    Args:
        index_dir: the index folder.
        config: the settings (default: :class:`MatchConfig`'s defaults).
    """

    def __init__(self, index_dir: str | os.PathLike, config: MatchConfig | None = None,
                 **overrides: Any) -> None:
        self.index_dir = Path(index_dir)
        config = config or MatchConfig()
        self.config = replace(config, **overrides) if overrides else config
        self._searcher = self._reranker = self._tiebreaker = None

    # -- parts, loaded on first use -----------------------------------------------------------
    @property
    def searcher(self):
        if self._searcher is None:
            from retriever.searcher import open_searcher

            c = self.config
            self._searcher = open_searcher(self.index_dir, mode=c.mode, encoder=c.encoder,
                                           device=c.device, depth=c.depth, fusion=c.fusion,
                                           givens_weight=c.givens_weight,
                                           formula_weight=c.formula_weight,
                                           symbolic_timeout=c.symbolic_timeout,
                                           backend=c.backend)
        return self._searcher

    @property
    def store(self):
        return self.searcher.store

    @property
    def reranker(self):
        if self._reranker is None and self.config.rerank is not None:
            from reranker import load_reranker

            self._reranker = load_reranker(self.config.rerank, device=self.config.device,
                                           progress=self.config.progress)
        return self._reranker

    @cached_property
    def rerank_depth(self) -> int:
        """Candidates the cross-scorer rescores: the config's, else the depth its checkpoint's
        fusion was fitted at."""
        if self.config.rerank_depth is not None:
            return self.config.rerank_depth
        if self.config.rerank is None:
            return DEFAULT_RERANK_DEPTH
        from reranker.scorer import read_fusion  # the checkpoint's JSON, not its model

        return read_fusion(self.config.rerank)[2] or DEFAULT_RERANK_DEPTH

    @property
    def tiebreaker(self):
        if self._tiebreaker is None and self.config.symbolic:
            from reranker.tiebreak import DEFAULT_MARGINS, TieBreaker

            c = self.config
            margin = DEFAULT_MARGINS.get(c.mode, 0.0) if c.margin is None else c.margin
            finder = None
            if c.duplicates:
                from dedup.finder import DuplicateFinder
                from retriever.questions import QuestionIndex

                finder = DuplicateFinder(
                    QuestionIndex.open(self.index_dir, device=c.device, progress=c.progress,
                                       backend=c.backend),
                    judge_all=False)  # only the duplicates' final answers are used
            self._tiebreaker = TieBreaker(margin=margin, timeout=c.symbolic_timeout,
                                          finder=finder)
        return self._tiebreaker

    # -- stages -------------------------------------------------------------------------------
    def search(self, queries: Sequence[tuple[str, str]], k: int) -> Run:
        """The first stage: the *k* best records of each query."""
        return self.searcher.search(queries, k)

    def rerank(self, queries: Sequence[tuple[str, str]], run: Run) -> Run:
        """The run with each query's first candidates rescored by the cross-scorer (the run
        unchanged without ``rerank``)."""
        if self.reranker is None:
            return run
        return self.reranker.rerank(dict(queries), run, self.store, depth=self.rerank_depth,
                                    weight=self.config.rerank_weight)

    def tiebreak(self, queries: Sequence[tuple[str, str]], run: Run,
                 exclude: Mapping[str, Iterable[str]] | None = None) -> Run:
        """The run with near-ties broken by symbolic evidence (unchanged without ``symbolic``).

        Args:
            exclude: record ids not to count as a query's duplicates (when measuring, the
                record the query was taken from).
        """
        if self.tiebreaker is None:
            return run
        return self.tiebreaker.rerank(dict(queries), run, self.store, exclude=exclude)

    def run(self, queries: Sequence[tuple[str, str]], k: int | None = None,
            exclude: Mapping[str, Iterable[str]] | None = None) -> Run:
        """Every stage for one batch of ``(query_id, text)`` pairs: a run of *k* hits each
        (default: the config's ``k``)."""
        k = self.config.k if k is None else k
        depth = max(k, self.rerank_depth) if self.reranker is not None else k
        run = self.rerank(queries, self.search(queries, depth))
        run = {qid: dict(list(hits.items())[:k]) for qid, hits in run.items()}
        return self.tiebreak(queries, run, exclude)

    def stream(self, queries: Iterable[tuple[str, str]], k: int | None = None,
               exclude: Mapping[str, Iterable[str]] | None = None
               ) -> Iterator[tuple[list[tuple[str, str]], Run]]:
        """:meth:`run` over batches of ``batch_size`` queries: ``(batch, run)`` as they come."""
        for batch in batched(queries, self.config.batch_size):
            yield batch, self.run(batch, k, exclude)

    def close(self) -> None:
        """Release the store, the question vectors and the symbolic workers."""
        if self._tiebreaker is not None or (self._searcher is not None
                                            and self.config.formula_weight):
            from mathcore.symbolic import close_default_pool

            close_default_pool()  # no worker outlives the pipeline (the CLI may run in-process)
        if self._tiebreaker is not None:
            if self._tiebreaker.finder is not None:
                self._tiebreaker.finder.questions.close()
            self._tiebreaker = None
        if self._searcher is not None:
            self._searcher.close()
            self._searcher = None

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

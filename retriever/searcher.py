"""Opening an index folder for search, with the checks that keep results honest.

:func:`open_searcher` loads the parts a mode needs and refuses a folder whose parts no longer
match its store (records added or removed since the vectors were built) or whose vectors were
made by another encoder than the one asked for; each message says what to do.

Example:
    >>> searcher = open_searcher(Path("idx"), mode="hybrid")  # doctest: +SKIP
    >>> searcher.search([("q1", "Solve x^2 = 4")], k=10)  # doctest: +SKIP
    {'q1': {'rec-17': 0.032, ...}}
"""

from __future__ import annotations

import logging
import re
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from index.layout import STORE_FILE, part_dir
from index.manifest import ManifestError, read_manifest
from mathcore.linear import LINEAR_VERSION
from mathcore.runs import Run, linear_query
from mathcore.store import Store
from retriever.formulas import DEFAULT_FORMULA_WEIGHT, FormulaAgreement, answer_sources
from retriever.givens import DEFAULT_GIVENS_WEIGHT, GivensAgreement
from retriever.retrievers import (
    DEFAULT_FUSION,
    MODES,
    DenseRetriever,
    HybridRetriever,
    LexicalRetriever,
    fusion_weights,
)

logger = logging.getLogger(__name__)

# The mode measured best on the dev benchmark (see README, "Retrieval quality").
DEFAULT_MODE = "hybrid"


def _check_part(manifest: dict, section: str, index_dir: Path) -> dict:
    """The manifest's *section*, checked against the manifest's own store section: the last
    committed state (the store itself may be ahead while a writer works)."""
    part = manifest.get(section)
    if part is None:
        raise ManifestError(f"{index_dir} has no {section} index: build it with "
                            f"`mathmatch index build CORPUS... --out {index_dir}`")
    store = manifest.get("store", {})
    if part.get("corpus_checksum") != store.get("checksum"):
        raise ManifestError(
            f"{index_dir}: its manifest names a {section} index ({part.get('count')} records) "
            f"made from another state of the store ({store.get('records')} records): the "
            f"folder is damaged; `mathmatch index verify {index_dir}` says what to repair")
    return part



# Asymptote figure code (``[asy] ... [/asy]``, as in MATH and AoPS questions) is drawing
# commands and coordinates, whose words match any answer that draws something; of a figure only
# its labels ("10 cm", "A") are the question's own words.
_FIGURE_RE = re.compile(r"\[asy\](.*?)\[/asy\]", re.S | re.I)
_LABEL_RE = re.compile(r'label\s*\(\s*"([^"]*)"')


def figure_labels_only(text: str) -> str:
    """*text* with each Asymptote block (``[asy] ... [/asy]``) replaced by its labels' texts.

    Example:
        >>> figure_labels_only('Find x. [asy] draw((0,0)--(3,0)); label("3 cm",(1,0),S); [/asy]')
        'Find x. 3 cm'
    """
    if not _FIGURE_RE.search(text):
        return text
    return " ".join(_FIGURE_RE.sub(lambda m: " " + " ".join(_LABEL_RE.findall(m.group(1))) + " ",
                                   text).split())


def search_text(qid: str, text: str) -> str:
    """What the first stage searches for a query: its linear text (:func:`linear_query`) with
    figure code reduced to the figure's labels (:func:`figure_labels_only`)."""
    return figure_labels_only(linear_query(qid, text))


class Searcher:
    """Search an index folder with one mode; results are record ids with scores."""

    def __init__(self, index_dir: Path, store: Store, retriever: Any, mode: str,
                 manifest: dict) -> None:
        self.index_dir, self.store, self.retriever = index_dir, store, retriever
        self.mode, self.manifest = mode, manifest

    def search_rows(self, texts: Sequence[str], k: int,
                    questions: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scores and store row ids for linear query texts; *questions*, the same queries with
        their MathML, are what the formula agreement of hybrid mode reads (without them it
        reads *texts*, where it finds no formula)."""
        if questions is not None and isinstance(self.retriever, HybridRetriever):
            return self.retriever.search_texts(list(texts), k, questions=list(questions))
        return self.retriever.search_texts(list(texts), k)

    def search(self, queries: Sequence[tuple[str, str]] | dict[str, str], k: int) -> Run:
        """A run ``{query_id: {doc_id: score}}`` in rank order (the data contract between
        stages) for ``(query_id, text)`` pairs."""
        pairs = list(queries.items()) if isinstance(queries, dict) else list(queries)
        scores, rows = self.search_rows([search_text(qid, text) for qid, text in pairs], k,
                                        questions=[text for _, text in pairs])
        ids = self.store.ids_of(sorted({int(r) for r in rows.ravel() if r >= 0}))
        # A row missing from the store was removed after the state this searcher reads.
        return {qid: {ids[int(r)]: float(s) for s, r in zip(srow, rrow, strict=True)
                      if r >= 0 and int(r) in ids}
                for (qid, _), srow, rrow in zip(pairs, scores, rows, strict=True)}

    def close(self) -> None:
        self.store.close()


def open_searcher(index_dir: Path, mode: str = DEFAULT_MODE, encoder: str | None = None,
                  device: str = "auto", batch_size: int = 64, depth: int = 100,
                  fusion: str = DEFAULT_FUSION, weights: tuple[float, float] | None = None,
                  givens_weight: float = DEFAULT_GIVENS_WEIGHT,
                  formula_weight: float = DEFAULT_FORMULA_WEIGHT, symbolic_timeout: float = 2.0,
                  mmap: bool = True, backend: str = "auto") -> Searcher:
    """Load what *mode* needs from an index folder, after checking it is consistent.

    Args:
        index_dir: the index folder.
        mode: ``dense``, ``bm25`` or ``hybrid``.
        encoder: a sentence-transformers folder; it must be the encoder the index was built
            with (default: that encoder, as recorded in the manifest).
        device: ``auto``, ``cpu`` or ``cuda`` for query encoding and exact search.
        batch_size: queries per encoder forward pass.
        depth: candidates per ranking fused by hybrid mode.
        fusion: how hybrid mode fuses (``zscore``, ``minmax`` or ``rrf``).
        weights: (dense, bm25) weights of the fusion (default: :func:`fusion_weights`).
        givens_weight: in hybrid mode, the weight of the candidates' agreement with the
            question's numbers (:mod:`retriever.givens`); 0 keeps the fusion alone.
        formula_weight: in hybrid mode, the weight of the candidates' agreement with the
            question's formulas (:mod:`retriever.formulas`); 0 leaves it out.
        symbolic_timeout: seconds for one SymPy call of the formula agreement.
        mmap: memory-map the vectors instead of reading them into memory.
        backend: how queries are encoded (:mod:`retriever.backends`): ``auto`` is the fastest
            of the family of the index's vectors; another family is refused.

    Raises:
        ManifestError: when the folder is not an index, or a part is out of date or was built
            by another encoder (or backend family).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    index_dir = Path(index_dir)
    for attempt in range(3):
        manifest = read_manifest(index_dir)
        try:
            return _open(index_dir, manifest, mode, encoder, device, batch_size, depth, fusion,
                         weights, givens_weight, formula_weight, symbolic_timeout, mmap, backend)
        except FileNotFoundError:
            # A writer committed and removed the parts this manifest named: read the new one.
            if attempt == 2 or read_manifest(index_dir) == manifest:
                raise
    raise AssertionError("unreachable")


def _open(index_dir, manifest, mode, encoder, device, batch_size, depth, fusion, weights,
          givens_weight, formula_weight, symbolic_timeout, mmap, backend) -> Searcher:
    written = manifest.get("store", {}).get("linear_version", 1)
    if written != LINEAR_VERSION:
        logger.warning("%s: its records were linearised by an older mathmatch (linear text "
                       "version %s; queries are now written as version %s), so formulas in "
                       "queries and answers may not meet; rebuild the index for the best "
                       "results", index_dir, written, LINEAR_VERSION)
    store = Store(index_dir / STORE_FILE, readonly=True)
    dense = lexical = None
    if mode in ("dense", "hybrid"):
        from index import VectorIndex
        from retriever.backends import BackendError, index_encoder
        from retriever.encoder import EncoderSpec

        part = _check_part(manifest, "dense", index_dir)
        if encoder is not None:
            spec = EncoderSpec.resolve(encoder)
            if spec.checksum != part["encoder_checksum"]:
                raise ManifestError(
                    f"{index_dir} was built with encoder {part['encoder']!r}; {spec.name!r} is "
                    "another model. Leave --encoder out to use the index's own, or build a new "
                    f"index with `mathmatch index build ... --encoder {spec.name}`")
        else:
            encoder = part["encoder"]
        try:
            enc = index_encoder(encoder, device, part.get("backend", "torch"), backend,
                                batch_size, where=str(index_dir))
        except BackendError as exc:
            raise ManifestError(str(exc)) from None
        if enc.spec.checksum != part["encoder_checksum"]:
            raise ManifestError(f"the encoder at {enc.spec.path} changed since {index_dir} was "
                                "built (its files differ); rebuild the index")
        vectors = VectorIndex.load(part_dir(index_dir, manifest, "dense"), mmap=mmap,
                                   device="cpu" if part["kind"] != "exact" else enc.device)
        # A manifest without "passages": one vector per record, under its rowid (as before).
        dense = DenseRetriever(vectors, enc, passages=bool(part.get("passages", False)))
    if mode in ("bm25", "hybrid"):
        from index import LexicalIndex

        _check_part(manifest, "lexical", index_dir)
        lexical = LexicalRetriever(LexicalIndex.load(part_dir(index_dir, manifest, "lexical"),
                                                     mmap=mmap))
    if mode == "dense":
        retriever: Any = dense
    elif mode == "bm25":
        retriever = lexical
    else:
        givens = GivensAgreement(partial(store.texts, missing=""), givens_weight) \
            if givens_weight else None
        formulas = FormulaAgreement(answer_sources(store), formula_weight,
                                    timeout=symbolic_timeout) if formula_weight else None
        weights = fusion_weights(fusion) if weights is None else weights
        retriever = HybridRetriever(dense, lexical, depth=depth, fusion=fusion, weights=weights,
                                    givens=givens, formulas=formulas)
    return Searcher(index_dir, store, retriever, mode, manifest)

"""First-stage retrieval: the bi-encoder, and dense, BM25 and hybrid retrievers.

Every retriever answers ``search_texts(texts, k) -> (scores [n, k], rowids [n, k])`` over the
store's row ids (``-1`` pads missing hits), on *linear* query text (see
:func:`mathcore.query_text`).
"""

from retriever.encoder import DEFAULT_ENCODER, Encoder, EncoderSpec
from retriever.givens import DEFAULT_GIVENS_WEIGHT, GivensAgreement
from retriever.retrievers import (
    DEFAULT_FUSION,
    DEFAULT_WEIGHTS,
    FUSIONS,
    MODES,
    DenseRetriever,
    HybridRetriever,
    LexicalRetriever,
)

__all__ = ["DEFAULT_ENCODER", "DEFAULT_FUSION", "DEFAULT_GIVENS_WEIGHT", "DEFAULT_WEIGHTS",
           "FUSIONS", "MODES", "DenseRetriever", "Encoder", "EncoderSpec", "GivensAgreement",
           "HybridRetriever", "LexicalRetriever"]

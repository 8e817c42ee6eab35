"""Search indexes: dense vectors (exact / HNSW / IVF), BM25, and fusion of their rankings.

Every ``search`` returns batched arrays ``(scores [n, k], ids [n, k])``, best first, where ids
are the caller's int64 row ids and missing hits are padded with id ``-1`` (``PAD_ID``); filter
on ``ids >= 0``. Padding scores sort last: -inf where scores can be negative (inner product,
convex fusion), 0 where they cannot (BM25, RRF).

Example:
    >>> vec = VectorIndex(384); vec.add(row_ids, embeddings)
    >>> bm25 = LexicalIndex(); bm25.build(row_ids, tokens)
    >>> scores, ids = rrf([vec.search(q_emb, 100), bm25.search(q_tokens, 100)], k=10)
"""

from index._common import PAD_ID, require_faiss
from index.fusion import convex, rrf
from index.lexical import LexicalIndex
from index.vectors import VectorIndex, recall_against_exact

__all__ = [
    "PAD_ID",
    "LexicalIndex",
    "VectorIndex",
    "convex",
    "recall_against_exact",
    "require_faiss",
    "rrf",
]

"""reranker stage of mathmatch: the LLaMA cross-scorer and the symbolic tie-break.

Heavy libraries (torch, transformers, peft) are imported when a model is loaded, not here.
"""

from reranker.scorer import Reranker, RerankerError, load_reranker

__all__ = ["Reranker", "RerankerError", "load_reranker"]

"""mathmatch: match math questions to MathML answers (retrieval, reranking, symbolic checks)."""

__version__ = "0.1.0"

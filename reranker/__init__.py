"""reranker stage of mathmatch."""

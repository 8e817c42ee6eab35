"""retriever stage of mathmatch."""

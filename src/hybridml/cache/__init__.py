"""The embedding cache: :class:`~hybridml.EmbeddingCache` and its SQLite store."""

"""Pretrained backbones as embedders.

Resolving and loading backbones, tokenizers,
compiled forward passes, input checks, and :class:`KerasEmbeddingTransformer`.
Nothing heavy is imported by this package's ``__init__``.
"""

"""Pretrained backbones as embedders.

Resolving and loading backbones (the only importer of keras_hub), tokenizers,
compiled forward passes, input checks, and :class:`KerasEmbeddingTransformer`.
Nothing heavy is imported by this package's ``__init__``.
"""

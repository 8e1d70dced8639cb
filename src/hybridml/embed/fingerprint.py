"""The cache fingerprint of an embedding: one recipe for every estimator.

:class:`~hybridml.KerasEmbeddingTransformer` and
:class:`~hybridml.ContrastiveFineTuner` key cached vectors by it, so both hash
the same fields here: the digest of the weights that embed, everything that
changes a vector computed from them, and for a tuned model its tuning recipe.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

__all__ = ["fingerprint"]

RECIPE_VERSION = 1  # bump when the embedding computation changes


def fingerprint(
    weights: str,
    *,
    modality: str,
    pooling: str,
    normalize: bool,
    sequence_length: int | None,
    image_size: Sequence[int] | None,
    dtype: str | None,
    tuning: str | None = None,
) -> str:
    """sha256 hex digest naming the vectors these settings compute.

    Parameters
    ----------
    weights : str
        Digest of the model that embeds (:meth:`Embedder.digest`: architecture,
        weights, tokenizer and image converter): the backbone's, or the tuned
        copy's.
    modality, pooling, normalize, sequence_length, image_size
        The fitted recipe (``modality_``, ``pooling_``, ... of the estimator).
    dtype : str or None
        The dtype the vectors were computed in (None means float32).
    tuning : str, default=None
        The tuning recipe of a fine-tuned copy (None for a frozen backbone), so
        tuned and frozen vectors never share a namespace.
    """
    payload = {
        "recipe": RECIPE_VERSION,
        "model": weights,
        "modality": modality,
        "pooling": pooling,
        "normalize": bool(normalize),
        "sequence_length": sequence_length,
        "image_size": list(image_size) if image_size else None,
        "dtype": dtype or "float32",
    }
    if tuning is not None:  # absent for the transformer: its keys are unchanged
        payload["tuning"] = tuning
    blob = json.dumps(payload, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()

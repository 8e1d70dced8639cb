"""Picklable helpers for the embedding tests (module level, so loky can import them)."""

from __future__ import annotations

import numpy as np

from hybridml._imports import quiet_import


def numeric_model(seed: int = 0, units: int = 4):
    """A model taking (n, any number of features): shared Dense per feature, mean."""
    keras = quiet_import("keras")
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None,))
    x = keras.layers.Reshape((-1, 1))(inputs)
    x = keras.layers.Dense(units, activation="tanh")(x)
    outputs = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, outputs)


def make_numeric_model():
    """Zero-argument factory: what ``backbone=callable`` receives."""
    return numeric_model(seed=1)


class FakeCache:
    """A dict-backed stand-in for EmbeddingCache that records the call pattern.

    Only for checking how the transformer talks to a cache (namespace, keys,
    one put_many per finished batch); the real cache is tested in test_cache.py.
    """

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], np.ndarray] = {}
        self.calls: list[tuple] = []

    def get_many(self, namespace, keys):
        self.calls.append(("get", namespace, list(keys)))
        return {
            k: self.store[namespace, k] for k in keys if (namespace, k) in self.store
        }

    def put_many(self, namespace, keys, vectors):
        self.calls.append(("put", namespace, list(keys)))
        for k, v in zip(keys, vectors, strict=True):
            self.store[namespace, k] = np.array(v, dtype=np.float32)
        return len(keys)

"""One cache fingerprint for KerasEmbeddingTransformer and ContrastiveFineTuner."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from _embedding_helpers import numeric_model

from hybridml import ContrastiveFineTuner, KerasEmbeddingTransformer
from hybridml.embed.fingerprint import fingerprint

BASE = {
    "modality": "text",
    "pooling": "mean",
    "normalize": True,
    "sequence_length": 128,
    "image_size": None,
    "dtype": "float32",
    "tuning": None,
}


@pytest.mark.parametrize(
    "field, value",
    [
        ("weights", "another digest"),
        ("modality", "image"),
        ("pooling", "cls"),
        ("normalize", False),
        ("sequence_length", 64),
        ("image_size", (224, 224)),
        ("dtype", "bfloat16"),
        ("tuning", "contrastive-1"),
    ],
)
def test_every_hashed_field_changes_the_fingerprint(field, value):
    settings = {"weights": "a digest", **BASE}
    same = fingerprint(**settings)
    assert fingerprint(**settings) == same and len(same) == 64
    assert fingerprint(**{**settings, field: value}) != same


def test_none_dtype_is_float32_and_the_transformer_keys_are_unchanged():
    settings = {"weights": "a digest", **BASE}
    assert fingerprint(**{**settings, "dtype": None}) == fingerprint(**settings)
    # the transformer's cache namespaces from before this function still hit
    old = {
        "recipe": 1,
        "model": "a digest",
        **{k: v for k, v in BASE.items() if k != "tuning"},
    }
    blob = json.dumps(old, sort_keys=True).encode()
    assert fingerprint(**settings) == hashlib.sha256(blob).hexdigest()


def _recipe(est):
    return {
        "modality": est.modality_,
        "pooling": est.pooling_,
        "normalize": est.normalize_,
        "sequence_length": est.sequence_length_,
        "image_size": est.image_size_,
    }


def test_both_estimators_hash_the_same_fields():
    X = np.random.default_rng(0).normal(size=(16, 3))
    y = np.array([0, 1] * 8)
    model = numeric_model()
    embed = KerasEmbeddingTransformer(model).fit(X)
    frozen = embed._fitted_embedder()
    assert embed.fingerprint_ == fingerprint(
        frozen.digest(), **_recipe(embed), dtype="float32"
    )
    tuner = ContrastiveFineTuner(model, epochs=1, random_state=0).fit(X, y)
    tuned = tuner._tuned_embedder()
    # modality and a float32 dtype are hashed too (they were not for the tuner)
    assert tuner.fingerprint_ == fingerprint(
        tuned.digest(), **_recipe(tuner), dtype="float32", tuning="contrastive-1"
    )
    # equal settings, equal fingerprints; tuned vectors never share the
    # frozen backbone's namespace, even with the frozen weights
    again = ContrastiveFineTuner(model, epochs=1, random_state=0).fit(X, y)
    assert again.fingerprint_ == tuner.fingerprint_
    assert tuner.fingerprint_ != fingerprint(
        tuned.digest(), **_recipe(tuner), dtype="float32"
    )
    assert (
        fingerprint(
            frozen.digest(), **_recipe(tuner), dtype="float32", tuning="contrastive-1"
        )
        != embed.fingerprint_
    )

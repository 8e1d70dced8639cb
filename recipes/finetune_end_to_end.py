"""Fine-tune a pretrained network end to end inside scikit-learn.
==============================================================

``make_finetune_classifier`` turns any backbone the embedding transformer
accepts into an unfitted ``KerasClassifier`` that trains on raw strings (a
keras-hub ``TextClassifier``) or raw images (an ``ImageClassifier``). It is an
ordinary estimator: ``cross_val_score``, ``GridSearchCV`` (e.g. over
``optimizer__learning_rate`` or ``model__backbone_trainable``), pickling.

Here: the real all-MiniLM-L6-v2 on Rotten Tomatoes snippets (split by film)
and the real EfficientNet-Lite0 on Fashion-MNIST, each next to its frozen
linear probe. ``HYBRIDML_FAST=1`` (CI) uses a few dozen rows and one epoch.

    python recipes/finetune_end_to_end.py
"""

from __future__ import annotations

import os
import pickle

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from sklearn.pipeline import make_pipeline

import hybridml
from hybridml import KerasEmbeddingTransformer, make_finetune_classifier
from hybridml.datasets import load_fashion_mnist, load_rotten_tomatoes

hybridml.quiet()
FAST = os.environ.get("HYBRIDML_FAST") == "1"


def text(n: int, epochs: int) -> None:
    df = load_rotten_tomatoes()
    split = GroupShuffleSplit(n_splits=1, test_size=0.5, random_state=0)
    train, test = next(split.split(df, groups=df["movie"]))
    train, test = train[:n], test[:n]
    X_train, y_train = list(df["text"].iloc[train]), df["label"].to_numpy()[train]
    X_test, y_test = list(df["text"].iloc[test]), df["label"].to_numpy()[test]

    tuned = make_finetune_classifier(
        "all_minilm_l6_v2_en", sequence_length=64, epochs=epochs, random_state=0
    ).fit(X_train, y_train)  # raw strings in
    probe = make_pipeline(
        KerasEmbeddingTransformer("all_minilm_l6_v2_en"),
        LogisticRegression(max_iter=2000),
    ).fit(X_train, y_train)
    print(f"text, {n} reviews per side: fine-tuned MiniLM "
          f"{np.mean(tuned.predict(X_test) == y_test):.3f}, frozen + logistic "
          f"{np.mean(probe.predict(X_test) == y_test):.3f}")  # fmt: skip
    restored = pickle.loads(pickle.dumps(tuned))  # the tokenizer travels along
    same = np.allclose(restored.predict_proba(X_test), tuned.predict_proba(X_test))
    print(f"pickled and restored: same probabilities: {same}")


def images(n: int, epochs: int, size: int) -> None:
    pixels, labels = load_fashion_mnist(return_X_y=True)
    rgb = np.repeat(pixels[..., None], 3, axis=-1)  # uint8, as the converter expects
    X_train, X_test, y_train, y_test = train_test_split(
        rgb, labels, train_size=n, test_size=n, stratify=labels, random_state=0
    )
    tuned = make_finetune_classifier(
        "efficientnet_lite0", image_size=size, learning_rate=1e-3, epochs=epochs,
        batch_size=32, random_state=0,
    ).fit(X_train, y_train)  # fmt: skip
    probe = make_pipeline(
        KerasEmbeddingTransformer("efficientnet_lite0", image_size=size),
        LogisticRegression(max_iter=2000),
    ).fit(X_train, y_train)
    print(f"images, {n} per side at {size}px: fine-tuned EfficientNet-Lite0 "
          f"{np.mean(tuned.predict(X_test) == y_test):.3f}, frozen + logistic "
          f"{np.mean(probe.predict(X_test) == y_test):.3f}")  # fmt: skip


if __name__ == "__main__":
    if FAST:
        text(n=32, epochs=1)
        images(n=30, epochs=1, size=32)
    else:
        text(n=400, epochs=2)
        images(n=300, epochs=3, size=64)

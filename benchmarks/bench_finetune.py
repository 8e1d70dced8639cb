"""End-to-end fine-tuning vs frozen features vs a classical baseline, on a CPU.

Text: the shipped Rotten Tomatoes snippets, split by film (a film's reviews stay
on one side, as the demo's grouped CV does): fine-tuned MiniLM
(``make_finetune_classifier``) vs frozen MiniLM + logistic regression vs TF-IDF
+ logistic regression. Images: the shipped Fashion-MNIST subset:
fine-tuned EfficientNet-Lite0 vs frozen EfficientNet-Lite0 + logistic regression
vs raw pixels + logistic regression.

Reports accuracy on the held-out rows and fit CPU-seconds (user + system of
this process, ``resource.getrusage``; threads included). Subsampled so the whole
script runs in about 10 minutes on 2 cores; the sizes are printed. Time it on a
quiet machine only.

    python benchmarks/bench_finetune.py            # the full (subsampled) run
    HYBRIDML_FAST=1 python benchmarks/bench_finetune.py   # a smoke run
"""

from __future__ import annotations

import os
import resource

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import hybridml
from hybridml import KerasEmbeddingTransformer, make_finetune_classifier
from hybridml.datasets import load_fashion_mnist, load_rotten_tomatoes

hybridml.quiet()
FAST = os.environ.get("HYBRIDML_FAST") == "1"
# (train rows, test rows, epochs, sequence length / image side)
TEXT = (48, 48, 1, 32) if FAST else (600, 600, 2, 64)
IMAGES = (40, 40, 1, 32) if FAST else (400, 400, 3, 64)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(name: str, estimator, X_train, y_train, X_test, y_test) -> dict:
    start = cpu_seconds()
    estimator.fit(X_train, y_train)
    fit_cpu = cpu_seconds() - start
    accuracy = float(np.mean(estimator.predict(X_test) == y_test))
    print(f"  {name:<34} accuracy {accuracy:.3f}   fit {fit_cpu:7.1f} CPU-s")
    return {"name": name, "accuracy": accuracy, "fit_cpu_s": fit_cpu}


def text_rows() -> list[dict]:
    n_train, n_test, epochs, length = TEXT
    df = load_rotten_tomatoes()
    split = GroupShuffleSplit(n_splits=1, test_size=0.5, random_state=0)
    train, test = next(split.split(df, groups=df["movie"]))
    rng = np.random.RandomState(0)
    train = rng.choice(train, n_train, replace=False)
    test = rng.choice(test, n_test, replace=False)
    X_train, y_train = list(df["text"].iloc[train]), df["label"].to_numpy()[train]
    X_test, y_test = list(df["text"].iloc[test]), df["label"].to_numpy()[test]
    print(
        f"Rotten Tomatoes, split by film: {n_train} train / {n_test} test snippets "
        f"(subsampled from 4000), {epochs} epoch(s), {length} tokens at most"
    )
    return [
        measure(
            "TF-IDF + logistic regression",
            make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=2000)),
            X_train, y_train, X_test, y_test,
        ),
        measure(
            "frozen MiniLM + logistic regression",
            make_pipeline(
                KerasEmbeddingTransformer("all_minilm_l6_v2_en"),
                LogisticRegression(max_iter=2000),
            ),
            X_train, y_train, X_test, y_test,
        ),
        measure(
            "MiniLM fine-tuned end to end",
            make_finetune_classifier(
                "all_minilm_l6_v2_en", sequence_length=length, epochs=epochs,
                learning_rate=5e-5, batch_size=16, random_state=0,
            ),
            X_train, y_train, X_test, y_test,
        ),
    ]  # fmt: skip


def image_rows() -> list[dict]:
    n_train, n_test, epochs, size = IMAGES
    images, labels = load_fashion_mnist(return_X_y=True)
    rgb = np.repeat(images[..., None], 3, axis=-1)  # uint8 (n, 28, 28, 3)
    X_train, X_test, y_train, y_test = train_test_split(
        rgb, labels, train_size=n_train, test_size=n_test,
        stratify=labels, random_state=0,
    )  # fmt: skip
    print(
        f"Fashion-MNIST: {n_train} train / {n_test} test images (subsampled from "
        f"2000), resized to {size}x{size}, {epochs} epoch(s)"
    )
    flatten = FunctionTransformer(lambda X: X.reshape(len(X), -1) / 255.0)
    return [
        measure(
            "pixels + logistic regression",
            make_pipeline(flatten, LogisticRegression(max_iter=2000)),
            X_train, y_train, X_test, y_test,
        ),
        measure(
            "frozen EfficientNet-Lite0 + logistic reg.",
            make_pipeline(
                KerasEmbeddingTransformer("efficientnet_lite0", image_size=size),
                LogisticRegression(max_iter=2000),
            ),
            X_train, y_train, X_test, y_test,
        ),
        measure(
            "EfficientNet-Lite0 fine-tuned end to end",
            make_finetune_classifier(
                "efficientnet_lite0", image_size=size, epochs=epochs,
                learning_rate=1e-3, batch_size=32, random_state=0,
            ),
            X_train, y_train, X_test, y_test,
        ),
    ]  # fmt: skip


def main() -> dict[str, list[dict]]:
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    load = os.getloadavg()[0]
    print(f"backend {backend}, load average {load:.1f} on {os.cpu_count()} cores")
    results = {"text": text_rows(), "images": image_rows()}
    print("Fit CPU-seconds include loading the pretrained weights.")
    return results


if __name__ == "__main__":
    main()

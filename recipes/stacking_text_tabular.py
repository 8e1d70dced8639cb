"""Hybrid stacking on text plus tabular columns, with one shared embedding cache.
==============================================================================

Rotten Tomatoes snippets (fresh or rotten) as a DataFrame: the snippet's text,
two numeric columns computed from it (words, exclamation marks) and the film
reviewed as a categorical column. Three models are compared under the same
stratified cross-validation:

- heads on all-MiniLM-L6-v2 embeddings of the text (logistic regression,
  calibrated SVC, k-NN), stacked;
- logistic regression on the tabular columns alone (scaled, one-hot);
- the hybrid stack: the same heads and the tabular model, stacked together.

Every embedding step shares one ``EmbeddingCache``, so each snippet goes through
the network once although the outer CV, the stacks' inner CV and the three heads
fit 100+ models. The film column carries a prior (some films are mostly fresh),
which the row-level split lets the tabular model use.

``HYBRIDML_FAST=1`` runs on 200 snippets with 3 folds (a smoke run).

    python recipes/stacking_text_tabular.py
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, cross_val_score

import hybridml

hybridml.quiet()

from hybridml import EmbeddingCache, make_hybrid_stack  # noqa: E402
from hybridml.compose import out_of_fold_predictions  # noqa: E402
from hybridml.datasets import load_rotten_tomatoes  # noqa: E402

BACKBONE = "all_minilm_l6_v2_en"
HEADS = ["logreg", "svc", "knn"]


def load(n: int) -> tuple[pd.DataFrame, np.ndarray]:
    df = load_rotten_tomatoes()
    df = df.groupby("label").sample(n // 2, random_state=0).reset_index(drop=True)
    frame = pd.DataFrame(
        {
            "text": df["text"],
            "n_words": df["text"].str.split().str.len(),
            "exclaims": df["text"].str.count("!"),
            "movie": df["movie"],
        }
    )
    return frame, df["label"].to_numpy()


def main() -> dict[str, float]:
    fast = os.environ.get("HYBRIDML_FAST") == "1"
    n, folds = (200, 3) if fast else (1000, 5)
    X, y = load(n)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    kinds = {"text": "text", "n_words": "numeric", "exclaims": "numeric"}
    kinds["movie"] = "categorical"
    cache = EmbeddingCache()  # one cache for every model, fold and head
    models = {
        "text heads, stacked": make_hybrid_stack(
            BACKBONE, heads=HEADS, columns={"text": "text"}, cache=cache,
            random_state=0,
        ),
        "tabular columns": make_hybrid_stack(
            heads=(), columns={k: v for k, v in kinds.items() if k != "text"},
            tabular=["logreg"], random_state=0,
        ),
        "hybrid stack": make_hybrid_stack(
            BACKBONE, heads=HEADS, columns=kinds, tabular=["logreg"], cache=cache,
            random_state=0,
        ),
    }  # fmt: skip
    print(f"Rotten Tomatoes: {len(y)} snippets, {folds}-fold stratified CV, {BACKBONE}")
    start_rows = hybridml.forward_rows()
    results = {}
    start = time.perf_counter()
    for name, model in models.items():
        scores = cross_val_score(model, X, y, cv=cv)
        results[name] = float(scores.mean())
        print(f"  {name:<22} accuracy {scores.mean():.3f} +/- {scores.std():.3f}")
    seconds = time.perf_counter() - start
    embedded = hybridml.forward_rows() - start_rows
    print(
        f"{seconds:.0f} s; {embedded} texts embedded for {len(set(X['text']))} "
        f"distinct snippets (cache: {cache.hits} hits, {cache.misses} misses)"
    )

    hybrid = models["hybrid stack"].fit(X, y)
    oof = out_of_fold_predictions(hybrid, X, y)
    truth = (y == hybrid.classes_[1]).astype(float)
    print("out-of-fold P(fresh) of each base model (what the final model learns from):")
    for (name, _), column in zip(hybrid.estimators, oof.T, strict=True):
        accuracy = ((column > 0.5) == truth).mean()
        print(f"  {name:<16} accuracy {accuracy:.3f}")
    return results


if __name__ == "__main__":
    main()

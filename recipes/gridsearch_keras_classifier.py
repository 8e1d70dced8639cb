"""Grid-search a Keras network like any scikit-learn classifier.
=============================================================

A ``KerasClassifier`` (the default MLP) behind a ``StandardScaler`` in one
pipeline, tuned by ``GridSearchCV`` over routed parameters: the hidden layer
sizes (``model__*``, passed to the build function) and the Adam learning rate
(``optimizer__*``). Cross-validation is stratified because the wrapper is typed
as a classifier; ``roc_auc`` scoring works because it has ``predict_proba``.
Early stopping holds out 20% of each training fold. A logistic regression, tuned
the same way, is the baseline.

Data: scikit-learn's breast cancer set (569 rows, 30 features), 25% held out.
``HYBRIDML_FAST=1`` runs on 150 rows with 2 epochs and a 2-point grid (a smoke
run for CI).

    python recipes/gridsearch_keras_classifier.py
"""

from __future__ import annotations

import os
import time

from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import hybridml

hybridml.quiet()

from hybridml import KerasClassifier  # noqa: E402


def main() -> dict[str, float]:
    fast = os.environ.get("HYBRIDML_FAST") == "1"
    X, y = load_breast_cancer(return_X_y=True)
    if fast:
        X, _, y, _ = train_test_split(X, y, train_size=150, stratify=y, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    keras_grid = {
        "kerasclassifier__model__hidden_layer_sizes": [(16,), (64, 32)],
        "kerasclassifier__optimizer__learning_rate": [1e-3, 1e-2],
    }
    if fast:
        keras_grid["kerasclassifier__model__hidden_layer_sizes"] = [(8,)]
    network = make_pipeline(
        StandardScaler(),
        KerasClassifier(
            optimizer="adam",
            epochs=2 if fast else 100,
            batch_size=32,
            validation_split=0.2,
            early_stopping=10,
            random_state=0,
        ),
    )
    baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    searches = {
        "keras MLP": GridSearchCV(network, keras_grid, cv=2 if fast else 3,
                                  scoring="roc_auc"),
        "logistic regression": GridSearchCV(
            baseline, {"logisticregression__C": [0.1, 1.0, 10.0]},
            cv=2 if fast else 3, scoring="roc_auc",
        ),
    }  # fmt: skip
    scores = {}
    for name, search in searches.items():
        start = time.perf_counter()
        search.fit(X_train, y_train)
        seconds = time.perf_counter() - start
        proba = search.predict_proba(X_test)[:, 1]
        accuracy = accuracy_score(y_test, search.predict(X_test))
        auc = roc_auc_score(y_test, proba)
        scores[f"{name} accuracy"], scores[f"{name} roc_auc"] = accuracy, auc
        best = {k.split("__", 1)[1]: v for k, v in search.best_params_.items()}
        print(f"{name}: best {best}, CV roc_auc {search.best_score_:.3f}")
        print(f"  test accuracy {accuracy:.3f}, test roc_auc {auc:.3f} "
              f"({seconds:.0f} s for the search)")  # fmt: skip
    refit = searches["keras MLP"].best_estimator_[-1]
    print(f"keras MLP refit: {len(refit.history_['loss'])} of {refit.epochs} epochs "
          "(early stopping on the validation loss)")  # fmt: skip
    return scores


if __name__ == "__main__":
    main()

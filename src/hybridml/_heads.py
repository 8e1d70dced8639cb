"""The one home of heads and classical column transformers.

Used by the leaderboard (``baseline``) and the factories (``compose``) alike, so
a head called ``"svc"`` or a tabular branch is the same object everywhere.

- ``HEADS``: the heads the leaderboard fits on each backbone's embeddings.
- ``FACTORY_HEADS``: ``HEADS`` plus ``"hgb"`` (the leaderboard runs it as its
  tabular baseline) and ``"keras"`` (a small MLP, too slow to fit once per fold
  and head in a leaderboard), which the ``make_*`` factories also accept.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC, SVR

from ._imports import optional_import


@dataclass(frozen=True)
class Head:
    """One row of the head table: how to build it per task, and its tuning grid.

    ``classifier`` / ``regressor`` take the random seed and return a fresh,
    unfitted estimator; ``grid`` is the one parameter the leaderboard's light
    tuning searches (``None``: defaults only).
    """

    classifier: Callable[[int | None], object]
    regressor: Callable[[int | None], object]
    grid: tuple[str, list] | tuple[str, list, str, list] | None = None

    def make(self, task: str, random_state: int | None) -> object:
        build = self.classifier if task == "classification" else self.regressor
        return build(random_state)

    def grid_for(self, task: str) -> dict[str, list] | None:
        """The parameter grid for ``task`` (classification first, regression last)."""
        if self.grid is None:
            return None
        if len(self.grid) == 4 and task == "regression":
            return {self.grid[2]: list(self.grid[3])}
        return {self.grid[0]: list(self.grid[1])}


def _xgb(classify: bool) -> Callable[[int | None], object]:
    def build(seed: int | None) -> object:
        xgboost = optional_import("xgboost")
        cls = xgboost.XGBClassifier if classify else xgboost.XGBRegressor
        return cls(
            n_estimators=200, learning_rate=0.1, max_depth=6, tree_method="hist",
            random_state=seed, n_jobs=1,
        )  # fmt: skip

    return build


# The one table of the leaderboard's heads: ``--heads``, the factories' ``head=``,
# the tuning grids and the CLI's help all read it. Add a head here.
#
# ``logreg`` is logistic regression for classification and ridge regression for
# regression. Heads get the features unscaled: pretrained embeddings carry
# meaning in their scale (standardising them cost logistic regression 5 accuracy
# points on Rotten Tomatoes with all-MiniLM-L6-v2, 1,000 rows); tabular columns
# are standardised in their own branch.
TABLE: dict[str, Head] = {
    "logreg": Head(
        lambda seed: LogisticRegression(max_iter=2000, random_state=seed),
        lambda seed: Ridge(alpha=1.0),
        ("C", [0.1, 1.0, 10.0], "alpha", [0.1, 1.0, 10.0]),
    ),
    "svc": Head(lambda seed: SVC(), lambda seed: SVR(), ("C", [0.3, 1.0, 3.0])),
    "rf": Head(
        lambda seed: RandomForestClassifier(n_estimators=200, random_state=seed),
        lambda seed: RandomForestRegressor(n_estimators=200, random_state=seed),
    ),
    "xgb": Head(_xgb(True), _xgb(False)),
    "knn": Head(
        lambda seed: KNeighborsClassifier(n_neighbors=10),
        lambda seed: KNeighborsRegressor(n_neighbors=10),
        ("n_neighbors", [5, 10, 25]),
    ),
}
HEADS = tuple(TABLE)
FACTORY_HEADS = (*HEADS, "hgb", "keras")


def make_head(name: str, task: str, random_state: int | None) -> object:
    """A fresh, unfitted head of :data:`TABLE` for a dense feature matrix."""
    if name not in TABLE:
        raise ValueError(f"head: got {name!r}. Expected one of {HEADS}.")
    return TABLE[name].make(task, random_state)


def make_hgb(task: str, random_state: int | None) -> object:
    """Histogram gradient boosting, the tabular baseline (NaN and categories)."""
    cls = (
        HistGradientBoostingClassifier
        if task == "classification"
        else HistGradientBoostingRegressor
    )
    return cls(categorical_features="from_dtype", random_state=random_state)


def make_linear(task: str, random_state: int | None) -> object:
    """The linear model on sparse TF-IDF features (no centring)."""
    if task == "classification":
        return LogisticRegression(max_iter=2000, random_state=random_state)
    return Ridge(alpha=1.0)


def tfidf_columns(text: Sequence[str]) -> list[tuple]:
    """ColumnTransformer entries: one word (1, 2)-gram TF-IDF per text column."""
    return [
        (
            f"tfidf_{col}",
            TfidfVectorizer(
                ngram_range=(1, 2), sublinear_tf=True, strip_accents="unicode"
            ),
            col,
        )
        for col in text
    ]


def tabular_columns(numeric: Sequence[str], categorical: Sequence[str]) -> list:
    """ColumnTransformer entries: impute and scale numbers, one-hot categories."""
    parts: list[tuple] = []
    if numeric:
        num = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        parts.append(("numeric", num, list(numeric)))
    if categorical:
        cat = make_pipeline(
            SimpleImputer(strategy="most_frequent"),
            OneHotEncoder(handle_unknown="ignore"),
        )
        parts.append(("categorical", cat, list(categorical)))
    return parts


def select(name: str, parts: list, head: object) -> Pipeline:
    """``Pipeline([(name, ColumnTransformer(parts)), ("head", head)])``."""
    features = ColumnTransformer(parts, sparse_threshold=0.3)
    return Pipeline([(name, features), ("head", head)])


def make_model(spec: Any, task: str, random_state: int | None, what: str) -> Any:
    """A fresh estimator for a name of ``FACTORY_HEADS``, or ``spec`` itself.

    The factories' SVC predicts probabilities the scikit-learn 1.9 way
    (calibration, not the deprecated ``probability=True``), so a stack can use
    ``predict_proba``; the leaderboard's plain SVC scores by ``predict``.
    """
    if not isinstance(spec, str):
        if not hasattr(spec, "fit"):
            raise TypeError(
                f"{what}: got {spec!r}. Expected a scikit-learn estimator or one "
                f"of {', '.join(map(repr, FACTORY_HEADS))}. Pass e.g. {what}='logreg'."
            )
        return spec
    name = spec.lower()
    classify = task == "classification"
    if name == "svc" and classify:
        return CalibratedClassifierCV(SVC(), ensemble=False)
    if name in HEADS:
        return make_head(name, task, random_state)
    if name == "hgb":
        return make_hgb(task, random_state)
    if name == "keras":
        from .wrappers.classifier import KerasClassifier
        from .wrappers.regressor import KerasRegressor

        cls = KerasClassifier if classify else KerasRegressor
        return cls(
            optimizer="adam",
            epochs=30,
            random_state=random_state,
            model__hidden_layer_sizes=(64,),
        )
    close = difflib.get_close_matches(name, FACTORY_HEADS, n=1)
    hint = f"Did you mean {close[0]!r}?" if close else "Pass an estimator instead."
    raise ValueError(
        f"{what}: got {spec!r}. Expected an estimator or one of "
        f"{', '.join(map(repr, FACTORY_HEADS))}. {hint}"
    )

"""Factories that join embedding transformers to scikit-learn heads and stacks.

Each factory returns a plain scikit-learn object (``Pipeline``,
``StackingClassifier`` / ``StackingRegressor``, ``ColumnTransformer``), so
everything downstream (``GridSearchCV``, ``cross_validate``, pickling) works as
usual. They share one :class:`~hybridml.EmbeddingCache` between every embedding
step they build (``cache=True`` makes a temporary one), so each distinct row is
embedded once per backbone, whatever the folds, heads and worker processes.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping, Sequence
from copy import deepcopy
from typing import Any

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    StackingClassifier,
    StackingRegressor,
)
from sklearn.model_selection import check_cv, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._columns import KINDS, column_kind
from ._defaults import DEFAULT_TEXT_BACKBONE
from ._heads import make_model, tabular_columns
from .cache.store import EmbeddingCache
from .embed.transformer import KerasEmbeddingTransformer

__all__ = [
    "make_embedding_pipeline",
    "make_hybrid_stack",
    "make_multimodal_transformer",
    "out_of_fold_predictions",
]

TASKS = ("classification", "regression")


def make_embedding_pipeline(
    backbone: Any = DEFAULT_TEXT_BACKBONE,
    head: Any = "logreg",
    *,
    task: str = "classification",
    cache: Any = True,
    random_state: int | None = None,
    **embed_params: Any,
) -> Pipeline:
    """Build ``Pipeline([("embed", KerasEmbeddingTransformer), ("head", head)])``.

    Parameters
    ----------
    backbone : str, path, callable or keras.Model, default="all_minilm_l6_v2_en"
        What :class:`~hybridml.KerasEmbeddingTransformer` embeds with.
    head : estimator or str, default="logreg"
        A scikit-learn estimator, or a short name: ``"logreg"`` (logistic
        regression; ridge for regression), ``"svc"`` (an SVC calibrated by
        ``CalibratedClassifierCV(SVC(), ensemble=False)``, the scikit-learn 1.9
        replacement for ``probability=True``; SVR for regression), ``"rf"``
        (random forest), ``"xgb"`` (XGBoost, needs the ``xgboost`` extra),
        ``"knn"`` (10 nearest neighbours), ``"hgb"`` (histogram gradient
        boosting) or ``"keras"`` (:class:`~hybridml.KerasClassifier` or
        :class:`~hybridml.KerasRegressor`: one hidden layer of 64, Adam, 30
        epochs).
    task : {"classification", "regression"}, default="classification"
        Which kind of head a short name builds.
    cache : bool, str, path or EmbeddingCache, default=True
        ``True``: a new temporary :class:`~hybridml.EmbeddingCache`, shared by
        every clone of the pipeline, so a grid search embeds each row once.
        ``False`` or ``None``: no cache. A path or a cache: use that one.
    random_state : int, default=None
        Seed of the heads that take one.
    **embed_params : dict
        Other parameters of the transformer (``pooling``, ``batch_size``, ...).

    Returns
    -------
    Pipeline
        Steps ``"embed"`` and ``"head"``: grid-search ``head__C``, etc.

    See Also
    --------
    make_hybrid_stack : Several heads and tabular models, stacked.

    Examples
    --------
    >>> from hybridml import make_embedding_pipeline
    >>> pipe = make_embedding_pipeline("all_minilm_l6_v2_en", "svc")
    >>> [name for name, _ in pipe.steps]
    ['embed', 'head']
    >>> type(pipe[-1]).__name__, type(pipe[-1].estimator).__name__
    ('CalibratedClassifierCV', 'SVC')
    """
    _check_task(task)
    head = make_model(head, task, random_state, what="head")
    embed = KerasEmbeddingTransformer(
        backbone, cache=_resolve_cache(cache), **embed_params
    )
    return Pipeline([("embed", embed), ("head", head)])


def make_multimodal_transformer(
    columns: Any,
    *,
    text_backbone: Any = DEFAULT_TEXT_BACKBONE,
    image_backbone: Any = None,
    cache: Any = True,
    n_jobs: int | None = None,
    **embed_params: Any,
) -> ColumnTransformer:
    """Build a ``ColumnTransformer`` over text, image-path and tabular columns.

    Each text or image column gets its own embedding transformer; all of them
    share one cache (the backbone's fingerprint keeps their rows apart).
    Numeric columns are imputed (median) and standardised; categorical ones are
    one-hot encoded, ignoring categories unseen in ``fit``.

    Parameters
    ----------
    columns : DataFrame or mapping of str to str
        ``{column: kind}`` with kind ``"text"``, ``"image"`` (file paths),
        ``"numeric"`` or ``"categorical"``; or a DataFrame whose kinds are
        inferred: numbers are numeric; booleans and categories categorical;
        strings that all name image files (by suffix) are images, other
        strings are text when some contain a space, else categorical.
    text_backbone : str, path, callable or keras.Model, default="all_minilm_l6_v2_en"
        Backbone of the text columns.
    image_backbone : str, path, callable or keras.Model, default=None
        Backbone of the image columns; required when there are any.
    cache : bool, str, path or EmbeddingCache, default=True
        As in :func:`make_embedding_pipeline`: one cache for every branch.
    n_jobs : int, default=None
        Branches transformed in parallel (``ColumnTransformer(n_jobs=...)``).
    **embed_params : dict
        Other parameters of every embedding transformer.

    Returns
    -------
    ColumnTransformer
        Dense output; branches named ``text_<column>``, ``image_<column>``,
        ``numeric`` and ``categorical``.

    Examples
    --------
    >>> import pandas as pd
    >>> from hybridml import make_multimodal_transformer
    >>> df = pd.DataFrame({"review": ["a fine film", "dull"], "stars": [4.5, 2.0],
    ...                    "genre": ["drama", "comedy"]})
    >>> ct = make_multimodal_transformer(df)
    >>> [(name, cols) for name, _, cols in ct.transformers]
    [('text_review', ['review']), ('numeric', ['stars']), ('categorical', ['genre'])]
    """
    kinds = _column_kinds(columns)
    cache = _resolve_cache(cache)
    branches = _deep_branches(kinds, text_backbone, image_backbone, cache, embed_params)
    return ColumnTransformer(
        branches + _tabular_branches(kinds), sparse_threshold=0.0, n_jobs=n_jobs
    )


def make_hybrid_stack(
    backbone: Any = DEFAULT_TEXT_BACKBONE,
    *,
    heads: Sequence[Any] = ("logreg", "svc", "knn"),
    columns: Any = None,
    image_backbone: Any = None,
    tabular: Sequence[Any] | None = None,
    final_estimator: Any = None,
    task: str = "classification",
    cache: Any = True,
    cv: Any = 5,
    n_jobs: int | None = None,
    random_state: int | None = None,
    **embed_params: Any,
) -> StackingClassifier | StackingRegressor:
    """Stack heads on embeddings and classical models on tabular columns.

    Every head is a pipeline ``embed -> head``; with ``columns``, every
    tabular model is a pipeline ``impute/scale/one-hot -> model`` on the
    numeric and categorical columns. Their out-of-fold predictions feed
    ``final_estimator``. All embedding steps share one cache, so each distinct
    row is embedded once per backbone although scikit-learn fits every base
    model ``cv + 1`` times.

    Parameters
    ----------
    backbone : str, path, callable or keras.Model, default="all_minilm_l6_v2_en"
        The embedding backbone: of ``X`` itself (texts or images) when
        ``columns`` is None, else of the text columns.
    heads : sequence of str or estimators, default=("logreg", "svc", "knn")
        Models fitted on the embeddings, by short name (see
        :func:`make_embedding_pipeline`) or as estimators, such as a
        :class:`~hybridml.KerasClassifier`.
    columns : DataFrame or mapping of str to str, default=None
        Column kinds when ``X`` is a DataFrame (see
        :func:`make_multimodal_transformer`). None: ``X`` is one modality.
    image_backbone : str, path, callable or keras.Model, default=None
        Backbone of the image columns.
    tabular : sequence of str or estimators, default=None
        Models fitted on the numeric and categorical columns; None means
        ``("hgb",)`` when ``columns`` has such columns.
    final_estimator : estimator, default=None
        Fitted on the out-of-fold predictions; scikit-learn's default
        (logistic regression, or ridge with built-in CV) when None.
    task : {"classification", "regression"}, default="classification"
        Builds a ``StackingClassifier`` or a ``StackingRegressor``.
    cache : bool, str, path or EmbeddingCache, default=True
        As in :func:`make_embedding_pipeline`; ``True`` keeps the
        embed-once promise with no set-up.
    cv : int, cross-validation generator or iterable, default=5
        Splits of the out-of-fold predictions.
    n_jobs : int, default=None
        Base models fitted in parallel (loky workers share the cache file).
    random_state : int, default=None
        Seed of the models that take one.
    **embed_params : dict
        Other parameters of every embedding transformer.

    Returns
    -------
    StackingClassifier or StackingRegressor
        Base models named after their heads (``"logreg"``, ``"svc"``, ...) and
        tabular models (``"tabular_hgb"``, ...). The out-of-fold matrix its final
        estimator was trained on: :func:`out_of_fold_predictions`.

    Examples
    --------
    >>> from hybridml import make_hybrid_stack
    >>> stack = make_hybrid_stack("all_minilm_l6_v2_en", heads=["logreg", "knn"])
    >>> [name for name, _ in stack.estimators]
    ['logreg', 'knn']
    >>> stack.estimators[0][1].named_steps["embed"].cache
    EmbeddingCache()
    """
    _check_task(task)
    cache = _resolve_cache(cache)
    kinds = None if columns is None else _column_kinds(columns)
    has_tabular = kinds is not None and any(
        k in ("numeric", "categorical") for k in kinds.values()
    )
    if tabular is None:
        tabular = ("hgb",) if has_tabular else ()
    elif tabular and not has_tabular:
        raise ValueError(
            f"tabular: got {list(tabular)!r} but no numeric or categorical "
            "columns. Expected columns={...} naming them. Pass columns, or "
            "tabular=()."
        )
    estimators: list[tuple[str, Any]] = []
    if heads and kinds is not None:
        branches = _deep_branches(kinds, backbone, image_backbone, cache, embed_params)
        if not branches:
            raise ValueError(
                f"heads: got {list(heads)!r} but columns has no text or image "
                "column. Expected at least one to embed. Mark one as 'text' or "
                "'image', or pass heads=()."
            )
    for head in heads:
        model = make_model(head, task, random_state, what="head")
        if kinds is None:
            embed = KerasEmbeddingTransformer(backbone, cache=cache, **embed_params)
        else:
            # clone, not deepcopy: branches share one loaded model and one cache
            embed = ColumnTransformer(
                [(n, clone(t), c) for n, t, c in branches], sparse_threshold=0.0
            )
        estimators.append(
            (_name(head, estimators), Pipeline([("embed", embed), ("head", model)]))
        )
    for model in tabular:
        prep = ColumnTransformer(_tabular_branches(kinds), sparse_threshold=0.0)
        pipe = Pipeline(
            [
                ("prep", prep),
                ("model", make_model(model, task, random_state, "tabular")),
            ]
        )
        estimators.append((_name(model, estimators, "tabular_"), pipe))
    if not estimators:
        raise ValueError(
            "heads and tabular: got no models. Expected at least one base model. "
            "Pass heads=('logreg',) or tabular models with columns."
        )
    cls = StackingClassifier if task == "classification" else StackingRegressor
    return cls(estimators, final_estimator=final_estimator, cv=cv, n_jobs=n_jobs)


def out_of_fold_predictions(
    stack: StackingClassifier | StackingRegressor,
    X: Any,
    y: Any,
    *,
    n_jobs: int | None = None,
) -> np.ndarray:
    """Return the out-of-fold matrix a fitted stack trained its final estimator on.

    scikit-learn's stacking does not keep it, so it is recomputed with the
    stack's own splits and methods (``cross_val_predict`` of each base model);
    with a cache the embeddings are all hits, only the heads are refitted. The
    splits must be reproducible: an int ``cv`` or a splitter with a fixed
    ``random_state``.

    Parameters
    ----------
    stack : StackingClassifier or StackingRegressor
        Fitted on ``X`` and ``y``, without ``passthrough``.
    X : array-like or DataFrame
        The training input.
    y : array-like
        The training target.
    n_jobs : int, default=None
        Folds computed in parallel.

    Returns
    -------
    ndarray of shape (n_samples, n_meta_features)
        One column per base model prediction, as the final estimator saw them
        (the first probability column dropped for binary targets).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.ensemble import StackingClassifier
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from hybridml.compose import out_of_fold_predictions
    >>> X, y = np.arange(40.0).reshape(20, 2), np.repeat([0, 1], 10)
    >>> stack = StackingClassifier(
    ...     [("tree", DecisionTreeClassifier(random_state=0)),
    ...      ("lr", LogisticRegression())], cv=5).fit(X, y)
    >>> out_of_fold_predictions(stack, X, y).shape
    (20, 2)
    """
    check_is_fitted(stack)
    if stack.passthrough:
        raise ValueError(
            "stack: got passthrough=True. Expected a stack without passthrough. "
            "Append the input columns to the returned matrix yourself."
        )
    classify = is_classifier(stack)
    if classify:
        y = np.searchsorted(stack.classes_, np.asarray(y))  # as the stack encoded it
    cv = check_cv(stack.cv, y=y, classifier=classify)
    estimators = [est for _, est in stack.estimators if est != "drop"]
    columns = []
    for est, method in zip(estimators, stack.stack_method_, strict=True):
        pred = cross_val_predict(
            clone(est), X, y, cv=deepcopy(cv), method=method, n_jobs=n_jobs
        )
        if pred.ndim == 1:
            pred = pred.reshape(-1, 1)
        elif method == "predict_proba" and len(stack.classes_) == 2:
            pred = pred[:, 1:]
        columns.append(pred)
    return np.hstack(columns)


# -- helpers ------------------------------------------------------------------------


def _check_task(task: Any) -> None:
    if task not in TASKS:
        raise ValueError(
            f"task: got {task!r}. Expected 'classification' or 'regression'. "
            "Pass task='regression' for a numeric target."
        )


def _resolve_cache(cache: Any) -> EmbeddingCache | None:
    if cache is True:
        return EmbeddingCache()
    if cache is False:
        return None
    return EmbeddingCache.coerce(cache)


def _name(spec: Any, taken: list[tuple[str, Any]], prefix: str = "") -> str:
    base = prefix + (
        spec.lower() if isinstance(spec, str) else type(spec).__name__.lower()
    )
    names = {n for n, _ in taken}
    name, i = base, 2
    while name in names:
        name, i = f"{base}_{i}", i + 1
    return name


def _column_kinds(columns: Any) -> dict[str, str]:
    if isinstance(columns, Mapping):
        kinds = dict(columns)
        for column, kind in kinds.items():
            if kind not in KINDS:
                close = difflib.get_close_matches(str(kind), KINDS, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"columns[{column!r}]: got {kind!r}. Expected one of "
                    f"{', '.join(map(repr, KINDS))}.{hint}"
                )
        return kinds
    if hasattr(columns, "dtypes") and hasattr(columns, "columns"):
        kinds = {c: column_kind(columns[c]) for c in columns.columns}
        ids = [c for c, k in kinds.items() if k == "id"]
        if ids:
            warnings.warn(
                f"columns {ids!r} look like identifiers (one distinct value per "
                "row, or many distinct strings) and are not used. Pass a mapping "
                "{column: kind} to use them.",
                UserWarning,
                stacklevel=3,
            )
        return {c: k for c, k in kinds.items() if k != "id"}
    raise TypeError(
        f"columns: got {type(columns).__name__}. Expected a pandas DataFrame or a "
        "mapping {column: kind}. Pass e.g. {'review': 'text', 'price': 'numeric'}."
    )


def _deep_branches(
    kinds: dict[str, str],
    text_backbone: Any,
    image_backbone: Any,
    cache: EmbeddingCache | None,
    embed_params: dict[str, Any],
) -> list[tuple[str, Any, list[str]]]:
    branches = []
    for column, kind in kinds.items():
        if kind not in ("text", "image"):
            continue
        backbone = text_backbone if kind == "text" else image_backbone
        if backbone is None:
            raise ValueError(
                f"{kind}_backbone: got None for the {kind} column {column!r}. "
                f"Expected a backbone. Pass {kind}_backbone='<preset or folder>'."
            )
        embed = KerasEmbeddingTransformer(backbone, cache=cache, **embed_params)
        branches.append((f"{kind}_{column}".replace("__", "_"), embed, [column]))
    return branches


def _tabular_branches(kinds: dict[str, str] | None) -> list[tuple[str, Any, list[str]]]:
    kinds = kinds or {}
    numeric = [c for c, k in kinds.items() if k == "numeric"]
    categorical = [c for c, k in kinds.items() if k == "categorical"]
    return tabular_columns(numeric, categorical)

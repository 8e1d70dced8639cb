"""Stacking helpers: each distinct row is embedded once, whatever the search or stack.

Forward passes are counted with ``(hybridml.forward_rows() - start)`` (rows sent
through a backbone in this process). Loky workers are other processes, so with
``n_jobs=2`` the count is the cache's persisted ``written`` total: every row any
process embedded, written back once (the single-process tests check that the two
counts agree).
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    StackingClassifier,
    StackingRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVR

import hybridml
from hybridml import (
    EmbeddingCache,
    KerasClassifier,
    KerasRegressor,
    make_embedding_pipeline,
    make_hybrid_stack,
    make_multimodal_transformer,
)
from hybridml.compose import out_of_fold_predictions

WORDS = "the a movie film plot actor story good bad great terrible fun boring".split()


def _texts(n, seed=0):
    rng = np.random.default_rng(seed)
    texts = sorted({" ".join(rng.choice(WORDS, 5)) for _ in range(4 * n)})[:n]
    assert len(texts) == n
    return texts


def _labels(texts):
    return np.array(["pos" if ("good" in t or "great" in t) else "neg" for t in texts])


@pytest.fixture
def forward_rows(monkeypatch):
    """Read the rows embedded in this process since the test started."""
    start = hybridml.forward_rows()
    return lambda: hybridml.forward_rows() - start


@pytest.fixture(scope="module")
def data():
    texts = _texts(40)
    X = texts + texts[:10]  # 50 rows, 40 distinct
    return X, _labels(X)


# -- make_embedding_pipeline -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "task", "expected"),
    [
        ("logreg", "classification", LogisticRegression),
        ("logreg", "regression", Ridge),
        ("svc", "classification", CalibratedClassifierCV),
        ("svc", "regression", SVR),
        ("rf", "classification", RandomForestClassifier),
        ("knn", "classification", KNeighborsClassifier),
        ("hgb", "regression", HistGradientBoostingRegressor),
        ("XGB", "classification", None),
        ("keras", "classification", KerasClassifier),
        ("keras", "regression", KerasRegressor),
    ],
)
def test_heads_by_short_name(name, task, expected):
    pipe = make_embedding_pipeline("all_minilm_l6_v2_en", name, task=task)
    assert [n for n, _ in pipe.steps] == ["embed", "head"]
    if expected is None:
        xgboost = pytest.importorskip("xgboost")
        expected = xgboost.XGBClassifier
    assert type(pipe[-1]) is expected
    assert isinstance(pipe[0].cache, EmbeddingCache) and pipe[0].cache.temporary


def test_a_head_estimator_and_cache_are_used_as_given(tmp_path):
    head = LogisticRegression(C=3.0)
    pipe = make_embedding_pipeline(
        "x", head, cache=tmp_path / "c.sqlite", pooling="cls"
    )
    assert pipe[-1] is head
    assert pipe[0].cache.path == tmp_path / "c.sqlite"
    assert pipe[0].pooling == "cls" and pipe[0].backbone == "x"
    assert make_embedding_pipeline("x", cache=None)[0].cache is None
    assert make_embedding_pipeline("x", cache=False)[0].cache is None


def test_unknown_head_name_suggests_the_closest():
    with pytest.raises(ValueError, match=r"head: got 'svm'.*Did you mean 'svc'\?"):
        make_embedding_pipeline("x", "svm")
    with pytest.raises(ValueError, match=r"head: got 'zzz'.*Pass an estimator"):
        make_embedding_pipeline("x", "zzz")
    with pytest.raises(TypeError, match=r"head: got 3\. Expected a scikit-learn"):
        make_embedding_pipeline("x", 3)


def test_bad_task_is_rejected():
    with pytest.raises(
        ValueError, match=r"task: got 'clf'\. Expected 'classification'"
    ):
        make_embedding_pipeline("x", task="clf")


def test_xgb_head_without_xgboost_names_the_pip_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "xgboost", None)  # import fails
    with pytest.raises(ImportError, match=r'pip install "hybridml\[xgboost\]"'):
        make_embedding_pipeline("x", "xgb")


def test_svc_head_gives_calibrated_probabilities_without_deprecated_flag(
    text_preset, data
):
    X, y = data
    pipe = make_embedding_pipeline(text_preset, "svc")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # probability=True warns
        proba = pipe.fit(X, y).predict_proba(X[:5])
    assert proba.shape == (5, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    svc = pipe[-1].calibrated_classifiers_[0].estimator  # calibrated from an SVC
    margin = svc.decision_function(pipe[:-1].transform(X[:5]))
    order = np.argsort(proba[:, 1])  # Platt scaling is monotone in the margin
    assert type(svc).__name__ == "SVC" and 0 < proba.min() and proba.max() < 1
    assert list(np.argsort(margin)) in (list(order), list(order[::-1]))


# -- embed once: one process --------------------------------------------------------


def test_grid_search_embeds_each_distinct_row_once(text_preset, data, forward_rows):
    X, y = data
    cache = EmbeddingCache()
    pipe = make_embedding_pipeline(text_preset, "logreg", cache=cache)
    grid = {"head__C": [0.01, 0.1, 1.0, 10.0]}  # 4 candidates x 5 folds + refit
    search = GridSearchCV(pipe, grid, cv=5).fit(X, y)
    assert forward_rows() == 40 == len(cache)
    assert cache.stats()["written"] == 40
    assert search.best_estimator_[0].cache is cache
    search.predict(X)  # already embedded: no forward pass
    assert forward_rows() == 40


def test_grid_search_without_cache_embeds_every_fold_again(text_preset, forward_rows):
    X = _texts(30)  # no duplicates: each call embeds all the rows it is given
    pipe = make_embedding_pipeline(text_preset, "logreg", cache=None)
    GridSearchCV(pipe, {"head__C": [0.1, 1.0, 10.0, 100.0]}, cv=5).fit(X, _labels(X))
    assert forward_rows() == (4 * 5 + 1) * 30  # fit + score per fold, then refit


def test_stack_of_three_heads_embeds_each_distinct_row_once(
    text_preset, data, forward_rows
):
    X, y = data
    stack = make_hybrid_stack(text_preset, heads=["logreg", "svc", "knn"])
    assert isinstance(stack, StackingClassifier)
    stack.fit(X, y)
    assert forward_rows() == 40
    cache = stack.estimators[0][1][0].cache
    assert cache.stats()["written"] == 40 and cache.temporary
    new = [t for t in _texts(60, seed=5) if t not in X][:5]  # never seen
    assert stack.predict([*new, *X[:3]]).shape == (8,)
    assert forward_rows() == 45
    assert set(stack.predict(X)) <= {"pos", "neg"}


def test_stack_without_cache_embeds_18_times(text_preset, forward_rows):
    X = _texts(30)
    make_hybrid_stack(text_preset, heads=["logreg", "svc", "knn"], cache=None).fit(
        X, _labels(X)
    )
    assert forward_rows() == 18 * 30  # 3 heads x (5 folds x (fit + predict) + 1)


# -- embed once: several processes --------------------------------------------------


def test_with_two_worker_processes_each_row_is_still_embedded_once(
    text_preset, data, tmp_path, forward_rows
):
    X, y = data
    cache = EmbeddingCache(tmp_path / "shared.sqlite")
    pipe = make_embedding_pipeline(text_preset, "logreg", cache=cache)
    grid = {"head__C": [0.01, 0.1, 1.0, 10.0]}
    GridSearchCV(pipe, grid, cv=5, n_jobs=2).fit(X, y)
    assert forward_rows() == 0  # every fit ran in a worker; the refit hit
    assert cache.stats()["written"] == 40 == cache.stats()["misses"]
    cache.clear()
    stack = make_hybrid_stack(
        text_preset, heads=["logreg", "svc", "knn"], cache=cache, n_jobs=2
    )
    stack.fit(X, y)
    assert len(cache) == 40
    assert cache.stats()["written"] == 80  # 40 before clear(), 40 for the stack


# -- hybrid stacks over DataFrames --------------------------------------------------


@pytest.fixture(scope="module")
def frame():
    texts = _texts(36, seed=1)
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "review": texts,
            "price": rng.normal(10, 3, 36).round(2),
            "genre": rng.choice(["drama", "comedy", "horror"], 36),
        }
    )
    df.loc[3, "price"] = np.nan  # imputed
    return df


def test_hybrid_stack_mixes_heads_on_text_and_tabular_models(
    text_preset, frame, forward_rows
):
    y = _labels(frame["review"])
    stack = make_hybrid_stack(
        text_preset, heads=["logreg", "knn"], columns=frame, random_state=0
    )
    assert [n for n, _ in stack.estimators] == ["logreg", "knn", "tabular_hgb"]
    stack.fit(frame, y)
    assert forward_rows() == 36  # the text column, once
    assert stack.predict(frame.iloc[:4]).shape == (4,)
    assert stack.predict_proba(frame).shape == (36, 2)


def test_stack_with_a_keras_head_embeds_once_and_predicts(
    text_preset, data, forward_rows
):
    X, y = data
    stack = make_hybrid_stack(
        text_preset, heads=["logreg", "keras"], cv=2, random_state=0
    )
    stack.set_params(keras__head__epochs=3)  # routed like any sklearn parameter
    assert stack.estimators[1][1][-1].epochs == 3
    stack.fit(X, y)
    assert forward_rows() == 40
    assert isinstance(stack.named_estimators_["keras"][-1], KerasClassifier)
    proba = stack.predict_proba(X)
    assert proba.shape == (50, 2) and np.allclose(proba.sum(axis=1), 1)
    assert forward_rows() == 40


def test_hybrid_stack_regression_with_tabular_columns(text_preset, frame):
    target = 2 * frame["price"].fillna(10).to_numpy() + 3 * (frame["genre"] == "drama")
    stack = make_hybrid_stack(
        text_preset,
        heads=["logreg"],
        columns={"review": "text", "price": "numeric", "genre": "categorical"},
        tabular=["rf", Ridge(), KerasRegressor(epochs=2, random_state=0)],
        task="regression",
        cv=3,
        random_state=0,
    )
    assert isinstance(stack, StackingRegressor)
    names = ["logreg", "tabular_rf", "tabular_ridge", "tabular_kerasregressor"]
    assert [n for n, _ in stack.estimators] == names
    pred = stack.fit(frame, target).predict(frame)
    assert pred.shape == (36,) and np.corrcoef(pred, target)[0, 1] > 0.9


def test_out_of_fold_matrix_is_what_the_final_estimator_learned_from(
    text_preset, data, forward_rows
):
    X, y = data
    stack = make_hybrid_stack(
        text_preset, heads=["logreg", "svc", "rf"], random_state=0
    )
    stack.fit(X, y)
    embedded = forward_rows()
    oof = out_of_fold_predictions(stack, X, y)
    assert forward_rows() == embedded  # recomputed from the cache
    assert oof.shape == (50, 3)  # binary: one probability column per head
    in_sample = stack.estimators_[0].predict_proba(X)[:, 1]
    assert not np.allclose(oof[:, 0], in_sample)  # out of fold, not refits' own
    final = clone(stack.final_estimator_).fit(oof, np.searchsorted(stack.classes_, y))
    np.testing.assert_allclose(final.coef_, stack.final_estimator_.coef_, rtol=1e-6)


def test_out_of_fold_rejects_passthrough(data):
    X = np.random.default_rng(0).normal(size=(20, 2))
    y = np.repeat([0, 1], 10)
    stack = StackingClassifier([("lr", LogisticRegression())], passthrough=True)
    with pytest.raises(ValueError, match=r"stack: got passthrough=True"):
        out_of_fold_predictions(stack.fit(X, y), X, y)


def test_stack_errors_are_raised_before_any_work(frame):
    with pytest.raises(ValueError, match=r"tabular: got \['hgb'\] but no numeric"):
        make_hybrid_stack("x", tabular=["hgb"])
    with pytest.raises(ValueError, match=r"heads and tabular: got no models"):
        make_hybrid_stack("x", heads=())
    with pytest.raises(ValueError, match=r"heads: got \['logreg'\] but columns has no"):
        make_hybrid_stack("x", heads=["logreg"], columns={"price": "numeric"})
    with pytest.raises(ValueError, match=r"tabular: got 'hbg'.*Did you mean 'hgb'"):
        make_hybrid_stack("x", columns=frame, tabular=["hbg"])


# -- make_multimodal_transformer ----------------------------------------------------


def test_column_kinds_are_inferred_from_a_dataframe(tmp_path):
    df = pd.DataFrame(
        {
            "text": ["a long review", "short one", None],
            "photo": ["a.png", "B.JPG", "c.webp"],
            "city": ["paris", "rome", "oslo"],
            "age": [1, 2, 3],
            "flag": [True, False, True],
            "level": pd.Categorical(["x", "y", "x"]),
        }
    )
    ct = make_multimodal_transformer(df, image_backbone="img")
    assert [(name, cols) for name, _, cols in ct.transformers] == [
        ("text_text", ["text"]),
        ("image_photo", ["photo"]),
        ("numeric", ["age"]),
        ("categorical", ["city", "flag", "level"]),
    ]
    text, image = ct.transformers[0][1], ct.transformers[1][1]
    assert text.cache is image.cache and text.backbone == "all_minilm_l6_v2_en"
    assert image.backbone == "img"


def test_multimodal_transformer_embeds_each_branch_into_its_own_namespace(
    text_preset, cnn_preset, tmp_path, forward_rows
):
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    df = pd.DataFrame(
        {
            "review": _texts(6),
            "photo": [*paths, paths[0], paths[1]],  # 4 distinct images
            "price": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "genre": ["a", "b", "a", "b", "c", "a"],
        }
    )
    ct = make_multimodal_transformer(
        df, text_backbone=text_preset, image_backbone=cnn_preset
    )
    Z = ct.fit_transform(df)
    text_dim = ct.named_transformers_["text_review"].embedding_dim_
    image_dim = ct.named_transformers_["image_photo"].embedding_dim_
    assert Z.shape == (6, text_dim + image_dim + 1 + 3) and Z.dtype.kind == "f"
    assert forward_rows() == 6 + 4
    cache = ct.transformers[0][1].cache
    assert sorted(cache.namespaces().values()) == [4, 6]
    np.testing.assert_allclose(Z[:, text_dim + image_dim].mean(), 0.0, atol=1e-6)
    unseen = df.assign(genre=["zzz"] * 6)  # unknown category: all-zero one-hot
    Z2 = ct.transform(unseen)
    assert forward_rows() == 10 and not Z2[:, -3:].any()


def test_multimodal_transformer_errors():
    with pytest.raises(ValueError, match=r"columns\['a'\]: got 'txt'.*'text'"):
        make_multimodal_transformer({"a": "txt"})
    with pytest.raises(ValueError, match=r"image_backbone: got None for the image"):
        make_multimodal_transformer({"p": "image"})
    with pytest.raises(TypeError, match=r"columns: got list\. Expected a pandas"):
        make_multimodal_transformer(["a", "b"])
    assert isinstance(make_multimodal_transformer({"n": "numeric"}), ColumnTransformer)

"""Light head tuning inside the folds: what is tuned, stated, and the off switch."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV

from hybridml import run_baseline
from hybridml.baseline.run import run_steps
from hybridml.baseline.tuning import describe, grid, tuned
from hybridml.datasets import load_wine

SETTINGS = dict(
    target="label", text=(), image=(), tabular="auto", groups=None,
    backbones=(), heads="logreg,knn", cv=3, metric=None, task="auto", stack=0,
    limit=None, random_state=0, n_jobs=None,
)  # fmt: skip


def _heads(session):
    return {
        (r["features"], r["head"]): r["_model"].named_steps["head"]
        for r in session.results
        if r["kind"] != "chance"
    }


def test_tunable_heads_are_wrapped_and_the_run_says_so():
    session = run_steps(load_wine(), **SETTINGS)
    heads = _heads(session)
    assert isinstance(heads[("tabular", "logreg")], GridSearchCV)
    assert heads[("tabular", "logreg")].param_grid == {"C": [0.1, 1.0, 10.0]}
    assert isinstance(heads[("tabular", "knn")], GridSearchCV)
    assert not isinstance(heads[("tabular", "hgb")], GridSearchCV)  # kept default
    lines = session.board.attrs["tuning"]
    assert any(line.startswith("logreg: C in [0.1, 1.0, 10.0]") for line in lines)
    assert "inner 3-fold CV" in describe(lines, True)
    # nested CV: each outer fold picks its own C with an inner CV on its training
    # rows only; the leaderboard's fold scores are those, recomputed by hand
    result = next(
        r
        for r in session.results
        if (r["features"], r["head"]) == ("tabular", "logreg")
    )
    X, y = session.X, session.plan.y
    by_hand, picked = [], []
    for train, test in session.splitter.split(X, y):
        fitted = clone(result["_model"]).fit(X.iloc[train], y[train])
        search = fitted.named_steps["head"]
        assert search.n_splits_ == 3  # the inner CV
        assert search.cv_results_["split0_test_score"].shape == (3,)  # 3 values of C
        picked.append(search.best_params_["C"])
        by_hand.append(accuracy_score(y[test], fitted.predict(X.iloc[test])))
    np.testing.assert_allclose(result["scores"], by_hand, rtol=1e-12)
    assert set(picked) <= {0.1, 1.0, 10.0}


def test_no_tune_keeps_the_defaults():
    session = run_steps(load_wine(), tune=False, **SETTINGS)
    heads = _heads(session)
    assert not any(isinstance(h, GridSearchCV) for h in heads.values())
    assert session.board.attrs["tuning"] is None
    assert describe([], False) == "heads: defaults, untuned (--no-tune)"


def test_tune_must_be_a_bool():
    with pytest.raises(TypeError, match="tune: got 'yes'"):
        run_baseline(load_wine(), target="label", backbones=(), tune="yes")


def test_heads_without_a_grid_are_returned_unchanged():
    from sklearn.ensemble import RandomForestClassifier

    rf = RandomForestClassifier()
    assert tuned(rf, "rf", "classification", None, 0) is rf
    assert grid("rf", "classification") is None
    assert grid("svc", "regression") == {"C": [0.3, 1.0, 3.0]}
    ridge = tuned(object(), "logreg", "regression", "r2", 0)
    assert ridge.param_grid == {"alpha": [0.1, 1.0, 10.0]}


def test_too_few_rows_per_class_skip_tuning_and_say_so():
    wine = load_wine()
    tiny = wine.groupby("label").head(40)  # 26 per class per training fold < 30
    session = run_steps(tiny, **SETTINGS)
    heads = _heads(session)
    assert not any(isinstance(h, GridSearchCV) for h in heads.values())
    assert session.board.attrs["tuning"] == [
        "none: fewer than 10 rows per class in each fold of an inner 3-fold CV"
    ]
    assert describe(session.board.attrs["tuning"], True).startswith(
        "heads: defaults, untuned (fewer than 10 rows"
    )

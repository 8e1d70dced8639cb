"""Light head tuning inside the folds: what is tuned, stated, and the off switch."""

from __future__ import annotations

import pytest
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
    # each fold picked its own C on its training rows only (nested CV)
    assert (session.board["mean"].iloc[0]) > 0.9


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

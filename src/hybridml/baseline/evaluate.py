"""The leaderboard's candidates and their evaluation under cross-validation.

Everything fitted (scalers, TF-IDF vocabularies, imputers, heads, the stack)
is fitted inside the folds; only the frozen embeddings are computed up front.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import StackingClassifier, StackingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.preprocessing import OrdinalEncoder
from threadpoolctl import threadpool_limits

from .. import _heads

_STACK_FOLDS = 3


def evaluate_candidates(
    plan: Any, X: pd.DataFrame, models: list, splitter: Any, say: Callable
) -> list[dict]:
    """Cross-validate every candidate, then the stack of the best and chance."""

    def evaluate(cand):
        return _evaluate(
            cand, X, plan.y, plan.group_ids, splitter, plan.scorer, plan.sign,
            plan.n_jobs,
        )  # fmt: skip

    results = []
    # Heads run on one BLAS / OpenMP thread: on a busy 2-core machine, two
    # spinning threads made LogisticRegression 40x and HistGradientBoosting
    # 10-100x slower than one (measured). Folds parallelise with n_jobs instead.
    with threadpool_limits(limits=1):
        for cand in models:
            say(f"cross-validating {cand['features']} + {cand['head']}")
            results.append(evaluate(cand))
        stack = plan.stack
        stacked = (
            stack >= 2 and len(results) >= 2 and _stackable(plan.y, plan.task, plan.cv)
        )
        if stacked:
            best = sorted(results, key=lambda r: -plan.sign * r["mean"])[:stack]
            say(f"cross-validating the stack of the {len(best)} best")
            results.append(
                evaluate(_stack_candidate(best, plan.task, plan.cv, plan.random_state))
            )
        elif stack >= 2:
            say("skipped the stack: too few rows per class for its inner folds")
        # last, so that it ranks below any model it ties with
        results.append(evaluate(_chance_candidate(plan.task)))
    return results


def design_matrix(frame, text, numeric, categorical, blocks) -> pd.DataFrame:
    """Text and categorical columns, numbers as float64, then each feature block."""
    pieces = [frame[text + categorical].reset_index(drop=True)]
    if numeric:
        pieces.append(frame[numeric].astype(np.float64).reset_index(drop=True))
    for key, block in blocks.items():
        columns = [f"{key}{j}" for j in range(block.shape[1])]
        pieces.append(pd.DataFrame(block, columns=columns))
    return pd.concat(pieces, axis=1)


def candidates(rows, blocks, text, numeric, categorical, heads, task, seed):
    """The leaderboard's unfitted models: each row's features x head, baselines."""
    tab = _heads.tabular_columns(numeric, categorical)
    suffix = " + tabular" if tab else ""
    out = []

    def add(kind, features, head, parts, model, embed_s):
        pipe = _heads.select("features", parts, model)
        out.append(
            dict(kind=kind, features=features, head=head, model=pipe, embed_s=embed_s)
        )

    for kind, features, head, key, seconds in rows:
        cols = [f"{key}{j}" for j in range(blocks[key].shape[1])]
        model = (
            _heads.make_head(head, task, seed)
            if kind == "deep"
            else _heads.make_head("logreg", task, seed)
        )
        add(
            kind,
            features + suffix,
            head,
            [("block", "passthrough", cols), *tab],
            model,
            seconds,
        )
    if text:
        add(
            "classical",
            "tfidf" + suffix,
            "logreg",
            [*_heads.tfidf_columns(text), *tab],
            _heads.make_linear(task, seed),
            0.0,
        )
    if tab:
        if not (text or blocks):
            for head in heads:
                add(
                    "classical",
                    "tabular",
                    head,
                    tab,
                    _heads.make_head(head, task, seed),
                    0.0,
                )
        encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=np.nan,
            encoded_missing_value=np.nan,
            max_categories=250,
        )
        parts = [("numeric", "passthrough", numeric)] if numeric else []
        if categorical:
            parts.append(("categorical", encoder, categorical))
        hgb = _heads.make_hgb(task, seed).set_params(
            categorical_features=[False] * len(numeric) + [True] * len(categorical)
        )
        add("classical", "tabular", "hgb", parts, hgb, 0.0)
    return out


def _chance_candidate(task: str) -> dict:
    """Build the floor: the majority class (or the mean), ignoring features."""
    classify = task == "classification"
    return dict(
        kind="chance",
        features="chance",
        head="prior" if classify else "mean",
        model=DummyClassifier(strategy="prior") if classify else DummyRegressor(),
        embed_s=0.0,
    )


def _evaluate(cand, X, y, groups, splitter, scorer, sign, n_jobs) -> dict:
    # Warnings (a head that did not converge, ...) are collected per model for
    # the report instead of flooding the terminal once per fold.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = cross_validate(
            cand["model"],
            X,
            y,
            groups=groups,
            cv=splitter,
            scoring=scorer,
            n_jobs=n_jobs,
            return_estimator=True,
            error_score="raise",
        )
    notes = []
    for w in caught:
        if issubclass(w.category, DeprecationWarning):
            continue
        line = f"{w.category.__name__}: {str(w.message).strip().splitlines()[0]}"
        if line not in notes:
            notes.append(line)
    scores = sign * result["test_score"]
    head = result["estimator"][0]
    dims = (
        None
        if cand["kind"] in ("stack", "chance")
        else int(getattr(head[-1], "n_features_in_", 0)) or None
    )
    return {
        "features": cand["features"],
        "head": cand["head"],
        "kind": cand["kind"],
        "mean": float(scores.mean()),
        "std": float(scores.std()),
        "embed_s": float(cand["embed_s"]),
        "fit_s": float(result["fit_time"].mean()),
        "dims": dims,
        "scores": [float(s) for s in scores],
        "_model": cand["model"],
        "_warnings": notes,
    }


def _stackable(y: np.ndarray, task: str, cv: int) -> bool:
    """Whether every class has enough training rows for the stack's inner CV."""
    if task == "regression":
        return len(y) * (cv - 1) // cv >= 2 * _STACK_FOLDS
    smallest = int(np.bincount(y).min())
    return smallest * (cv - 1) // cv >= min(cv, _STACK_FOLDS)


def _stack_candidate(best: list, task: str, cv: int, seed: Any) -> dict:
    estimators = [(f"m{i}", clone(r["_model"])) for i, r in enumerate(best)]
    inner = min(cv, _STACK_FOLDS)
    if task == "classification":
        model = StackingClassifier(
            estimators,
            final_estimator=LogisticRegression(max_iter=1000),
            cv=StratifiedKFold(inner, shuffle=True, random_state=seed),
        )
    else:
        model = StackingRegressor(
            estimators, cv=KFold(inner, shuffle=True, random_state=seed)
        )
    members = " | ".join(f"{r['features']} + {r['head']}" for r in best)
    embed_s = sum({r["features"]: r["embed_s"] for r in best}.values())
    return dict(
        kind="stack",
        features=f"stack of {len(best)}: {members}",
        head="logreg" if task == "classification" else "ridge",
        model=model,
        embed_s=embed_s,
    )

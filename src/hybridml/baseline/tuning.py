"""Light tuning of the leaderboard's heads, inside the folds, on cached embeddings.

Untuned defaults make the classical heads look worse than they are (a logistic
regression with ``C=1`` on 384 MiniLM dimensions is often under-regularised or
over-regularised by a factor of ten). :func:`tune_candidates` wraps the head of
each embedding row (and of the TF-IDF and tabular rows) in a small
:class:`~sklearn.model_selection.GridSearchCV` over one parameter, so every
outer fold picks its own value by an inner 3-fold CV on its training rows only:
the outer score stays an honest estimate. The embeddings are computed once, so
the extra cost is a few fits of the head, never a forward pass.

The inner folds are stratified but not grouped (rows of one group may fall on
both sides of an inner split), which can only bias the value picked, not the
outer score. Random forests, XGBoost, histogram gradient boosting and the
pixel / HOG logistic regressions keep their defaults (too slow to tune per fold
on a laptop).
"""

from __future__ import annotations

from typing import Any

from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

from .. import _heads

INNER_FOLDS = 3
# Below this many rows per class (per row, in regression) in each inner fold, the
# inner CV picks by noise: such tiny runs keep the defaults.
MIN_INNER_ROWS = 10


def grid(name: str, task: str) -> dict[str, list] | None:
    """The one parameter searched for head ``name`` on ``task`` (the head table's)."""
    head = _heads.TABLE.get(name)
    return None if head is None else head.grid_for(task)


def check_tune(tune: Any) -> bool:
    """``tune`` as a bool; raise on anything else."""
    if not isinstance(tune, bool):
        raise TypeError(
            f"tune: got {tune!r}. Expected True or False. Pass tune=False to keep "
            "the heads' defaults."
        )
    return tune


def tuned(head: object, name: str, task: str, scorer: Any, seed: Any) -> object:
    """``head`` wrapped in an inner-CV grid search, or ``head`` if it has no grid.

    Examples
    --------
    >>> from hybridml import _heads
    >>> from hybridml.baseline.tuning import tuned
    >>> head = _heads.make_head("logreg", "classification", 0)
    >>> tuned(head, "logreg", "classification", None, 0).param_grid
    {'C': [0.1, 1.0, 10.0]}
    """
    searched = grid(name, task)
    if searched is None:
        return head
    split = StratifiedKFold if task == "classification" else KFold
    return GridSearchCV(
        head,
        searched,
        scoring=scorer,
        cv=split(INNER_FOLDS, shuffle=True, random_state=seed),
        error_score="raise",
    )


def _tunable(cand: dict) -> str | None:
    """The grid name of a candidate's head, or ``None`` if it keeps its defaults."""
    if cand["kind"] == "deep" and cand["head"] in _heads.HEADS:
        return cand["head"]
    features = str(cand["features"])
    if cand["kind"] == "classical" and features.startswith("tfidf"):
        return "logreg"
    if cand["kind"] == "classical" and features == "tabular":
        return cand["head"] if cand["head"] in _heads.HEADS else None
    return None


def tune_candidates(candidates: list, plan: Any) -> list[str]:
    """Wrap each tunable candidate's head in place; return one line per grid."""
    if not _enough_rows(plan):
        return [
            f"none: fewer than {MIN_INNER_ROWS} rows per class in each fold of an "
            f"inner {INNER_FOLDS}-fold CV"
        ]
    used = {}
    for cand in candidates:
        name = _tunable(cand)
        searched = None if name is None else grid(name, plan.task)
        if searched is None:
            continue
        pipe = cand["model"]
        pipe.set_params(
            head=tuned(
                pipe.named_steps["head"], name, plan.task, plan.scorer,
                plan.random_state,
            )
        )  # fmt: skip
        [(param, values)] = searched.items()
        used[name] = f"{name}: {param} in {values}"
    return [
        f"{line} by an inner {INNER_FOLDS}-fold CV in each fold"
        for line in used.values()
    ]


def _enough_rows(plan: Any) -> bool:
    """Whether each outer training fold can hold the inner folds."""
    import numpy as np

    if plan.task == "regression":
        need = 2 * MIN_INNER_ROWS * INNER_FOLDS
        return len(plan.y) * (plan.cv - 1) // plan.cv >= need
    smallest = int(np.bincount(plan.y).min())
    return smallest * (plan.cv - 1) // plan.cv >= MIN_INNER_ROWS * INNER_FOLDS


def describe(lines: list[str], tune: bool) -> str:
    """The one line the CLI and the report print about tuning."""
    if not tune:
        return "heads: defaults, untuned (--no-tune)"
    if not lines:
        return "heads: defaults (no tunable head in this run)"
    if lines[0].startswith("none: "):
        return f"heads: defaults, untuned ({lines[0][len('none: ') :]})"
    return "heads tuned: " + "; ".join(lines)

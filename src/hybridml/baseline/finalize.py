"""Refit one leaderboard row on every row: the model a user keeps.

:func:`finalize` takes what :func:`~hybridml.baseline.run.run_steps` left
behind (the design matrix of cached embeddings and each row's unfitted model),
refits the chosen rank on all rows and returns a
:class:`~hybridml.baseline.saved.HybridModel` ready for
:func:`~hybridml.baseline.saved.save_model`. No backbone runs again: the
embeddings of the leaderboard are reused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone

from .._validation import check_int
from .blocks import block_key
from .features import pixel_mode
from .saved import HybridModel
from .table import value_kind


def pick_result(session: Any, rank: Any) -> tuple[dict, dict]:
    """The board row of ``rank`` and the evaluation result it came from."""
    board = session.board
    rank = check_int(rank, "rank", minimum=1)
    if rank > len(board):
        raise ValueError(
            f"rank: got {rank}. Expected a rank between 1 and {len(board)} (the "
            "leaderboard's rows). Pass --save 1 for the best."
        )
    row = board.iloc[rank - 1].to_dict()
    if row["kind"] == "chance":
        raise ValueError(
            f"rank: got {rank}, the chance row. Expected a model that reads the "
            "features. Pick another rank."
        )
    result = session.result_for(row)
    if result is not None:
        return row, result
    raise LookupError(f"no evaluation result for leaderboard rank {rank}")


def finalize(session: Any, rank: int = 1) -> HybridModel:
    """Refit the model of leaderboard ``rank`` on all rows.

    Parameters
    ----------
    session : Session
        What :func:`hybridml.baseline.run.run_steps` returned.
    rank : int, default=1
        The leaderboard row to refit (1 is the best).

    Returns
    -------
    HybridModel
        The fitted pipeline with its backbones (as parameters and
        fingerprints), columns, roles, label encoding and leaderboard row.
    """
    row, result = pick_result(session, rank)
    if row["kind"] in ("tuned", "finetuned"):
        raise ValueError(
            f"rank: got {rank}, a {row['kind']} row ({row['features']} + "
            f"{row['head']}). Expected a frozen-backbone, classical or stack row: "
            "a model file stores no fine-tuned weights yet. Pick another rank "
            "with --save RANK."
        )
    plan = session.plan
    blocks = block_specs(session.transformers, plan)
    pipeline = strip_searches(clone(result["_model"]).fit(session.X, plan.y))
    attrs = session.board.attrs
    row = {k: _plain(v) for k, v in row.items()}
    roles = {
        "target": plan.target,
        "text": list(plan.text),
        "image": list(plan.image),
        "numeric": list(plan.numeric),
        "categorical": list(plan.categorical),
        "groups": plan.group[0] if plan.group else None,
    }
    return HybridModel(
        pipeline=pipeline,
        task=plan.task,
        classes=list(attrs["classes"]),
        roles=roles,
        blocks=blocks,
        row=row,
        schema=column_schema(plan),
        settings={
            "metric": attrs["metric"],
            "cv": attrs["cv"],
            "n_rows": attrs["n_rows"],
            "tuning": attrs.get("tuning"),
            "data": os.fspath(plan.base) if plan.base is not None else None,
        },
    )


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of a board cell (NumPy scalars, NaN)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def block_specs(transformers: list, plan: Any) -> list[dict]:
    """Each backbone of a run as parameters + fingerprint (no weights)."""
    out = []
    for i, (spec, (transformer, modality, _)) in enumerate(
        zip(plan.specs, transformers, strict=True)
    ):
        if not isinstance(spec, (str, os.PathLike)):
            raise TypeError(
                f"backbone: got a {type(spec).__name__} object. Expected a preset "
                "name or preset folder to save a model that names it. Pass the "
                "backbone as a preset name or folder (save_to_preset)."
            )
        text = os.fspath(spec)
        if Path(text).expanduser().exists():
            text = str(Path(text).expanduser().resolve())
        params = transformer.get_params()
        params = {k: v for k, v in params.items() if k not in ("cache", "verbose")}
        params["backbone"] = text
        # the dtype this run resolved ("auto" could resolve otherwise elsewhere,
        # and the fingerprint carries it): a file names what it was trained on
        params["dtype"] = getattr(transformer, "dtype_", None) or params.get("dtype")
        if isinstance(params.get("image_size"), tuple):
            params["image_size"] = list(params["image_size"])
        cols = list(plan.text if modality == "text" else plan.image)
        out.append(
            {
                "key": block_key(i),
                "modality": modality,
                "columns": cols,
                "params": params,
                "fingerprint": transformer.fingerprint_,
            }
        )
    return out


def column_schema(plan: Any) -> dict:
    """Each feature column's role and kind; categories' levels, images' mode."""
    frame = plan.frame
    schema: dict[str, dict] = {}
    for col in plan.text:
        schema[col] = {"role": "text", "kind": "text"}
    for col in plan.image:
        mode = pixel_mode(plan.images[col], col)
        schema[col] = {"role": "image", "kind": "image", "mode": mode}
    for col in plan.numeric:
        schema[col] = {"role": "numeric", "kind": value_kind(frame[col])}
    for col in plan.categorical:
        values = frame[col]
        levels = sorted({_plain(v) for v in values.dropna()}, key=lambda v: str(v))
        schema[col] = {
            "role": "categorical",
            "kind": value_kind(values),
            "levels": levels,
        }
    return schema


def strip_searches(obj: Any, seen: set | None = None) -> Any:
    """``obj`` with every fitted ``GridSearchCV`` replaced by its best estimator.

    The light head tuning wraps heads in a grid search; once refitted, only its
    ``best_estimator_`` predicts. A model file then holds plain estimators, not
    the search's scorer (a function) and ``cv_results_``. Predictions are the
    same (``GridSearchCV.predict`` calls the best estimator).
    """
    from sklearn.base import BaseEstimator
    from sklearn.model_selection import GridSearchCV

    seen = set() if seen is None else seen
    if isinstance(obj, GridSearchCV):
        inner = (
            obj.best_estimator_ if hasattr(obj, "best_estimator_") else obj.estimator
        )
        return strip_searches(inner, seen)
    if id(obj) in seen:
        return obj
    seen.add(id(obj))
    if isinstance(obj, list):
        obj[:] = [strip_searches(v, seen) for v in obj]
    elif isinstance(obj, tuple):
        return tuple(strip_searches(v, seen) for v in obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            obj[k] = strip_searches(v, seen)
    elif isinstance(obj, BaseEstimator):
        for k, v in vars(obj).items():
            vars(obj)[k] = strip_searches(v, seen)
    return obj

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
from typing import Any

from sklearn.base import clone

from .._validation import check_int
from .saved import HybridModel, block_specs


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
    for result in session.results:
        key = (result["features"], result["head"], result["kind"])
        if key == (row["features"], row["head"], row["kind"]):
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
    plan = session.plan
    blocks = block_specs(session.embedders, plan)
    pipeline = clone(result["_model"]).fit(session.X, plan.y)
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
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value

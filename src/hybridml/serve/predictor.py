"""A loaded model as the server sees it: rows from JSON, checks, predictions, schema.

No HTTP here. :class:`Predictor` turns a request's JSON into rows of the
model's columns (``ValueError`` for the server's 422, :class:`TooManyRows` for
its 413: the shape of the body, its cells and its columns, checked on the
event loop with no pandas), runs a batch of requests through the model (the
column checks of ``hybridml predict``, then labels, and probabilities when
asked), describes the model for ``GET /schema``, and warms it with a dummy
batch. A categorical column's kind is judged per request, as ``hybridml
predict`` judges it per file; the other checks are per cell, so a batch runs
them once.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pandas as pd

from ..baseline.predict import check_columns_present, check_frame, prediction_frame


def load(
    path: str | os.PathLike, key: str | None = None, allow_download: bool = False
) -> Any:
    """:func:`hybridml.load_model`: the same trust rules as ``hybridml predict``."""
    from ..baseline import saved

    return saved.load_model(path, key=key, allow_download=allow_download)


class TooManyRows(ValueError):
    """A request with more rows than the server accepts (HTTP 413)."""


_SCALARS = (str, int, float, bool, type(None))
_KINDS = {"text": "string", "numeric": "number", "categorical": "category"}


class Predictor:
    """The model behind the endpoints.

    Parameters
    ----------
    model : HybridModel
        As returned by :func:`hybridml.load_model`.
    max_rows : int, default=1000
        The most rows one request may send.
    """

    def __init__(self, model: Any, *, max_rows: int = 1000) -> None:
        if model.roles.get("image"):
            raise ValueError(
                f"serve: got a model with image columns {model.roles['image']}. "
                "Expected text and tabular columns only: an image column holds "
                "file paths, and a server must not open paths its clients name. "
                "Use hybridml predict for image models."
            )
        self.model = model
        self.max_rows = max_rows
        self.columns = list(model.columns)
        self.has_proba = model.task == "classification" and hasattr(
            model.pipeline, "predict_proba"
        )

    # -------------------------------------------------------------- requests
    def rows(self, body: Any, *, proba: bool = False) -> list[dict]:
        """A request's rows, each a dict of the model's columns (cells checked)."""
        if proba and not self.has_proba:
            raise ValueError(
                f"proba: got proba=true for a {self.model.task} model without "
                "probabilities. Expected a classifier with predict_proba. Drop "
                "proba=true."
            )
        records = self._records(body)
        # a column is there when any row names it (as in a DataFrame of them)
        present = {}
        for record in records:
            present.update(dict.fromkeys(record))
        check_columns_present(self.model, list(present))
        return [{c: r.get(c) for c in self.columns} for r in records]

    def check(self, rows: list[dict]) -> pd.DataFrame:
        """One request's rows as a checked frame (``hybridml predict``'s checks)."""
        frame = pd.DataFrame.from_records(rows, columns=self.columns)
        checked, _, _ = check_frame(self.model, frame)
        return checked[self.columns].reset_index(drop=True)

    def _records(self, body: Any) -> list[dict]:
        rows = [body] if isinstance(body, dict) else body
        if not isinstance(rows, list) or not rows:
            raise ValueError(
                f"body: got {_describe(body)}. Expected a JSON object (one row), a "
                "list of objects (records) or a list of lists (rows in the "
                f"column order {self.columns}). Send e.g. "
                f"[{{{', '.join(repr(c) + ': ...' for c in self.columns[:3])}}}]."
            )
        if len(rows) > self.max_rows:
            raise TooManyRows(
                f"rows: got {len(rows)} rows in one request. Expected at most "
                f"{self.max_rows} (--max-rows). Split the request."
            )
        if all(isinstance(r, list) for r in rows):
            rows = [self._from_list(i, r) for i, r in enumerate(rows)]
        elif not all(isinstance(r, dict) for r in rows):
            kinds = sorted({_describe(r) for r in rows})
            raise ValueError(
                f"rows: got a list of {', '.join(kinds)}. Expected only objects "
                "or only lists. Send every row the same way."
            )
        for i, row in enumerate(rows):
            for col, value in row.items():
                if not isinstance(value, _SCALARS) or _nonfinite(value):
                    raise ValueError(
                        f"row {i}, column {col!r}: got {_describe(value)}. Expected "
                        "a string, a finite number, true/false or null. Send one "
                        "value per cell."
                    )
        return rows

    def _from_list(self, i: int, row: list) -> dict:
        if len(row) != len(self.columns):
            raise ValueError(
                f"row {i}: got a list of {len(row)} values. Expected "
                f"{len(self.columns)}, one per column {self.columns}. Send "
                "records (objects) to name the columns."
            )
        return dict(zip(self.columns, row, strict=True))

    # ----------------------------------------------------------------- model
    def predict(self, groups: list[list[dict]], proba: bool) -> list[tuple]:
        """``(prediction, {class: probability} or None)`` per row of the groups.

        ``hybridml predict``'s own path: one embedding of the rows serves both
        the labels and the probabilities.
        """
        if self.model.roles["categorical"]:  # a column's kind: per request
            frame = pd.concat([self.check(g) for g in groups], ignore_index=True)
        else:
            frame = self.check([row for rows in groups for row in rows])
        out = prediction_frame(self.model, frame, proba=proba)
        labels = [_plain(v) for v in out[f"predicted_{self.model.roles['target']}"]]
        if not proba:
            return [(label, None) for label in labels]
        classes = [str(c) for c in self.model.classes]
        table = out[[f"proba_{c}" for c in self.model.classes]].to_numpy(float)
        return [
            (label, dict(zip(classes, row, strict=True)))
            for label, row in zip(labels, table.tolist(), strict=True)
        ]

    def answer(self, results: list[tuple], proba: bool) -> dict:
        """The JSON body of a successful ``POST /predict``."""
        body: dict = {"predictions": [label for label, _ in results]}
        if proba:
            body["proba"] = [p for _, p in results]
        return body

    def example_rows(self) -> list[dict]:
        """Two dummy rows: the warm-up batch and the OpenAPI example."""
        roles, levels = self.model.roles, self.levels()
        rows = []
        for i, text in enumerate(["warm up", "a warm-up row, a little longer"]):
            row = {c: text for c in roles["text"]}
            row.update({c: float(i) for c in roles["numeric"]})
            row.update({c: (levels.get(c) or [""])[0] for c in roles["categorical"]})
            rows.append(row)
        return rows

    # ---------------------------------------------------------------- schema
    def levels(self) -> dict:
        """Categorical levels from the model's schema, where it records them."""
        schema = getattr(self.model, "schema", None) or {}
        out = {}
        for col in self.model.roles["categorical"]:
            entry = schema.get(col) if isinstance(schema, dict) else None
            found = entry.get("levels") if isinstance(entry, dict) else None
            if isinstance(found, (list, tuple)):
                out[col] = list(found)
        return out

    def schema(self) -> dict:
        """``GET /schema``: columns, roles, a JSON type per column, classes."""
        model, roles = self.model, self.model.roles
        saved = getattr(model, "schema", None)
        entries = saved if isinstance(saved, dict) else {}
        dtypes = {}
        for role, kind in _KINDS.items():
            for col in roles[role]:
                entry = entries.get(col)
                found = entry.get("kind") if isinstance(entry, dict) else None
                # a categorical column's JSON type, where the model file says
                dtypes[col] = found if role == "categorical" and found else kind
        out = {
            "columns": self.columns,
            "roles": roles,
            "dtypes": dtypes,
            "levels": self.levels(),
            "target": roles["target"],
            "task": model.task,
            "classes": list(model.classes),
            "proba": self.has_proba,
            "max_rows": self.max_rows,
            "model": {k: _plain(v) for k, v in dict(model.row).items()},
        }
        if saved is not None:
            out["schema"] = _plain(saved)
        return out


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    if isinstance(value, (float, int)) and not isinstance(value, bool):
        return repr(value)
    if isinstance(value, str):
        return repr(value[:40])
    return "null" if value is None else repr(value)


def _nonfinite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _plain(value: Any) -> Any:
    """A JSON-safe copy: NumPy scalars to Python, NaN to None, containers walked."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    return str(value)

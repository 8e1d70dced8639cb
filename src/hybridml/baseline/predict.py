"""Apply a saved model to new rows: the checks, the embedding, the output table.

Every column check runs before any backbone loads; each backbone is then
loaded from its saved parameters (offline, like the run that saved it) and its
fingerprint compared with the saved one before a single row is embedded.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer

from . import features as _features
from . import table as _checks
from .evaluate import _design_matrix


def check_frame(model: Any, data: Any) -> tuple[pd.DataFrame, Any, dict]:
    """Read ``data`` and check the model's columns; return frame, base, images."""
    frame, base = _checks.read_data(data)
    frame = frame.copy()  # never change the caller's table
    missing = [c for c in model.columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"columns: got a table without {missing} (it has "
            f"{list(frame.columns)[:8]}). Expected every column the model was "
            f"trained on: {model.columns}. Add or rename them."
        )
    roles = model.roles
    for col in roles["text"]:
        _checks.check_text(frame[col], col)
    for col in roles["numeric"]:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & frame[col].notna()
        if bad.any():
            where = np.flatnonzero(bad.to_numpy())
            raise ValueError(
                f"numeric column {col!r}: got non-numeric values such as "
                f"{frame[col][bad].iloc[0]!r} (rows {where[:5].tolist()}). Expected "
                "numbers (or blanks) as in training. Fix or drop those rows."
            )
        frame[col] = values
    images = {c: _checks.image_items(frame[c], c, base) for c in roles["image"]}
    return frame, base, images


def needed_keys(pipeline: Any) -> set[str]:
    """The feature-block prefixes (``_hml0_``, ...) the fitted pipeline reads."""
    keys = set()
    parts = [pipeline, *pipeline.get_params(deep=True).values()]
    for part in parts:
        if isinstance(part, ColumnTransformer):
            for _, _, cols in part.transformers:
                if isinstance(cols, (list, tuple)):
                    for col in cols:
                        if isinstance(col, str) and col.startswith("_hml"):
                            keys.add(col[: col.index("_", 4) + 1])
    return keys


def design_matrix(model: Any, data: Any, cache: Any = None) -> pd.DataFrame:
    """The matrix the saved pipeline reads, embedding only the blocks it uses."""
    frame, _, images = check_frame(model, data)
    keys = needed_keys(model.pipeline)
    blocks = {}
    for spec in model.blocks:
        if spec["key"] in keys:
            blocks[spec["key"]] = _embed(spec, frame, images, cache)
    if {"_hmlpixels_", "_hmlhog_"} & keys:
        feats = [_features.image_features(images[c], c) for c in model.roles["image"]]
        for kind in ("pixels", "hog"):
            blocks[f"_hml{kind}_"] = np.hstack([f[kind] for f in feats])
    roles = model.roles
    return _design_matrix(
        frame, roles["text"], roles["numeric"], roles["categorical"], blocks
    )


def _embed(spec: dict, frame: pd.DataFrame, images: dict, cache: Any) -> np.ndarray:
    from ..cache.store import EmbeddingCache
    from ..embed.transformer import KerasEmbeddingTransformer
    from .embed_table import _cache

    store = _cache(cache, EmbeddingCache) if cache is not None else None
    embedder = KerasEmbeddingTransformer(**spec["params"], cache=store).fit()
    if embedder.fingerprint_ != spec["fingerprint"]:
        raise ValueError(
            f"backbone {spec['params']['backbone']!r}: got weights with fingerprint "
            f"{embedder.fingerprint_[:12]}. Expected {spec['fingerprint'][:12]}, the "
            "backbone the model was trained with. Install that backbone, or refit."
        )
    text = spec["modality"] == "text"
    parts = [
        embedder.transform(frame[col] if text else images[col])
        for col in spec["columns"]
    ]
    return np.hstack(parts).astype(np.float32)


def prediction_frame(
    model: Any,
    data: Any,
    *,
    proba: bool = False,
    keep: list[str] = (),
    cache: Any = None,
) -> pd.DataFrame:
    """The table ``hybridml predict`` writes: kept columns, predictions, proba."""
    frame, _ = _checks.read_data(data)
    keep = _checks.check_columns(frame, list(keep), "keep")
    if proba and model.task != "classification":
        raise ValueError(
            f"--proba: got a {model.task} model. Expected a classification model "
            "for class probabilities. Drop --proba."
        )
    if proba and not hasattr(model.pipeline, "predict_proba"):
        model.predict_proba(frame)  # raises the one-line error, before embedding
    target = model.roles["target"]
    out = frame[keep].reset_index(drop=True)
    name = f"predicted_{target}"
    X = design_matrix(model, frame, cache)
    pred = model.pipeline.predict(X)
    if model.task == "classification":
        out[name] = np.asarray(model.classes, dtype=object)[np.asarray(pred, int)]
    else:
        out[name] = np.asarray(pred, dtype=np.float64)
    if proba:
        p = model.pipeline.predict_proba(X)
        for j, c in enumerate(model.classes):
            out[f"proba_{c}"] = p[:, j]
    return out


def write_predictions(frame: pd.DataFrame, output: str | os.PathLike) -> None:
    """Write ``frame`` as CSV or Parquet (by suffix), atomically."""
    from pathlib import Path

    from .._atomic import atomic_path

    output = Path(output)
    if output.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ValueError(
            f"--output: got {str(output)!r}. Expected a .csv or .parquet file "
            "name. Use e.g. -o predictions.csv."
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:
        if output.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)

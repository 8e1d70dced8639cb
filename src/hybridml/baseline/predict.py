"""Apply a saved model to new rows: the checks, the embedding, the output table.

Every column check runs before any backbone loads: presence, text, numbers,
each categorical column's kind and levels against what training saw, image
paths (relative ones resolved against the input file's folder, as in
training). Each backbone is then loaded from its saved parameters, offline
unless the model was loaded with ``allow_download=True``, and its fingerprint
compared with the saved one before a single row is embedded. Nothing here
changes the model: predictions from several threads are safe.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer

from . import features, table
from .blocks import block_key, block_of
from .evaluate import design_matrix as build_matrix


def check_frame(model: Any, data: Any, base: Path | None = None) -> tuple:
    """Read ``data`` and check the model's columns; return frame, base, images.

    ``base`` is the folder relative image paths resolve against; a file path
    as ``data`` gives its own folder, as in training.
    """
    frame, file_base = table.read_data(data)
    base = file_base if file_base is not None else base
    frame = frame.copy()  # never change the caller's table
    check_columns_present(model, list(frame.columns))
    roles = model.roles
    for col in roles["text"]:
        table.check_text(frame[col], col)
    for col in roles["numeric"]:
        frame[col] = _numbers(frame[col], col)
    for col in roles["categorical"]:
        frame[col] = _categories(frame[col], col, model.schema.get(col, {}))
    images = {c: table.image_items(frame[c], c, base) for c in roles["image"]}
    return frame, base, images


def check_columns_present(model: Any, have: list) -> None:
    """Refuse a table (or a request's rows) without a column the model reads."""
    missing = [c for c in model.columns if c not in have]
    if missing:
        raise ValueError(
            f"columns: got a table without {missing} (it has {have[:8]}). "
            f"Expected every column the model was trained on: {model.columns}. "
            "Add or rename them."
        )


def _numbers(column: pd.Series, col: str) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna()
    if bad.any():
        where = np.flatnonzero(bad.to_numpy())
        raise ValueError(
            f"numeric column {col!r}: got non-numeric values such as "
            f"{column[bad].iloc[0]!r} (rows {where[:5].tolist()}). Expected "
            "numbers (or blanks) as in training. Fix or drop those rows."
        )
    return values


def _categories(column: pd.Series, col: str, entry: dict) -> pd.Series:
    """The column as training saw it; its kind checked, unseen levels named."""
    kind, levels = entry.get("kind"), entry.get("levels", [])
    got = table.value_kind(column)
    if kind in ("string", "number", "bool") and got not in (kind, "mixed"):
        column = _coerce(column, col, kind, got, levels)
    known = set(levels)  # built once, not once per row
    unseen = sorted({str(v) for v in column.dropna() if v not in known})
    if unseen:
        shown = ", ".join(map(repr, unseen[:5]))
        warnings.warn(
            f"categorical column {col!r}: {len(unseen)} value(s) never seen in "
            f"training ({shown}{', ...' if len(unseen) > 5 else ''}); the model "
            "reads them as no known category.",
            UserWarning,
            stacklevel=4,
        )
    return column


def _coerce(column: pd.Series, col: str, kind: str, got: str, levels: list):
    """Numbers read from a CSV where training had text (or the reverse)."""
    present = column.dropna()
    if kind == "string":
        as_text = present.map(
            lambda v: str(int(v)) if float(v).is_integer() else str(v)
        )
        if as_text.isin(levels).all():
            return column.astype(object).where(column.isna(), as_text)
    elif kind == "number":
        as_num = pd.to_numeric(present, errors="coerce")
        if as_num.notna().all() and as_num.isin(levels).all():
            return pd.to_numeric(column, errors="coerce")
    example = present.iloc[0] if len(present) else None
    raise ValueError(
        f"categorical column {col!r}: got {got} values such as {example!r}. "
        f"Expected {kind} values as in training (e.g. "
        f"{', '.join(map(repr, levels[:3]))}). Convert the column to the "
        "training type, or fix the file."
    )


def needed_keys(pipeline: Any) -> set[str]:
    """The feature-block prefixes (``_hml0_``, ...) the fitted pipeline reads."""
    keys = set()
    parts = [pipeline, *pipeline.get_params(deep=True).values()]
    for part in parts:
        if isinstance(part, ColumnTransformer):
            for _, _, cols in part.transformers:
                if isinstance(cols, (list, tuple)):
                    keys |= {block_of(col) for col in cols} - {None}
    return keys


def design_matrix(
    model: Any, data: Any, cache: Any = None, base: Path | None = None
) -> pd.DataFrame:
    """The matrix the saved pipeline reads, embedding only the blocks it uses."""
    frame, _, images = check_frame(model, data, base)
    keys = needed_keys(model.pipeline)
    blocks = {}
    for spec in model.blocks:
        if spec["key"] in keys:
            blocks[spec["key"]] = _embed(spec, frame, images, cache, model)
    pixel_keys = {block_key("pixels"), block_key("hog")}
    if pixel_keys & keys:
        feats = [
            features.image_features(images[c], c, model.schema[c]["mode"])
            for c in model.roles["image"]
        ]
        for kind in ("pixels", "hog"):
            blocks[block_key(kind)] = np.hstack([f[kind] for f in feats])
    roles = model.roles
    return build_matrix(
        frame, roles["text"], roles["numeric"], roles["categorical"], blocks
    )


def check_backbone_source(name: str, allow_download: bool) -> None:
    """Refuse a backbone a model file names that would need the network."""
    from ..embed.offline import fallback_preset, offline_preset

    if allow_download:
        return
    if "://" not in name and offline_preset(name) is not None:
        return
    path = Path(name).expanduser()
    if "://" not in name and path.is_absolute() and path.is_dir():
        return
    if "://" in name or fallback_preset(name) is not None:
        what = "a download"
    elif path.is_absolute() or os.sep in name:
        what = "a folder that does not exist here"
    else:
        what = "a keras-hub preset download (no offline copy is installed)"
    raise ValueError(
        f"backbone {name[:120]!r}: got a model file whose backbone needs {what}. "
        "Expected an offline copy or a local folder. Install or copy that "
        "backbone, or load with allow_download=True (--allow-download) if you "
        "trust this file."
    )


def _embed(spec: dict, frame: pd.DataFrame, images: dict, cache: Any, model: Any):
    from ..cache.store import EmbeddingCache
    from ..embed.transformer import KerasEmbeddingTransformer

    name = spec["params"]["backbone"]
    check_backbone_source(name, getattr(model, "allow_download", False))
    store = EmbeddingCache.coerce(cache)
    transformer = KerasEmbeddingTransformer(**spec["params"], cache=store).fit()
    if transformer.fingerprint_ != spec["fingerprint"]:
        raise ValueError(
            f"backbone {name!r}: got weights with fingerprint "
            f"{transformer.fingerprint_[:12]}. Expected "
            f"{spec['fingerprint'][:12]}, the backbone the model was trained "
            "with. Install that backbone, or refit."
        )
    text = spec["modality"] == "text"
    parts = [
        transformer.transform(frame[col] if text else images[col])
        for col in spec["columns"]
    ]
    return np.hstack(parts).astype(np.float32)


def labels(model: Any, codes: np.ndarray) -> np.ndarray:
    """The pipeline's predictions as the user's labels (or float values)."""
    if model.task == "classification":
        return np.asarray(model.classes, dtype=object)[np.asarray(codes, int)]
    return np.asarray(codes, dtype=np.float64)


def prediction_frame(
    model: Any,
    data: Any,
    *,
    proba: bool = False,
    keep: list[str] = (),
    cache: Any = None,
) -> pd.DataFrame:
    """The table ``hybridml predict`` writes: kept columns, predictions, proba."""
    frame, base = table.read_data(data)
    keep = table.check_columns(frame, list(keep), "keep")
    if proba and model.task != "classification":
        raise ValueError(
            f"--proba: got a {model.task} model. Expected a classification model "
            "for class probabilities. Drop --proba."
        )
    if proba:
        model.check_proba()  # the one-line error, before embedding
    out = frame[keep].reset_index(drop=True)
    X = design_matrix(model, frame, cache, base)
    head, X = _head_and_features(model.pipeline, X, proba)
    out[f"predicted_{model.roles['target']}"] = labels(model, head.predict(X))
    if proba:
        p = head.predict_proba(X)
        for j, c in enumerate(model.classes):
            out[f"proba_{c}"] = p[:, j]
    return out


def _head_and_features(pipeline: Any, X: Any, both: bool) -> tuple[Any, Any]:
    """The estimator to call and what it reads: the pipeline's steps run once.

    Where labels and probabilities are both asked, a :class:`Pipeline`'s
    transforms (the column selection over hundreds of named columns: about
    6 ms a call) run once for both, exactly as ``Pipeline.predict`` would run
    them; anything else is called as it is.
    """
    from sklearn.pipeline import Pipeline

    if not both or not isinstance(pipeline, Pipeline) or len(pipeline) < 2:
        return pipeline, X
    return pipeline[-1], pipeline[:-1].transform(X)

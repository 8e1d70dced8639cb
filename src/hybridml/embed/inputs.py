"""Input checks and normalisation for the embedding transformer.

Everything here runs before any model work, so a bad row is reported by index
(or a bad file by name) at once, not after minutes of embedding. Also home of
the one row-key function: the content hash that names a row in a cache.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import _pixels
from .._validation import is_missing

ImageItem = Any  # np.ndarray | str (file path) | PIL.Image.Image


def _rows(X: Any, what: str) -> Sequence[Any]:
    """Return a 1-D sequence of rows from a list, array, Series or 1-column frame."""
    if isinstance(X, (str, bytes)):
        raise TypeError(
            f"{what} input: got a single string {X[:60]!r}. Expected a list, "
            "array or Series of rows. Wrap one item in a list: [x]."
        )
    columns = getattr(X, "columns", None)
    if columns is not None:  # DataFrame
        if len(columns) != 1:
            raise ValueError(
                f"{what} input: got a DataFrame with {len(columns)} columns "
                f"{list(columns)[:5]!r}. Expected exactly one column. Select it, "
                "e.g. ColumnTransformer([('embed', embedder, 'text')])."
            )
        return list(X.iloc[:, 0])
    if hasattr(X, "to_numpy") and hasattr(X, "index"):  # Series
        return list(X)
    if isinstance(X, np.ndarray):
        return X
    if isinstance(X, (list, tuple)):
        return X
    raise TypeError(
        f"{what} input: got {type(X).__name__}. Expected a list, tuple, NumPy "
        "array, pandas Series or one-column DataFrame."
    )


def as_texts(X: Any) -> list[str]:
    """Validate text input and return it as a list of ``str``."""
    rows = _rows(X, "text")
    if isinstance(rows, np.ndarray):
        if rows.ndim == 2 and rows.shape[1] == 1:
            rows = rows[:, 0]
        if rows.dtype.kind in "fiubc":
            raise TypeError(
                f"text input: got a numeric array of shape {rows.shape} and dtype "
                f"{rows.dtype}. Expected strings. This backbone embeds text; use "
                "an image backbone for pixel arrays or a numeric head for numbers."
            )
        if rows.ndim != 1:
            raise ValueError(
                f"text input: got an array of shape {rows.shape}. Expected a 1-D "
                "array of strings (or a 2-D array with one column)."
            )
    texts = list(rows)
    if not texts:
        raise ValueError(
            "text input: got 0 rows. Expected at least one string. Pass a "
            "non-empty list, array or Series."
        )
    for i, item in enumerate(texts):
        if isinstance(item, str):
            continue
        if is_missing(item):
            raise ValueError(
                f"text input: item {i} is missing: got {item!r}. Expected str. "
                "Drop or fill missing values first, e.g. X.fillna('')."
            )
        raise TypeError(
            f"text input: item {i} is a {type(item).__name__}: got {item!r:.60}. "
            "Expected str. Convert the column to strings, e.g. X.astype(str)."
        )
    return [str(t) for t in texts]


def as_images(X: Any) -> list[ImageItem]:
    """Validate image input and return a list of arrays, paths or PIL images.

    Paths are checked for existence and decoded once in full (missing,
    truncated or oversized files are named); arrays are checked against the
    pixel-range rule of :mod:`hybridml._pixels`.
    """
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.dtype.kind not in "fiub":
            raise TypeError(
                f"image input: got an array of dtype {X.dtype}. Expected numeric "
                "pixels (uint8 or float), image file paths or PIL images."
            )
        if X.ndim not in (3, 4):
            raise ValueError(
                f"image input: got an array of shape {X.shape}. Expected "
                "(n_images, height, width, channels) or (n_images, height, width) "
                "for grayscale. This backbone embeds images; flattened pixels or "
                "tabular features need reshaping or a numeric head."
            )
        if X.shape[0] == 0:
            raise ValueError("image input: got 0 images. Expected at least one.")
        _pixels.check_range(X, "image input")
        return list(X)
    rows = list(_rows(X, "image"))
    if not rows:
        raise ValueError("image input: got 0 images. Expected at least one.")
    for i, item in enumerate(rows):
        rows[i] = _check_image_item(i, item)
    return rows


def _tail(path: str, width: int = 80) -> str:
    """``path`` shortened from the left, so the file's own name stays in view."""
    return path if len(path) <= width else "..." + path[-(width - 3) :]


def _check_image_item(i: int, item: Any) -> ImageItem:
    if isinstance(item, (str, os.PathLike)):
        path = os.fspath(item)
        if not os.path.isfile(path):
            raise ValueError(
                f"image input: item {i} is not an existing file: got "
                f"{_tail(path)!r}. "
                "Expected an image array, a PIL image or a path to an image file. "
                "Check the path (text needs a text backbone)."
            )
        _pixels.open_image(path, f"image input: item {i}")  # full decode, once
        return path
    if isinstance(item, np.ndarray):
        if item.dtype.kind not in "fiub" or item.ndim not in (2, 3):
            raise ValueError(
                f"image input: item {i} is an array of shape {item.shape} and dtype "
                f"{item.dtype}. Expected (height, width[, channels]) numeric pixels."
            )
        if item.ndim == 3 and item.shape[-1] not in (1, 3, 4):
            raise ValueError(
                f"image input: item {i} has {item.shape[-1]} channels. Expected 1 "
                "(grayscale), 3 (RGB) or 4 (RGBA), channels last."
            )
        _pixels.check_range(item, f"image input: item {i}")
        return item
    if hasattr(item, "convert") and hasattr(item, "mode"):  # PIL image
        return item
    if is_missing(item):
        raise ValueError(
            f"image input: item {i} is missing: got {item!r}. Expected an image. "
            "Drop rows without an image first."
        )
    raise TypeError(
        f"image input: item {i} is a {type(item).__name__}. Expected an image "
        "array, a PIL image or a path to an image file."
    )


def load_image(item: ImageItem) -> np.ndarray:
    """Decode one image item into (H, W, 3) pixels in [0, 255].

    Arrays follow the pixel-range rule of :mod:`hybridml._pixels`: uint8 is
    kept, floats in [0, 1] are scaled by 255 (float32).
    """
    return _pixels.to_0_255(_pixels.as_rgb(item, "image input"))


def row_keys(items: Sequence[Any], modality: str) -> list[str]:
    """Content hash of each row: the key that names a row in an embedding cache.

    Text rows hash their UTF-8 bytes; arrays their dtype, shape and bytes; file
    paths the file's bytes (so a renamed file is still a hit); PIL images their
    decoded RGB pixels; numeric rows their float64 bytes.
    """
    keys = []
    for item in items:
        h = hashlib.sha256()
        if modality == "text":
            h.update(b"text\0" + item.encode("utf-8"))
        elif isinstance(item, (str, os.PathLike)):
            h.update(b"file\0" + Path(item).read_bytes())
        elif isinstance(item, np.ndarray):
            arr = np.ascontiguousarray(item)
            if modality == "numeric":
                arr = arr.astype(np.float64)
            h.update(f"array\0{arr.dtype.str}\0{arr.shape}\0".encode())
            h.update(arr.tobytes())
        else:  # PIL image: the pixels the model sees (a palette image's colours,
            # not its palette indices, which two different images can share)
            arr = np.ascontiguousarray(_pixels.as_rgb(item))
            h.update(f"pil\0{arr.shape}\0".encode())
            h.update(arr.tobytes())
        keys.append(h.hexdigest())
    return keys


def dedupe_keys(items: Sequence[Any], modality: str) -> list[Any]:
    """Return cheap per-row keys for de-duplication when no cache is used.

    Texts are their own key and files their absolute path (no file is read);
    arrays and PIL images fall back to :func:`row_keys`.
    """
    if modality == "text":
        return list(items)
    return [
        os.path.abspath(x) if isinstance(x, str) else row_keys([x], modality)[0]
        for x in items
    ]

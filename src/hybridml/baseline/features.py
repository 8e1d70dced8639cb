"""Classical image features for the leaderboard: raw pixels and a HOG-like descriptor.

Plain NumPy and Pillow, no deep network. The heads and the tabular / TF-IDF
column transformers live in :mod:`hybridml._heads`, shared with the factories.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import _pixels
from .._imports import optional_import

PIXELS_SIZE = 32  # raw-pixel baseline: images resized to 32 x 32
HOG_SIZE = 64  # HOG-like baseline: 64 x 64 grayscale, 8 x 8-pixel cells
HOG_CELL = 8
HOG_BINS = 9


# -- images ------------------------------------------------------------------


def to_pil(item: object, where: str):
    """One image cell (path, array or PIL image) as a PIL image.

    Arrays follow the pixel-range rule of :mod:`hybridml._pixels` (uint8 in
    [0, 255], floats in [0, 1]); files are decoded in full.
    """
    pil = optional_import("PIL.Image")
    if isinstance(item, pil.Image):
        return item
    if isinstance(item, (str, Path)):
        return _pixels.open_image(item, f"image {where}")
    array = np.asarray(item)
    if array.dtype.kind not in "fiub":
        raise ValueError(
            f"image {where}: got an array of dtype {array.dtype}. Expected "
            "numeric pixels. Pass one image (array, path or PIL image) per row."
        )
    array = _pixels.to_uint8(array, f"image {where}")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise ValueError(
            f"image {where}: got an array of shape {array.shape}. Expected "
            "(height, width) or (height, width, channels). Pass one image per row."
        )
    return pil.fromarray(array)


GRAY_MODES = ("L", "1", "I", "I;16", "F")


def pixel_mode(items: Sequence[object], where: str) -> str:
    """The raw-pixel mode of a column: ``"L"`` if every image is gray, else RGB.

    Decided once, on the training column, and saved with the model: at predict
    time every image is converted to that mode on its own, so no row's features
    depend on the other rows of the call.
    """
    images = (to_pil(item, f"{where}, row {i}") for i, item in enumerate(items))
    return "L" if all(img.mode in GRAY_MODES for img in images) else "RGB"


def image_features(
    items: Sequence[object], where: str, mode: str | None = None
) -> dict[str, np.ndarray]:
    """Raw pixels (32 x 32, in ``mode``) and HOG-like features (64 x 64 gray).

    ``mode=None`` decides it from ``items`` (:func:`pixel_mode`): for training.
    """
    pil = optional_import("PIL.Image")
    images = [to_pil(item, f"{where}, row {i}") for i, item in enumerate(items)]
    if mode is None:
        mode = pixel_mode(images, where)
    size = (PIXELS_SIZE, PIXELS_SIZE)
    pixels = np.stack(
        [
            np.asarray(_flat(img).convert(mode).resize(size, pil.BILINEAR), np.float32)
            for img in images
        ]
    )
    hog_in = np.stack(
        [
            np.asarray(_flat(img).convert("L").resize((HOG_SIZE,) * 2, pil.BILINEAR))
            for img in images
        ]
    ).astype(np.float32)
    return {
        "pixels": pixels.reshape(len(images), -1) / 255.0,
        "hog": hog(hog_in / 255.0),
    }


def _flat(img):
    """A palette image as its colours (never its palette indices)."""
    if img.mode in ("P", "PA"):
        return img.convert(
            "RGBA" if "transparency" in img.info or img.mode == "PA" else "RGB"
        )
    return img


def hog(images: np.ndarray) -> np.ndarray:
    """HOG-like descriptor of grayscale images ``(n, h, w)`` in [0, 1].

    Unsigned gradient orientations in 9 bins, magnitude-weighted histograms
    over 8 x 8-pixel cells, 2 x 2-cell blocks normalised with L2-Hys (Dalal and
    Triggs, 2005), without their bilinear vote interpolation.
    """
    n, h, w = images.shape
    gy, gx = np.gradient(images, axis=(1, 2))
    magnitude = np.hypot(gx, gy)
    angle = np.rad2deg(np.arctan2(gy, gx)) % 180.0
    index = np.minimum((angle / (180.0 / HOG_BINS)).astype(int), HOG_BINS - 1)
    ch, cw = h // HOG_CELL, w // HOG_CELL
    crop = (slice(None), slice(0, ch * HOG_CELL), slice(0, cw * HOG_CELL))
    magnitude, index = magnitude[crop], index[crop]
    hist = np.empty((n, ch, cw, HOG_BINS), np.float32)
    for b in range(HOG_BINS):
        votes = np.where(index == b, magnitude, 0.0)
        hist[..., b] = votes.reshape(n, ch, HOG_CELL, cw, HOG_CELL).sum(axis=(2, 4))
    blocks = np.concatenate(
        [hist[:, i : ch - 1 + i, j : cw - 1 + j] for i in (0, 1) for j in (0, 1)],
        axis=-1,
    )
    blocks = blocks / np.sqrt((blocks**2).sum(-1, keepdims=True) + 1e-6)
    blocks = np.minimum(blocks, 0.2)
    blocks = blocks / np.sqrt((blocks**2).sum(-1, keepdims=True) + 1e-6)
    return blocks.reshape(n, -1).astype(np.float32)

"""Pixels: the one home of the pixel-range rule and of image decoding.

The rule, used by the embedding transformer and the leaderboard's pixel and HOG
features alike:

- integer pixels (uint8, or any integer dtype) are taken in [0, 255];
- float pixels must lie in [0, 1] and are scaled by 255;
- anything else (floats above 1 or below 0, NaN, integers outside [0, 255]) is
  refused with a clear error rather than guessed.

So a uint8 image and the same image as float in [0, 1] give the same pixels in
[0, 255] (float32), which is what keras-hub image converters expect. Image
files are decoded fully (not only ``verify``-ed), so truncated files and
decompression bombs are named with a one-line error.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

RULE = "Expected uint8 (or integer) pixels in [0, 255], or float pixels in [0, 1]"


def check_range(array: np.ndarray, where: str) -> None:
    """Raise ValueError unless ``array`` follows the pixel-range rule."""
    if array.size == 0:
        return
    if array.dtype.kind == "b":
        return
    if array.dtype.kind == "f":
        lo, hi = float(np.min(array)), float(np.max(array))
        if not (0.0 <= lo and hi <= 1.0):  # also catches NaN
            raise ValueError(
                f"{where}: got float pixels in [{lo:.4g}, {hi:.4g}]. {RULE}. "
                "Divide by 255 (for 0-255 floats) or convert to uint8."
            )
        return
    if array.dtype.kind in "iu" and array.dtype != np.uint8:
        lo, hi = int(np.min(array)), int(np.max(array))
        if lo < 0 or hi > 255:
            raise ValueError(
                f"{where}: got integer pixels in [{lo}, {hi}]. {RULE}. "
                "Rescale them to 0-255 and convert to uint8."
            )


def to_0_255(array: np.ndarray) -> np.ndarray:
    """Pixels (checked with :func:`check_range`) in [0, 255].

    uint8 stays uint8 (what keras-hub's own tasks feed their converters, so
    results match theirs exactly); floats are scaled by 255 and other
    integers cast, both to float32.
    """
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind == "f":
        return np.asarray(array, np.float32) * np.float32(255.0)
    return np.asarray(array, np.float32)


def to_uint8(array: np.ndarray, where: str) -> np.ndarray:
    """Pixels as uint8 after checking the rule (floats rounded to 0..255)."""
    check_range(array, where)
    if array.dtype == np.uint8:
        return array
    return np.clip(np.rint(to_0_255(array)), 0, 255).astype(np.uint8)


def open_image(path: str | os.PathLike, where: str) -> Any:
    """Open and fully decode an image file; one-line ValueError if it cannot be.

    Decompression bombs (PIL's pixel limit), truncated and garbled files are all
    reported with the file name and a fix, before any model work.
    """
    from PIL import Image, UnidentifiedImageError

    name = os.fspath(path)
    try:
        with Image.open(name) as img:
            img.load()  # decodes every pixel: truncated data fails here
            return img
    except Image.DecompressionBombError as exc:
        raise ValueError(
            f"{where}: could not read {name!r}: too large to decode safely ({exc}). "
            "Expected at most PIL.Image.MAX_IMAGE_PIXELS pixels. Resize the file, "
            "or raise PIL.Image.MAX_IMAGE_PIXELS if you trust it."
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(
            f"{where}: could not read {name!r} as an image ({exc}). Expected a "
            "complete, readable image file (PNG, JPEG, ...). Remove or replace it."
        ) from exc


def as_rgb(item: Any, where: str = "image") -> np.ndarray:
    """Decode one image (array, path or PIL image) into (H, W, 3) pixels.

    Arrays keep their dtype (the range is checked separately); files and PIL
    images give uint8.
    """
    if isinstance(item, np.ndarray):
        arr = item
    elif isinstance(item, (str, os.PathLike)):
        arr = np.asarray(open_image(item, where).convert("RGB"))
    else:
        arr = np.asarray(item.convert("RGB"))
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.shape[-1] == 4:
        arr = arr[:, :, :3]
    return arr

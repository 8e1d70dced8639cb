"""Random image augmentation for contrastive tuning (NumPy only).

SupCon and SimCLR learn from two views of an image that differ by a random
crop and flip; with 8 labelled images a class, such views are most of the
positives a batch holds. Each image is cropped on its own pixels and the
embedder's converter then resizes the crop to the model's input size, so a
crop costs no extra resize.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["random_crop_flip"]


def random_crop_flip(
    image: np.ndarray,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.6, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = True,
    crop: bool = True,
) -> np.ndarray:
    """A random-resized-crop box of ``image``, mirrored left-right half the time.

    The box covers a share of the area drawn from ``scale`` with an aspect
    ratio drawn log-uniformly from ``ratio`` (torchvision's
    RandomResizedCrop); after 10 boxes that do not fit, the whole image.

    Parameters
    ----------
    image : ndarray of shape (H, W, C)
        Pixels.
    rng : numpy.random.Generator
        Source of randomness.
    scale, ratio : (float, float)
        Ranges of the box's area share and width / height.
    flip : bool, default=True
        Mirror half the crops.
    crop : bool, default=True
        Cut a box; False keeps the whole image (only the mirror applies).

    Returns
    -------
    crop : ndarray of shape (h, w, C), contiguous

    Examples
    --------
    >>> import numpy as np
    >>> from hybridml.embed.augment import random_crop_flip
    >>> im = np.arange(100 * 80 * 3, dtype=np.uint8).reshape(100, 80, 3)
    >>> crop = random_crop_flip(im, np.random.default_rng(0))
    >>> crop.shape[0] <= 100 and crop.shape[1] <= 80 and crop.shape[2] == 3
    True
    """
    h, w = image.shape[:2]
    out = image
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10 if crop else 0):
        area = h * w * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        ch = round(math.sqrt(area / aspect))
        cw = round(math.sqrt(area * aspect))
        if 0 < ch <= h and 0 < cw <= w:
            top = int(rng.integers(0, h - ch + 1))
            left = int(rng.integers(0, w - cw + 1))
            out = image[top : top + ch, left : left + cw]
            break
    if flip and rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)

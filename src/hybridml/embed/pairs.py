"""Label targets and batch plans for contrastive fine-tuning (NumPy only).

Pairs are never listed: each batch of ``B`` rows yields its ``B * (B - 1) / 2``
pairs inside the loss, so one epoch sees every row once and about
``n * (B - 1) / 2`` pairs, a budget linear in ``n``. Rows sharing a label are
placed into batches two by two, so each row has at least one positive partner
in its batch whatever the number of classes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import type_of_target

from .._validation import check_labels_present

__all__ = ["batch_plan", "label_targets"]


def label_targets(y: Any, n_rows: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Turn ``y`` into a float32 indicator matrix and one group id per row.

    Multi-class labels become one-hot rows; a binary indicator matrix
    (multi-label) is kept, with a column added for rows carrying no label, so
    two label-less rows count as alike. The group id names each distinct label
    set (used to place alike rows in the same batch).

    Returns
    -------
    Y : ndarray of shape (n_rows, n_columns), float32
    groups : ndarray of shape (n_rows,), int
    kind : {"multiclass", "multilabel"}
    """
    if y is None:
        raise ValueError(
            "y: got None. Expected class labels (1-D) or a binary indicator "
            "matrix (multi-label): ContrastiveFineTuner requires y to be passed, "
            "but the target y is None. Pass y to fit."
        )
    check_labels_present(y)  # before asarray: it would make NaN a "nan" class
    arr = np.asarray(y)
    if len(arr) != n_rows:
        raise ValueError(
            f"y: got {len(arr)} labels for {n_rows} rows. Expected one label (or "
            "one indicator row) per row of X."
        )
    kind = type_of_target(arr)
    if kind in ("binary", "multiclass"):
        codes = LabelEncoder().fit_transform(arr.ravel())
        if codes.max() < 1:
            raise ValueError(
                f"y: got a single class {arr.ravel()[0]!r}. Expected at least two "
                "classes: contrastive tuning needs rows that differ, and one class "
                "has none."
            )
        Y = np.eye(codes.max() + 1, dtype=np.float32)[codes]
        return Y, codes.astype(np.int64), "multiclass"
    if kind == "multilabel-indicator":
        Y = (arr != 0).astype(np.float32)
        none = (Y.sum(axis=1) == 0).astype(np.float32)[:, None]
        Y = np.hstack([Y, none])
        _, groups = np.unique(Y, axis=0, return_inverse=True)
        return Y, groups.ravel().astype(np.int64), "multilabel"
    raise ValueError(
        f"y: got a target of type {kind!r} (Unknown label type for contrastive "
        "tuning). Expected class labels (binary or "
        "multi-class) or a binary indicator matrix (multi-label). Continuous or "
        "multi-output multi-class targets are not supported: bin or encode them."
    )


def batch_plan(
    groups: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """One epoch of batches: every row once, alike rows placed in twos.

    Each batch has exactly ``min(batch_size, n)`` rows (the last batch is
    completed with rows from the epoch's start), so the training step sees one
    batch shape.
    """
    n = len(groups)
    size = min(batch_size, n)
    chunks = []
    for g in np.unique(groups):
        idx = rng.permutation(np.flatnonzero(groups == g))
        chunks.extend(idx[i : i + 2] for i in range(0, len(idx), 2))
    order = rng.permutation(len(chunks))
    flat = np.concatenate([chunks[i] for i in order])
    n_batches = -(-n // size)
    extra = n_batches * size - n
    if extra:
        flat = np.concatenate([flat, flat[:extra]])
    return [flat[i * size : (i + 1) * size] for i in range(n_batches)]

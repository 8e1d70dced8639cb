"""Targets for the Keras wrappers: what y is, how Keras sees it, and back.

A classifier target is one of
``"binary"`` / ``"multiclass"`` (1-D labels of any type, strings included),
``"multiclass-onehot"`` (a 0/1 matrix with exactly one 1 per row) or
``"multilabel-indicator"`` (a 0/1 matrix, any number of 1s per row).
Keras sees it in one of four encodings, chosen from the loss and the width of
the model's output:
``"sparse"`` (integer codes, for ``sparse_*`` losses),
``"onehot"`` (one column per class),
``"column"`` (one 0/1 column, for a binary target and a one-unit output) or
``"indicator"`` (the multilabel matrix itself).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from sklearn.utils.multiclass import check_classification_targets, type_of_target

ONE_HOT = "multiclass-onehot"
MULTILABEL = "multilabel-indicator"


def classifier_target(y: Any, classes: Any = None) -> tuple[str, np.ndarray, Any]:
    """Return ``(target_type, classes, codes)`` for a classifier target.

    ``codes`` are integer class indices for single-label targets and the 0/1
    matrix for multilabel ones. ``classes`` (``partial_fit``'s argument) fixes
    the label set in advance.
    """
    check_classification_targets(y)
    kind = type_of_target(y)
    if kind == MULTILABEL:
        y = np.asarray(y.toarray() if hasattr(y, "toarray") else y)
        if np.all(y.sum(axis=1) == 1):
            return ONE_HOT, np.arange(y.shape[1]), np.argmax(y, axis=1)
        return MULTILABEL, np.arange(y.shape[1]), y.astype("float32")
    if kind not in ("binary", "multiclass"):
        raise ValueError(
            f"y: got a {kind!r} target. Expected binary or multiclass labels, a "
            "one-hot matrix or a multilabel indicator matrix. Fit one classifier "
            "per output (sklearn.multioutput.MultiOutputClassifier)."
        )
    if classes is None:
        classes, codes = np.unique(y, return_inverse=True)
    else:
        classes = np.unique(np.asarray(classes))
        codes = encode_labels(y, classes)
    if len(classes) < 2:
        raise ValueError(
            f"y: got one class ({classes.tolist()!r}). Expected at least 2 "
            "classes. Fit on data that contains every class, or pass the full "
            "list with partial_fit(..., classes=...)."
        )
    return ("binary" if len(classes) == 2 else "multiclass"), classes, codes


def encode_labels(y: Any, classes: np.ndarray) -> np.ndarray:
    """Integer codes of labels ``y`` in the sorted ``classes``; unseen -> error."""
    y = np.asarray(y)
    codes = np.searchsorted(classes, y)
    codes = np.clip(codes, 0, len(classes) - 1)
    unseen = y != classes[codes]
    if np.any(unseen):
        raise ValueError(
            f"y: got labels {np.unique(y[unseen]).tolist()!r} not among classes_ "
            f"{classes.tolist()!r}. Expected only the classes of the first fit. "
            "Pass every label with partial_fit(..., classes=...) on the first call."
        )
    return codes


def loss_name(loss: Any) -> str:
    """A lowercase snake_case name for a loss string, class, instance or function."""
    if isinstance(loss, str):
        name = loss
    elif isinstance(loss, type):
        name = loss.__name__
    else:
        name = getattr(loss, "name", None) or getattr(loss, "__name__", None)
        name = name if isinstance(name, str) else type(loss).__name__
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def from_logits(loss: Any) -> bool:
    """Whether a loss object was configured with ``from_logits=True``."""
    get_config = getattr(loss, "get_config", None)
    if get_config is None or isinstance(loss, type):
        return False
    try:
        return bool(get_config().get("from_logits", False))
    except (TypeError, NotImplementedError):
        return False


def default_classifier_loss(target_type: str, width: int | None) -> str:
    """The loss used when none is given, for a target and an output width."""
    if target_type == MULTILABEL:
        return "binary_crossentropy"
    if target_type == ONE_HOT:
        return "categorical_crossentropy"
    if target_type == "binary" and width in (None, 1):
        return "binary_crossentropy"
    return "sparse_categorical_crossentropy"


def classifier_encoding(
    target_type: str, loss: Any, width: int | None, n_classes: int
) -> str:
    """Choose how Keras sees the target: sparse, onehot, column or indicator."""
    if target_type == MULTILABEL:
        encoding = "indicator"
    elif "sparse" in loss_name(loss):
        encoding = "sparse"
    elif width == 1 and n_classes == 2:
        encoding = "column"
    else:
        encoding = "onehot"
    expected = 1 if encoding == "column" else n_classes
    if width is not None and width != expected:
        sizes = f"{n_classes} units" + (
            " (softmax) or 1 unit (sigmoid)"
            if n_classes == 2 and encoding != "sparse"
            else ""
        )
        raise ValueError(
            f"model output: got {width} units for {n_classes} "
            f"{'labels' if encoding == 'indicator' else 'classes'}. Expected "
            f"{sizes}. Size the last layer from meta['n_classes_'] "
            "(or meta['n_outputs_'] for multilabel targets)."
        )
    return encoding


def encode_classifier(codes: Any, encoding: str, n_classes: int) -> np.ndarray:
    """What Keras trains on, from the codes of :func:`classifier_target`."""
    if encoding == "indicator":
        return np.asarray(codes, dtype="float32")
    if encoding == "sparse":
        return np.asarray(codes, dtype="int32")
    if encoding == "column":
        return np.asarray(codes, dtype="float32").reshape(-1, 1)
    return np.eye(n_classes, dtype="float32")[codes]


def probabilities(raw: np.ndarray, encoding: str, logits: bool) -> np.ndarray:
    """Class probabilities (float64) from raw model outputs.

    Always ``(n_samples, n_classes)``: a one-unit sigmoid becomes two columns,
    and rows of single-label targets sum to 1.
    """
    raw = np.asarray(raw, dtype="float64")
    if encoding in ("column", "indicator"):
        p = 1.0 / (1.0 + np.exp(-raw)) if logits else np.clip(raw, 0.0, 1.0)
        return p if encoding == "indicator" else np.hstack([1.0 - p, p])
    if logits:
        raw = np.exp(raw - raw.max(axis=1, keepdims=True))
    p = np.clip(raw, 0.0, None)
    total = p.sum(axis=1, keepdims=True)
    uniform = np.full_like(p, 1.0 / p.shape[1])
    return np.divide(p, total, out=uniform, where=total > 0)

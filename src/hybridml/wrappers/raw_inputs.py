"""Raw text and image inputs for models that carry their own preprocessor.

A keras-hub ``TextClassifier`` / ``ImageClassifier`` (or any model with a
``preprocessor`` attribute, e.g. what a build function returns) takes strings,
image arrays, paths or PIL images. The wrappers run that preprocessor here,
once per ``fit`` (not once per epoch) and once per ``predict`` call, and train
or predict on the resulting arrays with Keras' own ``fit`` / ``predict`` (not
the task's), so Keras never re-tokenises. Training detaches the preprocessor
from the model it builds; a prediction never changes the fitted model, so
threads may predict at once. Input checks come from
:mod:`hybridml.embed.inputs`, the one home of input handling.

Token arrays are trimmed to the longest row of the call, rounded up to a
multiple of 8: on short sentences most of a fixed ``sequence_length`` is padding
(the attention mask makes trimmed and padded rows compute the same outputs).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import _pixels
from .._validation import is_missing
from ..embed.inputs import as_images, as_texts, load_image

_CHUNK = 256  # rows preprocessed per call
_ROUND = 8  # token arrays are trimmed to a multiple of this


def preprocessor_of(model: Any) -> Any:
    """The model's keras-hub preprocessor, or None."""
    return getattr(model, "preprocessor", None)


def modality(preprocessor: Any) -> str:
    """``"text"`` for a tokenizing preprocessor, else ``"image"``."""
    return "text" if getattr(preprocessor, "tokenizer", None) is not None else "image"


def looks_raw(X: Any) -> bool:
    """Whether X is text, image paths or PIL images rather than a numeric table.

    1-D sequences (list, tuple, Series, 1-D object/str arrays, one-column
    DataFrames) whose first present (not None / NaN) item is a string, path,
    PIL image or image array.
    """
    columns = getattr(X, "columns", None)
    if columns is not None:
        if len(columns) != 1:
            return False
        X = X.iloc[:, 0]
    if hasattr(X, "to_numpy") and hasattr(X, "index"):  # Series
        X = list(X)
    if isinstance(X, np.ndarray):
        if X.dtype.kind in "US":
            return True
        if X.dtype != object or X.ndim != 1:
            return False
    elif not isinstance(X, (list, tuple)):
        return False
    # the first present item: a leading None / NaN is refused later, by index
    first = next((item for item in X if not is_missing(item)), None)
    return (
        isinstance(first, (str, bytes, os.PathLike))
        or (hasattr(first, "convert") and hasattr(first, "mode"))
        or (isinstance(first, np.ndarray) and first.ndim in (2, 3))
    )


def n_rows(X: Any) -> int:
    """Number of rows of raw input (any of the forms :func:`looks_raw` accepts)."""
    return len(X)


def no_preprocessor_error(model: Any) -> TypeError:
    """The error for raw input given to a model that cannot take it."""
    name = type(model).__name__ if model is not None else "the default MLP"
    return TypeError(
        f"X: got text or images (strings, paths or PIL images) for {name}, a model "
        "without a preprocessor. Expected numeric arrays, or a model that "
        "preprocesses raw input (a keras-hub TextClassifier / ImageClassifier, or "
        "a build function returning one). Use hybridml.make_finetune_classifier"
        "(backbone, num_classes=...) to fine-tune end to end, or embed the input "
        "first with KerasEmbeddingTransformer."
    )


def set_sequence_length(model: Any, sequence_length: int | None) -> None:
    """Set the token length of the model's own (copied) text preprocessor."""
    pre = preprocessor_of(model)
    if sequence_length is None or pre is None or modality(pre) != "text":
        return
    limit = _position_limit(model)
    if limit is not None and sequence_length > limit:
        raise ValueError(
            f"sequence_length: got {sequence_length}. Expected at most {limit}, "
            "the backbone's max_sequence_length. Lower sequence_length."
        )
    pre.sequence_length = int(sequence_length)


def _position_limit(model: Any) -> int | None:
    backbone = getattr(model, "backbone", None)
    return getattr(backbone, "max_sequence_length", None)


def check_sequence_length(model: Any) -> None:
    """Refuse a preprocessor longer than the backbone's position table."""
    pre = preprocessor_of(model)
    if pre is None or modality(pre) != "text":
        return
    length, limit = getattr(pre, "sequence_length", None), _position_limit(model)
    if length is not None and limit is not None and length > limit:
        raise ValueError(
            f"sequence_length: the preprocessor pads to {length} tokens but the "
            f"backbone has {limit} positions. Expected at most {limit}. Pass "
            f"sequence_length={limit} (or less) to the estimator."
        )


def preprocess(model: Any, X: Any) -> Any:
    """Run the model's preprocessor over X in chunks; NumPy arrays out."""
    pre = preprocessor_of(model)
    if modality(pre) == "text":
        rows: Any = as_texts(X)
    elif isinstance(X, np.ndarray) and X.dtype != object and X.ndim == 4:
        # the package's pixel rule: floats in [0, 1] become 0-255, as the
        # converter expects (it scales by 1/255 itself)
        _pixels.check_range(X, "X")
        # float32, as decoded files are: a converter may resize uint8 in uint8
        # (JAX rounds), and an array must predict as its file does
        rows = np.asarray(_pixels.to_0_255(X), dtype="float32")
    else:
        rows = [load_image(item) for item in as_images(X)]
    parts = []
    for start in range(0, len(rows), _CHUNK):
        part = rows[start : start + _CHUNK]
        if isinstance(part, list) and modality(pre) == "image":
            parts.append(_images(pre, part))
        else:
            parts.append(_numpy(pre(part)))
    features = _concat(parts)
    return _trim(features) if isinstance(features, dict) else features


def _images(pre: Any, images: list) -> np.ndarray:
    """Convert a list of (possibly different-sized) images, one at a time."""
    # float32 as validated arrays are, so a file and its pixels convert alike
    images = [np.asarray(img, dtype="float32") for img in images]
    if len({img.shape for img in images}) == 1:
        return _numpy(pre(np.stack(images)))
    return np.concatenate([_numpy(pre(img[None])) for img in images])


def _numpy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: np.asarray(v) for key, v in value.items()}
    if isinstance(value, tuple):  # (x,) from pack_x_y_sample_weight
        return _numpy(value[0])
    return np.asarray(value)


def _concat(parts: list) -> Any:
    if isinstance(parts[0], dict):
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    return np.concatenate(parts)


def _trim(features: dict) -> dict:
    """Cut the padded tail every row shares (rounded up to a multiple of 8)."""
    mask = features.get("padding_mask")
    if mask is None or mask.ndim != 2:
        return features
    longest = int(mask.sum(axis=1).max()) if len(mask) else 1
    keep = min(mask.shape[1], max(_ROUND, -(-longest // _ROUND) * _ROUND))
    return {
        key: v[:, :keep] if v.ndim == 2 and v.shape == mask.shape else v
        for key, v in features.items()
    }


def take(X: Any, index: Any) -> Any:
    """Rows ``index`` of an array or of each array in a dict."""
    if isinstance(X, dict):
        return {key: v[index] for key, v in X.items()}
    return X[index]


def first(X: Any) -> Any:
    """The first row, kept 2-D (a batch of one)."""
    return take(X, slice(0, 1))


@contextlib.contextmanager
def detached(model: Any) -> Iterator[None]:
    """Train on preprocessed arrays: the preprocessor is off meanwhile.

    For ``fit`` only, on the model being trained: a prediction must never
    change the fitted model (two threads predicting at once could leave the
    preprocessor off for good).
    """
    pre = preprocessor_of(model)
    if pre is None:
        yield
        return
    model.preprocessor = None
    try:
        yield
    finally:
        model.preprocessor = pre


def outputs_logits(model: Any) -> bool:
    """Whether the model's output layer is linear (logits, not probabilities).

    keras-hub classifier tasks output logits unless built with
    ``activation="softmax"``; a functional model ending in a linear Dense does
    too.
    """
    from .._imports import import_keras

    keras = import_keras()
    linear = keras.activations.linear
    if preprocessor_of(model) is not None and hasattr(model, "activation"):
        activation = keras.activations.get(model.activation)
        return activation is linear or activation is None
    layers = getattr(model, "layers", None) or []
    last = layers[-1] if layers else None
    return isinstance(last, keras.layers.Dense) and last.activation is linear


def copy_task(model: Any) -> Any:
    """A copy of a model with a preprocessor: architecture, weights and assets.

    ``keras.models.clone_model`` drops a keras-hub task's preprocessor, so the
    copy goes through Keras' own ``.keras`` archive, in memory.
    """
    from .._keras_io import model_from_bytes, model_to_bytes

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*compile.*", category=UserWarning)
        return model_from_bytes(model_to_bytes(model), compile=False, safe_mode=False)


def keras_method(keras: Any, model: Any, name: str) -> Any:
    """``model.fit`` / ``model.predict``; Keras' own for a preprocessing task.

    A keras-hub task's ``fit`` turns arrays into a ``tf.data`` pipeline even
    with its preprocessor detached, and that pipeline ignores ``shuffle``; the
    arrays here are already preprocessed, so Keras' own method is the one to
    run (shuffled every epoch, as for any model).
    """
    if preprocessor_of(model) is None:
        return getattr(model, name)
    return getattr(keras.Model, name).__get__(model)

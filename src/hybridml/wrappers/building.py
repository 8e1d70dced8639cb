"""How the wrappers build, copy and inspect the Keras model they train."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from .._imports import import_keras
from . import targets


def default_mlp(meta, hidden_layer_sizes=(100,), activation="relu"):
    """Build the model used when ``model=None``: an MLP sized from ``meta``."""
    keras = import_keras()
    inputs = keras.Input(shape=meta["X_shape_"][1:])
    x = keras.layers.Flatten()(inputs) if len(meta["X_shape_"]) > 2 else inputs
    for units in hidden_layer_sizes:
        x = keras.layers.Dense(units, activation=activation)(x)
    target = meta["target_type_"]
    if target == "binary":
        outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    elif target in ("multiclass", targets.ONE_HOT):
        outputs = keras.layers.Dense(meta["n_classes_"], activation="softmax")(x)
    elif target == targets.MULTILABEL:
        outputs = keras.layers.Dense(meta["n_outputs_"], activation="sigmoid")(x)
    else:
        outputs = keras.layers.Dense(meta["n_outputs_"])(x)
    return keras.Model(inputs, outputs)


def base_meta(estimator) -> dict[str, Any]:
    return {
        "n_features_in_": getattr(estimator, "n_features_in_", None),
        "feature_names_in_": getattr(estimator, "feature_names_in_", None),
        "X_shape_": estimator.X_shape_,
        "X_dtype_": estimator.X_dtype_,
        "target_type_": estimator.target_type_,
        "n_outputs_": estimator.n_outputs_,
    }


def clone_with_weights(keras, model, X):
    """Copy a model instance: same architecture and weights, uncompiled."""
    clone = keras.models.clone_model(model)
    if len(clone.weights) != len(model.weights):  # subclassed: build it first
        clone(as_floatx(keras, X[:1]), training=False)
    clone.set_weights(model.get_weights())
    return clone


def output_width(keras, model, X) -> int | None:
    """Units of the model's single output; builds a subclassed model."""
    try:
        outputs = list(model.outputs)
    except (AttributeError, ValueError):  # subclassed, or not built yet
        out = model(as_floatx(keras, X[:1]), training=False)
        outputs = list(out.values()) if isinstance(out, Mapping) else out
        outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    if len(outputs) != 1:
        raise ValueError(
            f"model: got a model with {len(outputs)} outputs. Expected one output "
            "tensor. Concatenate the outputs into one layer."
        )
    shape = tuple(outputs[0].shape)
    if len(shape) != 2:
        raise ValueError(
            f"model output: got shape {shape}. Expected (n_samples, n_units). "
            "End the model with a Dense layer (Flatten or pool first)."
        )
    return shape[1]


def as_floatx(keras, X):
    dtype = keras.config.floatx()
    return X if X.dtype == dtype else X.astype(dtype)


def parameter_names(func: Callable) -> set[str]:
    """Every parameter name of ``func``'s signature."""
    try:
        return set(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return set()


def custom_objects_of(*candidates) -> dict[str, Any]:
    """Non-Keras functions and classes among losses / metrics, by name."""
    found: dict[str, Any] = {}
    for item in candidates:
        items = item if isinstance(item, (list, tuple)) else [item]
        for obj in items:
            if obj is None or isinstance(obj, str):
                continue
            target = obj if callable(obj) and hasattr(obj, "__name__") else type(obj)
            module = getattr(target, "__module__", "") or ""
            if not module.startswith("keras"):
                found[target.__name__] = target
    return found


def hold_out_split(index, size, seed, stratify):
    try:
        return train_test_split(
            index, test_size=size, random_state=seed, stratify=stratify
        )
    except ValueError as exc:  # a class too small to stratify
        if stratify is None:
            raise
        warnings.warn(
            f"validation_split: the split cannot be stratified ({exc}), so the "
            "validation rows are drawn at random, unstratified. Lower "
            "validation_split or pass validation_data=(X_val, y_val) to fit.",
            UserWarning,
            stacklevel=2,
        )
        return train_test_split(index, test_size=size, random_state=seed)


X_DTYPES = ("float32", "float64")  # ints become float32; float64 is kept


def pixel_dtype(X):
    """The dtype X is validated to: integer images stay integers.

    An image task applies the package's pixel rule (``hybridml._pixels``:
    integers are 0-255, floats must be in [0, 1]) to what the user passed, so
    integer pixels must not become 0-255 floats first; a model without a
    preprocessor gets them as floats in ``_model_inputs``.
    """
    if isinstance(X, np.ndarray) and X.ndim == 4 and X.dtype.kind in "iu":
        return None
    return X_DTYPES

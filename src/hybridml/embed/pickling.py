"""Pickling a keras.Model backbone: ``.keras`` bytes plus what restores them.

Unpickling runs code from the pickle (as any pickle does, and a ``Lambda``
layer's code with it): load only pickles you trust.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from typing import Any

import numpy as np

from .._keras_io import model_from_bytes, model_to_bytes

__all__ = ["SavedModel"]

# Models restored from pickles, by the sha256 of their saved bytes: every
# unpickled copy of one estimator in a process shares one model object.
_RESTORED: dict[str, Any] = {}


class SavedModel:
    """A keras.Model as ``.keras`` bytes, for pickling the estimator.

    Carries the model's custom classes (pickled by reference, so their module
    must be importable where the pickle is loaded) and whether it holds a
    ``Lambda`` layer, whose code only loads outside Keras' safe mode. Unpickling
    runs code from the pickle, as any pickle does: load only pickles you trust.
    """

    def __init__(
        self, data: bytes, custom_objects: dict[str, Any], unsafe: bool
    ) -> None:
        self.data = data
        self.custom_objects = custom_objects
        self.unsafe = unsafe

    @classmethod
    def from_model(cls, model: Any) -> SavedModel:
        custom, unsafe = _custom_objects(model)
        saved = cls(_model_bytes(model), custom, unsafe)
        if custom or unsafe:
            saved.load()  # round trip now: a model that cannot come back fails here
        return saved

    def load(self) -> Any:
        # keyed by the bytes themselves, never by a digest the pickle claims
        key = hashlib.sha256(self.data).hexdigest()
        model = _RESTORED.get(key)
        if model is None:
            try:
                model = model_from_bytes(
                    self.data,
                    custom_objects=self.custom_objects or None,
                    compile=False,
                    safe_mode=not self.unsafe,
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"backbone: the pickled keras.Model cannot be restored ({exc}). "
                    "Expected its custom layers to be importable where it is "
                    "unpickled. Define them in an importable module (not __main__) "
                    "or register them with keras.saving.register_keras_serializable."
                ) from exc
            _RESTORED[key] = model
        return model


# model -> (content digest, .keras bytes): the archive records the time it was
# saved, so re-saving an unchanged model would give new bytes (and a new
# restored copy per pickle); reuse the bytes while config and weights are equal.
_SAVED_BYTES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _model_bytes(model: Any) -> bytes:
    from .._imports import import_keras

    keras = import_keras()
    h = hashlib.sha256(json.dumps(model.get_config(), default=str).encode())
    for w in model.weights:
        h.update(np.ascontiguousarray(keras.ops.convert_to_numpy(w)).tobytes())
    digest = h.hexdigest()
    try:
        known = _SAVED_BYTES.get(model)
    except TypeError:  # not weak-referenceable
        known = None
    if known is not None and known[0] == digest:
        return known[1]
    data = model_to_bytes(model)
    try:
        _SAVED_BYTES[model] = (digest, data)
    except TypeError:
        pass
    return data


def _custom_objects(model: Any) -> tuple[dict[str, Any], bool]:
    """Return the classes defined outside Keras in ``model``, and if it has a Lambda."""
    from .._imports import import_keras

    keras = import_keras()
    try:
        layers = list(model._flatten_layers(include_self=True))
    except AttributeError:  # pragma: no cover - older Keras
        layers = [model, *model.layers]
    custom: dict[str, Any] = {}
    unsafe = False
    for layer in layers:
        if isinstance(layer, keras.layers.Lambda):
            unsafe = True
        cls = type(layer)
        if cls.__module__.split(".")[0] in ("keras", "keras_hub", "keras_nlp"):
            continue
        custom[cls.__name__] = cls
        custom[keras.saving.get_registered_name(cls)] = cls
    return custom, unsafe

"""Pickling and cloning for the wrappers' base.

The fitted model travels as Keras' own ``.keras`` bytes (architecture, weights
and assets such as a tokenizer's vocabulary), with the user's registered
classes it names (by reference, so unpickling imports their module); a
``keras.Model`` given as ``model=`` is shared by clones, never copied.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import clone as _clone

from .._keras_io import (
    is_keras_model,
    model_from_bytes,
    model_to_bytes,
    registered_objects,
)
from .building import custom_objects_of


class SerializeMixin:
    """``__getstate__`` / ``__setstate__`` / ``__sklearn_clone__``."""

    def __sklearn_clone__(self):
        """A clone that shares (never copies) a ``keras.Model`` given as ``model``.

        ``fit`` never changes a parameter (it trains a copy of the model), so
        clones in a grid search share the user's model instead of serialising
        it once per clone; every other parameter is cloned as usual.
        """
        params = {
            key: value if is_keras_model(value) else _clone(value, safe=False)
            for key, value in self.get_params(deep=False).items()
        }
        return type(self)(**params)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # object's is __dict__ itself
        model = state.pop("model_", None)
        if model is not None:
            data = state["_model_bytes"] = model_to_bytes(model)
            # registered classes travel by reference: loading in a fresh
            # process imports their module instead of failing to find them
            state["_custom_objects"] = {
                **registered_objects(data),
                **custom_objects_of(
                    self.loss, self.optimizer, self.metrics, model.loss
                ),
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        data = state.pop("_model_bytes", None)
        custom_objects = state.pop("_custom_objects", {})
        super().__setstate__(state)
        if data is not None:
            # safe_mode=False lets Lambda layers load; unpickling runs
            # arbitrary code anyway.
            self.model_ = model_from_bytes(
                data, custom_objects=custom_objects, safe_mode=False
            )

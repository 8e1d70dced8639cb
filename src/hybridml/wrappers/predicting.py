"""Prediction for the wrappers' base: one function of a row, whatever the batch."""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from .._imports import import_keras
from . import raw_inputs, routing
from .building import X_DTYPES, as_floatx, pixel_dtype
from .seeding import quiet_retracing


class PredictMixin:
    """``_predict_raw`` and its ``model.predict`` arguments."""

    def _predict_raw(self, X) -> np.ndarray:
        """Model outputs for X, as a NumPy array."""
        check_is_fitted(self)
        model = self.model_
        if raw_inputs.preprocessor_of(model) is not None:
            if not raw_inputs.looks_raw(X):
                X = validate_data(
                    self, X, reset=False, allow_nd=True, dtype=pixel_dtype(X)
                )
            X = raw_inputs.preprocess(model, X)
        elif raw_inputs.looks_raw(X):
            raise raw_inputs.no_preprocessor_error(model)
        else:
            X = validate_data(self, X, reset=False, allow_nd=True, dtype=X_DTYPES)
        keras = import_keras()
        kwargs = self._predict_kwargs(keras)
        with _turns(keras, model):
            if _predicts_by_call(keras, model, kwargs, raw_inputs.n_rows(X)):
                # One batch through a plain model: calling it is what predict()
                # computes, without its per-call set-up (~0.1 s on TensorFlow).
                out = model(as_floatx(keras, X), training=False)
                return keras.ops.convert_to_numpy(out)
            # Keras' own predict on the preprocessed arrays: the task's would
            # preprocess again. The fitted model is never changed here.
            predict = raw_inputs.keras_method(keras, model, "predict")
            with quiet_retracing():
                return np.asarray(predict(X, **kwargs))

    def _predict_kwargs(self, keras) -> dict[str, Any]:
        """``model.predict`` arguments: batch size, predict__*, and callbacks.

        As in SciKeras, ``callbacks`` are used for prediction too, unless
        ``predict__callbacks`` replaces them.
        """
        routed = routing.routed(self._kwargs, "predict")
        params = routing.routed(routed, "callbacks")  # predict__callbacks__*
        routed = {k: v for k, v in routed.items() if not k.startswith("callbacks__")}
        accepted = routing.signature_names(keras.Model.predict) - {"self", "x"}
        where = "keras.Model.predict"
        routing.check_names(routed, accepted, where, prefix="predict__")
        kwargs = {"batch_size": self.batch_size or 32, "verbose": 0, **routed}
        if "callbacks" in kwargs:
            specs = kwargs.pop("callbacks")
        else:
            specs, params = self.callbacks, routing.routed(self._kwargs, "callbacks")
        if specs is not None:
            made = routing.instantiate_each(
                specs, params, module=keras.callbacks, route="callbacks", fresh=True
            )
            if made:
                kwargs["callbacks"] = made
        return kwargs


_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def _turns(keras, model) -> Any:
    """Threads predicting with one model: at once, or on JAX in turns.

    TensorFlow's and torch's ``Model.predict`` only read the model. JAX's
    swaps the model's variable buffers out and back in around the call, so a
    second prediction at once finds them gone ("'NoneType' object is not
    callable") and a direct call would too; on JAX one lock per model makes
    them take turns (a lock is the only fix short of rewriting Keras' loop).
    """
    if keras.backend.backend() != "jax":
        return contextlib.nullcontext()
    with _LOCKS_LOCK:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.Lock()
    return lock


def _predicts_by_call(keras, model, kwargs, n_rows) -> bool:
    """Whether ``model(X)`` is provably what ``model.predict(X)`` computes.

    True only for one batch, no callbacks or extra predict arguments, and a
    model that overrides neither ``predict`` nor ``predict_step`` and has no
    preprocessor (keras-hub tasks preprocess inside ``predict``).
    """
    cls = type(model)
    return (
        set(kwargs) == {"batch_size", "verbose"}
        and n_rows <= kwargs["batch_size"]
        and raw_inputs.preprocessor_of(model) is None
        and cls.predict is keras.Model.predict
        and cls.predict_step is keras.Model.predict_step
    )

"""KerasRegressor: a Keras model as a scikit-learn regressor."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import RegressorMixin

from . import docstrings
from .base import KerasBase
from .building import (
    base_meta,
)

__all__ = ["KerasRegressor"]


class KerasRegressor(RegressorMixin, KerasBase):
    """A Keras model as a scikit-learn regressor.

    {intro}

    Parameters
    ----------
    model : callable, keras.Model or None, default=None
        A function, bound method, callable object or ``functools.partial``
        returning a ``keras.Model``; it receives its routed ``model__*`` and the
        bare extra keywords, plus ``meta`` (a dict with ``n_features_in_``,
        ``X_shape_``, ``X_dtype_``, ``feature_names_in_``, ``target_type_``,
        ``n_outputs_``), ``compile_kwargs`` and ``params`` when it declares
        them. A model it returns compiled is used as compiled; an uncompiled
        one is compiled with ``loss``, ``optimizer`` and ``metrics``. A
        ``keras.Model`` instance is cloned with its weights and compiled with
        those parameters (its own loss is used when ``loss`` is None). None
        builds an MLP: ``hidden_layer_sizes=(100,)`` and ``activation="relu"``
        (tune them as ``model__hidden_layer_sizes``), then one linear unit per
        output.
    loss : str, keras loss class, instance or function, default=None
        None means ``mean_squared_error``. ``loss__*`` instantiates it with
        arguments (``loss="huber", loss__delta=2.0``).
    {shared_parameters}
    validation_split : float, default=0.0
        Fraction of the training data held out at random to report ``val_*``
        in ``history_`` and drive early stopping. For a fixed set, pass
        ``fit(X, y, validation_data=(X_val, y_val))``.
    {shared_training}
    random_state : int, RandomState instance or None, default=None
        Seeds Python's, NumPy's and the backend's generators during ``fit``, so
        fits repeat exactly on one backend; their previous states are restored
        afterwards. No determinism flag or environment variable is changed.
    {shared_sequence_and_kwargs}

    Attributes
    ----------
    {shared_attributes}
    target_type_ : str
        ``"continuous"`` for 1-D y, ``"continuous-multioutput"`` for 2-D y.
    n_outputs_ : int
        Number of targets.
    {shared_shape_attributes}

    See Also
    --------
    KerasClassifier : The same for classification.

    Notes
    -----
    {raw_inputs_note}

    ``predict`` returns float64, 1-D for 1-D ``y``. Pickling,
    ``copy.deepcopy`` and joblib workers carry the fitted model as Keras
    ``.keras`` bytes.

    Examples
    --------
    >>> import numpy as np
    >>> from hybridml import KerasRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(40, 3))
    >>> y = X @ [1.0, -2.0, 0.5]
    >>> reg = KerasRegressor(model__hidden_layer_sizes=(8,), epochs=2,
    ...                      random_state=0).fit(X, y)
    >>> reg.predict(X[:2]).shape
    (2,)
    """

    _y_numeric = True

    def partial_fit(
        self, X: Any, y: Any, sample_weight: Any = None, **fit_kwargs: Any
    ) -> KerasRegressor:
        """Train for one epoch, building the model on the first call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights.
        **fit_kwargs : dict
            Extra arguments for ``keras.Model.fit``.

        Returns
        -------
        self : KerasRegressor
            The estimator, trained one epoch more.
        """
        return self._fit(X, y, sample_weight, fit_kwargs, partial=True)

    def predict(self, X: Any) -> np.ndarray:
        """Predict targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Data to predict.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Predictions, float64.
        """
        raw = np.asarray(self._predict_raw(X), dtype="float64")
        return raw.reshape(len(raw)) if self.target_type_ == "continuous" else raw

    # -- target hooks ------------------------------------------------------------

    def _codes(self, y, *, reset=False, classes=None):
        y = np.asarray(y, dtype="float32")
        if reset:
            self.target_type_ = (
                "continuous" if y.ndim == 1 else "continuous-multioutput"
            )
            self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        elif (1 if y.ndim == 1 else y.shape[1]) != self.n_outputs_:
            raise ValueError(
                f"y: got {y.shape} targets. Expected {self.n_outputs_} output(s), as "
                "in the first fit."
            )
        return y.reshape(len(y), -1)

    def _stratify(self, codes):
        return None

    def _default_loss(self, width):
        return "mean_squared_error"

    def _set_encoding(self, loss, width):
        if width is not None and width != self.n_outputs_:
            raise ValueError(
                f"model output: got {width} units for {self.n_outputs_} target(s). "
                "Expected one unit per target. Size the last layer from "
                "meta['n_outputs_']."
            )

    def _encode(self, codes):
        return codes

    def _meta(self) -> dict[str, Any]:
        return base_meta(self)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


KerasRegressor.__doc__ = docstrings.fill(KerasRegressor.__doc__, "regressor")

"""KerasClassifier and KerasRegressor: any Keras model as a scikit-learn estimator.

A drop-in replacement for SciKeras' ``KerasClassifier`` / ``KerasRegressor``
(same constructor, same routed ``model__*`` / ``optimizer__*`` parameters, same
``meta`` and ``compile_kwargs`` handed to the build function) that is typed
correctly for scikit-learn >= 1.6, so stratified CV, soft voting, stacking,
calibration and ``roc_auc`` scoring work, and that passes scikit-learn's common
estimator checks under the TensorFlow, JAX and torch backends.

Transfer learning with a keras-hub backbone
-------------------------------------------
Put the pretrained backbone inside the build function, frozen, with a small head
sized from ``meta``; fit the head; then unfreeze and fine-tune from the fitted
model with a smaller learning rate. A ``keras.Model`` passed as ``model=`` keeps
its weights (a copy is trained; your object is not touched)::

    import keras
    import keras_hub
    from hybridml import KerasClassifier

    def build(meta):
        backbone = keras_hub.models.Backbone.from_preset("resnet_18_imagenet")
        backbone.trainable = False
        inputs = keras.Input(shape=meta["X_shape_"][1:])
        features = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
        outputs = keras.layers.Dense(meta["n_classes_"], activation="softmax")(
            features
        )
        return keras.Model(inputs, outputs)

    head = KerasClassifier(build, optimizer="adam", epochs=5).fit(images, labels)

    model = head.model_  # the fitted network: trained head, frozen backbone
    model.layers[1].trainable = True  # unfreeze the backbone
    tuned = KerasClassifier(
        model, optimizer="adam", optimizer__learning_rate=1e-5, epochs=2
    ).fit(images, labels)

The images go in as a 4-D array ``(n_samples, height, width, channels)``; resize
and scale them as the backbone expects first (keras-hub's ``ImageConverter``).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_array, check_consistent_length, check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .._imports import import_keras
from .._validation import check_labels_present, is_int
from . import raw_inputs, routing
from .building import X_DTYPES, as_floatx, hold_out_split, pixel_dtype
from .compiling import CompileMixin
from .predicting import PredictMixin
from .seeding import quiet_retracing, seeded_fit
from .serialization import SerializeMixin

_EARLY_STOPPING_PATIENCE = 5  # epochs, for early_stopping=True


class KerasBase(CompileMixin, PredictMixin, SerializeMixin, BaseEstimator):
    """What KerasClassifier and KerasRegressor share; see their docstrings."""

    _y_numeric = False

    def __init__(
        self,
        model: Any = None,
        *,
        loss: Any = None,
        optimizer: Any = "rmsprop",
        metrics: Any = None,
        epochs: int = 1,
        batch_size: int | None = 32,
        verbose: int = 0,
        callbacks: Any = None,
        validation_split: float = 0.0,
        early_stopping: bool | int = False,
        shuffle: bool = True,
        run_eagerly: bool = False,
        warm_start: bool = False,
        random_state: int | np.random.RandomState | None = None,
        sequence_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.metrics = metrics
        self.epochs = epochs
        self.batch_size = batch_size
        self.verbose = verbose
        self.callbacks = callbacks
        self.validation_split = validation_split
        self.early_stopping = early_stopping
        self.shuffle = shuffle
        self.run_eagerly = run_eagerly
        self.warm_start = warm_start
        self.random_state = random_state
        self.sequence_length = sequence_length
        self._kwargs = kwargs

    # -- parameters: the signature's, plus routed and bare extra keywords ------

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Get parameters, routed ``model__*`` ... and extra keywords included.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of contained estimators.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        return {**super().get_params(deep=deep), **getattr(self, "_kwargs", {})}

    def set_params(self, **params: Any) -> KerasBase:
        """Set parameters, routed ``model__*``, ``optimizer__*``, ... included.

        Parameters
        ----------
        **params : dict
            Parameter names mapped to new values. A routed name
            (``<route>__<name>`` with route one of model, optimizer, loss,
            metrics, callbacks, compile, fit, predict) is always accepted; a
            bare extra keyword only if it was given to the constructor.

        Returns
        -------
        self : estimator
            This estimator.
        """
        own = super().get_params(deep=False)
        extra = dict(self._kwargs)
        for key in params:
            if key not in own and key not in extra and not routing.route_of(key):
                valid = sorted([*own, *extra])
                raise ValueError(
                    f"{key}: got an unknown parameter for {type(self).__name__}. "
                    f"Expected one of {valid} or a routed name such as "
                    f"'model__<name>' or 'optimizer__<name>'."
                    f"{routing.closest(key, valid)}"
                )
        for key, value in params.items():
            if key in own:
                setattr(self, key, value)
            else:
                extra[key] = value
        self._kwargs = extra
        return self

    # -- fitting ---------------------------------------------------------------

    def fit(self, X: Any, y: Any, sample_weight: Any = None, **fit_kwargs: Any):
        """Build (or reuse, with ``warm_start``) the model and train it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Training data; n-dimensional arrays (images) are passed as they are.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights (multiplied by ``class_weight`` for classifiers).
        **fit_kwargs : dict
            Extra arguments for ``keras.Model.fit`` for this call, overriding
            the estimator's (``validation_data=(X_val, y_val)`` holds out a fixed
            validation set; its ``y_val`` is encoded like ``y``).

        Returns
        -------
        self : estimator
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, fit_kwargs, partial=False)

    def initialize(self, X: Any, y: Any):
        """Build and compile the model for ``X`` and ``y`` without training.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Data the model is sized from.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets the model is sized from.

        Returns
        -------
        self : estimator
            The estimator, with ``model_`` built and compiled.
        """
        return self._fit(X, y, None, {}, partial=False, train=False)

    def _fit(
        self, X, y, sample_weight, fit_kwargs, *, partial, classes=None, train=True
    ):
        keras = import_keras()
        self._check_params(keras)
        reuse = train and (partial or self.warm_start) and hasattr(self, "model_")
        X, y = self._validate(keras, X, y, reuse)
        codes = self._codes(y, reset=not reuse, classes=classes)
        sample_weight = self._sample_weight(sample_weight, codes, raw_inputs.n_rows(X))
        fit_kwargs = self._fit_kwargs(keras, fit_kwargs, partial)
        callbacks = self._make_callbacks(keras, fit_kwargs.pop("callbacks", None))
        epochs_done = len(next(iter(self.history_.values()), [])) if reuse else 0
        seed = self._seed(epochs_done)
        history = {}
        with seeded_fit(seed), quiet_retracing():
            if reuse:
                model, X = self.model_, self._model_inputs(self.model_, X)
            else:
                model, X = self._build_and_compile(keras, X)
            if train:
                history = self._train(
                    keras, model, X, codes, sample_weight, fit_kwargs, callbacks, seed
                )
        self.model_ = model
        self._record(history, reuse)
        return self

    def _validate(self, keras, X, y, reuse):
        """Check X and y; raw text / images pass through to the preprocessor."""
        if not self._y_numeric:  # a missing label is no class (NaN is no "nan")
            check_labels_present(y)
        if not raw_inputs.looks_raw(X):
            X, y = validate_data(
                self,
                X,
                y,
                reset=not reuse,
                allow_nd=True,
                dtype=pixel_dtype(X),
                multi_output=True,
                y_numeric=self._y_numeric,
            )
            if not reuse:
                self.X_shape_, self.X_dtype_ = X.shape, X.dtype
            return X, y
        model = self.model_ if reuse else self.model
        if model is None or (
            isinstance(model, keras.Model) and raw_inputs.preprocessor_of(model) is None
        ):
            raise raw_inputs.no_preprocessor_error(model)
        y = validate_data(
            self, "no_validation", y, multi_output=True, y_numeric=self._y_numeric
        )
        check_consistent_length(X, y)
        if not reuse:
            self.X_shape_, self.X_dtype_ = (len(X),), np.dtype(object)
            for name in ("n_features_in_", "feature_names_in_"):
                self.__dict__.pop(name, None)
        return X, y

    def _model_inputs(self, model, X):
        """X as the model takes it: preprocessed once when it has a preprocessor."""
        if raw_inputs.preprocessor_of(model) is not None:
            return raw_inputs.preprocess(model, X)
        if raw_inputs.looks_raw(X):
            raise raw_inputs.no_preprocessor_error(model)
        return as_floatx(import_keras(), X) if X.dtype.kind in "iu" else X

    def _train(self, keras, model, X, codes, sample_weight, kwargs, callbacks, seed):
        """One ``model.fit`` call on the split, weighted, encoded data."""
        train_data, validation = self._split(
            model, X, codes, sample_weight, kwargs, seed
        )
        if validation is not None:
            kwargs["validation_data"] = validation
        patience = self._patience()
        if patience:
            monitor = "val_loss" if validation is not None else "loss"
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor=monitor, patience=patience, restore_best_weights=True
                )
            )
        X_train, y_train, sw_train = train_data
        fit = raw_inputs.keras_method(keras, model, "fit")
        with raw_inputs.detached(model):
            return fit(
                X_train,
                y_train,
                sample_weight=sw_train,
                callbacks=callbacks,
                **kwargs,
            ).history

    def _record(self, history, reuse):
        """Append this fit's per-epoch history to the previous fits' (warm start)."""
        previous = self.history_ if reuse else {}
        keys = [*previous, *(key for key in history if key not in previous)]
        self.history_ = {
            key: [*previous.get(key, []), *map(float, history.get(key, []))]
            for key in keys
        }

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def _check_params(self, keras):
        """Cheap checks of plain parameters, before any data is touched."""
        model = self.model
        if not (model is None or isinstance(model, keras.Model) or callable(model)):
            raise TypeError(
                f"model: got {model!r}. Expected a callable returning a "
                "keras.Model, a keras.Model instance, or None for the default MLP."
            )
        if not is_int(self.epochs) or self.epochs < 1:
            raise ValueError(
                f"epochs: got {self.epochs!r}. Expected an int >= 1. Use "
                "initialize(X, y) to build the model without training."
            )
        if self.batch_size is not None and (
            not is_int(self.batch_size) or self.batch_size < 1
        ):
            raise ValueError(
                f"batch_size: got {self.batch_size!r}. Expected an int >= 1 or None "
                "(Keras' default of 32)."
            )
        split = self.validation_split
        if not isinstance(split, numbers.Real) or not 0.0 <= split < 1.0:
            raise ValueError(
                f"validation_split: got {split!r}. Expected a float in [0, 1), the "
                "fraction of the training data held out for validation."
            )
        self._patience()  # validates early_stopping
        length = self.sequence_length
        if length is not None and (not is_int(length) or length < 1):
            raise ValueError(
                f"sequence_length: got {length!r}. Expected an int >= 1 (tokens per "
                "text row) or None to keep the preprocessor's own length."
            )

    def _patience(self) -> int:
        """Early-stopping patience in epochs; 0 when early stopping is off."""
        value = self.early_stopping
        if value is None or value is False:
            return 0
        if value is True:
            return _EARLY_STOPPING_PATIENCE
        if is_int(value) and value >= 1:
            return int(value)
        raise ValueError(
            f"early_stopping: got {value!r}. Expected False, True (patience "
            f"{_EARLY_STOPPING_PATIENCE}) or an int >= 1, the patience in epochs."
        )

    def _seed(self, offset: int) -> int | None:
        """Return the seed of this fit: random_state plus the epochs trained."""
        state = self.random_state
        if state is None:
            return None
        if is_int(state):
            return (int(state) + offset) % 2**32
        return int(check_random_state(state).randint(2**31 - 1))

    def _fit_kwargs(self, keras, fit_kwargs, partial) -> dict[str, Any]:
        """Merge ``model.fit`` arguments: parameters, then fit__*, then the call's."""
        routed = routing.routed(self._kwargs, "fit")
        # sample and class weights go through the estimator's own arguments
        accepted = routing.signature_names(keras.Model.fit) - {
            "self",
            "x",
            "y",
            "sample_weight",
            "class_weight",
        }
        routing.check_names(routed, accepted, "keras.Model.fit", prefix="fit__")
        routing.check_names(fit_kwargs, accepted, "keras.Model.fit")
        kwargs = {
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "verbose": self.verbose,
            "shuffle": self.shuffle,
            "validation_split": self.validation_split,
            **routed,
            **fit_kwargs,
        }
        if partial:
            kwargs["epochs"] = 1
        return kwargs

    def _make_callbacks(self, keras, extra) -> list:
        """Fresh callback objects: classes instantiated, instances copied."""
        params = routing.routed(self._kwargs, "callbacks")
        specs = self.callbacks if self.callbacks is not None else []
        made = routing.instantiate_each(
            specs, params, module=keras.callbacks, route="callbacks", fresh=True
        )
        return made + list(extra or [])

    def _split(self, model, X, codes, sample_weight, fit_kwargs, seed):
        """Training arrays and validation data, encoded for Keras."""
        split = fit_kwargs.pop("validation_split", 0.0)
        validation = fit_kwargs.pop("validation_data", None)
        if validation is not None:
            X_val, y_val, *rest = validation
            if raw_inputs.preprocessor_of(model) is not None:
                X_val = raw_inputs.preprocess(model, X_val)
            else:
                X_val = validate_data(
                    self, X_val, reset=False, allow_nd=True, dtype=X_DTYPES
                )
            validation = (X_val, self._encode(self._codes(y_val)), *rest)
        elif split:
            index = np.arange(len(codes))
            train, val = hold_out_split(index, split, seed, self._stratify(codes))
            sw = sample_weight
            validation = (raw_inputs.take(X, val), self._encode(codes[val]))
            if sw is not None:
                validation += (sw[val],)
                sample_weight = sw[train]
            X, codes = raw_inputs.take(X, train), codes[train]
        return (X, self._encode(codes), sample_weight), validation

    def _sample_weight(self, sample_weight, codes, n_samples):
        """Return the weights Keras trains with: sample times class weights.

        A new array (the caller's is never modified), or None.
        """
        weights = None
        if sample_weight is not None:
            weights = check_array(
                sample_weight,
                ensure_2d=False,
                dtype="float64",
                input_name="sample_weight",
            )
            if weights.shape != (n_samples,):
                raise ValueError(
                    f"sample_weight: got shape {weights.shape}. Expected "
                    f"({n_samples},), one weight per sample."
                )
            if np.any(weights < 0):
                raise ValueError(
                    "sample_weight: got negative weights. Expected weights >= 0."
                )
        weights = self._weigh_classes(weights, codes)
        if weights is not None and not np.any(weights > 0):
            raise ValueError(
                "sample_weight: got all-zero weights (class_weight included). "
                "Expected at least one positive weight. Sample weights must "
                "contain at least one non-zero number."
            )
        return weights

    def _weigh_classes(self, weights, codes):
        return weights

    @property
    def history_df_(self):
        """``history_`` as a pandas DataFrame, one row per epoch."""
        import pandas as pd

        check_is_fitted(self)
        return pd.DataFrame(self.history_).rename_axis("epoch")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

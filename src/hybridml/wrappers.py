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

import contextlib
import inspect
import logging
import numbers
import random
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_array, check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from . import _routing, _targets
from ._imports import import_keras

__all__ = ["KerasClassifier", "KerasRegressor"]

_X_DTYPES = ("float32", "float64")  # ints become float32; float64 is kept
_EARLY_STOPPING_PATIENCE = 5  # epochs, for early_stopping=True
_COMPILE_ROUTES = ("optimizer", "loss", "metrics", "compile")


class _KerasBase(BaseEstimator):
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

    def set_params(self, **params: Any) -> _KerasBase:
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
            if key not in own and key not in extra and not _routing.route_of(key):
                valid = sorted([*own, *extra])
                raise ValueError(
                    f"{key}: got an unknown parameter for {type(self).__name__}. "
                    f"Expected one of {valid} or a routed name such as "
                    f"'model__<name>' or 'optimizer__<name>'."
                    f"{_routing.closest(key, valid)}"
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
        X, y = validate_data(
            self,
            X,
            y,
            reset=not reuse,
            allow_nd=True,
            dtype=_X_DTYPES,
            multi_output=True,
            y_numeric=self._y_numeric,
        )
        if not reuse:
            self.X_shape_, self.X_dtype_ = X.shape, X.dtype
        codes = self._codes(y, reset=not reuse, classes=classes)
        sample_weight = self._sample_weight(sample_weight, codes, len(X))
        fit_kwargs = self._fit_kwargs(keras, fit_kwargs, partial)
        callbacks = self._make_callbacks(keras, fit_kwargs.pop("callbacks", None))
        epochs_done = len(next(iter(self.history_.values()), [])) if reuse else 0
        seed = self._seed(epochs_done)
        with _seeded(seed), _quiet_retracing():
            if reuse:
                model = self.model_
            else:
                model = self._build_and_compile(keras, X)
            train_data, validation = self._split(
                X, codes, sample_weight, fit_kwargs, seed
            )
            if validation is not None:
                fit_kwargs["validation_data"] = validation
            patience = self._patience()
            if patience:
                monitor = "val_loss" if validation is not None else "loss"
                callbacks.append(
                    keras.callbacks.EarlyStopping(
                        monitor=monitor, patience=patience, restore_best_weights=True
                    )
                )
            history = {}
            if train:
                X_train, y_train, sw_train = train_data
                history = model.fit(
                    X_train,
                    y_train,
                    sample_weight=sw_train,
                    callbacks=callbacks,
                    **fit_kwargs,
                ).history
        self.model_ = model
        previous = self.history_ if reuse else {}
        keys = [*previous, *(key for key in history if key not in previous)]
        self.history_ = {
            key: [*previous.get(key, []), *map(float, history.get(key, []))]
            for key in keys
        }
        return self

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
        if not _is_int(self.epochs) or self.epochs < 1:
            raise ValueError(
                f"epochs: got {self.epochs!r}. Expected an int >= 1. Use "
                "initialize(X, y) to build the model without training."
            )
        if self.batch_size is not None and (
            not _is_int(self.batch_size) or self.batch_size < 1
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

    def _patience(self) -> int:
        """Early-stopping patience in epochs; 0 when early stopping is off."""
        value = self.early_stopping
        if value is None or value is False:
            return 0
        if value is True:
            return _EARLY_STOPPING_PATIENCE
        if _is_int(value) and value >= 1:
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
        if _is_int(state):
            return (int(state) + offset) % 2**32
        return int(check_random_state(state).randint(2**31 - 1))

    def _fit_kwargs(self, keras, fit_kwargs, partial) -> dict[str, Any]:
        """Merge ``model.fit`` arguments: parameters, then fit__*, then the call's."""
        routed = _routing.routed(self._kwargs, "fit")
        # sample and class weights go through the estimator's own arguments
        accepted = _routing.signature_names(keras.Model.fit) - {
            "self",
            "x",
            "y",
            "sample_weight",
            "class_weight",
        }
        _routing.check_names(routed, accepted, "keras.Model.fit", prefix="fit__")
        _routing.check_names(fit_kwargs, accepted, "keras.Model.fit")
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
        params = _routing.routed(self._kwargs, "callbacks")
        specs = self.callbacks if self.callbacks is not None else []
        if not isinstance(specs, (list, tuple, Mapping)):
            specs = [specs]
        made = _routing.instantiate_each(
            specs, params, module=keras.callbacks, route="callbacks", fresh=True
        )
        return made + list(extra or [])

    def _build_and_compile(self, keras, X):
        """Build (or clone the instance) and compile the model of this fit."""
        params = self.get_params(deep=False)
        optimizer = _routing.instantiate(
            self.optimizer,
            _routing.routed(self._kwargs, "optimizer"),
            module=keras.optimizers,
            route="optimizer",
            fresh=True,
        )
        compile_kwargs = {"optimizer": optimizer, "run_eagerly": self.run_eagerly}
        metrics = self.metrics
        if metrics is None or isinstance(metrics, (list, tuple)):
            metrics = _routing.instantiate_each(
                metrics or [],
                _routing.routed(self._kwargs, "metrics"),
                module=keras.metrics,
                route="metrics",
                fresh=True,
            )
        if self.metrics is not None:
            compile_kwargs["metrics"] = metrics
        extra = _routing.routed(self._kwargs, "compile")
        accepted = _routing.signature_names(keras.Model.compile) - {"self"}
        _routing.check_names(extra, accepted, "keras.Model.compile", prefix="compile__")
        compile_kwargs.update(extra)

        if isinstance(self.model, keras.Model):
            model, compiled = _clone_with_weights(keras, self.model, X), False
            loss = self.loss
            if loss is None and self.model.compiled:
                loss = self.model.loss
        else:
            build = self.model if self.model is not None else _default_mlp
            hint = self.loss if self.loss is not None else self._default_loss(None)
            model = self._call_build(
                build, {**compile_kwargs, "loss": self._loss(keras, hint)}
            )
            if not isinstance(model, keras.Model):
                raise TypeError(
                    f"model: the build callable returned {type(model).__name__}. "
                    "Expected a keras.Model. Return the model from the function."
                )
            compiled, loss = model.compiled, self.loss
        width = _output_width(keras, model, X)
        if compiled:
            if model.loss is None:
                raise ValueError(
                    "model: the build callable returned a model compiled without a "
                    "loss. Expected a loss. Pass loss= to the estimator and return "
                    "the model uncompiled, or compile it with a loss."
                )
            if "compile_kwargs" not in _declared(build):
                self._warn_if_compile_params_ignored(params)
            loss = model.loss
            if self.run_eagerly:  # a debugging switch: honoured on any model
                model.run_eagerly = True
        else:
            loss = self._loss(
                keras, self._default_loss(width) if loss is None else loss
            )
            model.compile(**{**compile_kwargs, "loss": loss})
        self._set_encoding(loss, width)
        return model

    def _loss(self, keras, spec):
        routed = _routing.routed(self._kwargs, "loss")
        return _routing.instantiate(
            spec, routed, module=keras.losses, route="loss", fresh=False
        )

    def _call_build(self, build: Callable, compile_kwargs: dict) -> Any:
        """Call the build callable with its routed and bare keyword arguments."""
        params = self.get_params(deep=False)
        bare = {k: v for k, v in self._kwargs.items() if not _routing.route_of(k)}
        routed = _routing.routed(self._kwargs, "model")
        accepted = _routing.signature_names(build)
        name = getattr(build, "__name__", type(build).__name__)
        where = f"the model callable {name}()"
        if accepted is not None:
            own = {"meta", "compile_kwargs", "params"}
            estimator_params = BaseEstimator.get_params(self, deep=False)
            _routing.check_names(bare, accepted - own, where, extra=estimator_params)
            _routing.check_names(routed, accepted - own, where, prefix="model__")
        declared = _declared(build)
        kwargs = {**bare, **routed}
        if "meta" in declared:
            kwargs["meta"] = self._meta()
        if "compile_kwargs" in declared:
            kwargs["compile_kwargs"] = compile_kwargs
        if "params" in declared:
            kwargs["params"] = params
        return build(**kwargs)

    def _warn_if_compile_params_ignored(self, params):
        given = [k for k in ("loss", "metrics") if params[k] is not None]
        if not (isinstance(self.optimizer, str) and self.optimizer == "rmsprop"):
            given.append("optimizer")
        given += [k for k in params if _routing.route_of(k) in _COMPILE_ROUTES]
        if given:
            warnings.warn(
                f"The build callable returned a compiled model, so {sorted(given)} "
                "are not used. Compile inside the callable with its "
                "compile_kwargs argument, or return the model uncompiled.",
                UserWarning,
                stacklevel=5,  # the caller of fit()
            )

    def _split(self, X, codes, sample_weight, fit_kwargs, seed):
        """Training arrays and validation data, encoded for Keras."""
        split = fit_kwargs.pop("validation_split", 0.0)
        validation = fit_kwargs.pop("validation_data", None)
        if validation is not None:
            X_val, y_val, *rest = validation
            X_val = validate_data(
                self, X_val, reset=False, allow_nd=True, dtype=_X_DTYPES
            )
            validation = (X_val, self._encode(self._codes(y_val)), *rest)
        elif split:
            index = np.arange(len(X))
            train, val = _train_test_split(index, split, seed, self._stratify(codes))
            sw = sample_weight
            validation = (X[val], self._encode(codes[val]))
            if sw is not None:
                validation += (sw[val],)
                sample_weight = sw[train]
            X, codes = X[train], codes[train]
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

    # -- prediction ------------------------------------------------------------

    def _predict_raw(self, X) -> np.ndarray:
        """Model outputs for X, as a NumPy array."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, allow_nd=True, dtype=_X_DTYPES)
        keras = import_keras()
        routed = _routing.routed(self._kwargs, "predict")
        if routed:
            accepted = _routing.signature_names(keras.Model.predict) - {"self", "x"}
            where = "keras.Model.predict"
            _routing.check_names(routed, accepted, where, prefix="predict__")
        kwargs = {"batch_size": self.batch_size or 32, "verbose": 0, **routed}
        if len(X) <= kwargs["batch_size"] and set(kwargs) == {"batch_size", "verbose"}:
            # One batch: calling the model skips predict()'s per-call set-up
            # (a traced function per model: ~0.1 s on TensorFlow).
            if X.dtype != keras.config.floatx():
                X = X.astype(keras.config.floatx())
            return keras.ops.convert_to_numpy(self.model_(X, training=False))
        with _quiet_retracing():
            return np.asarray(self.model_.predict(X, **kwargs))

    # -- pickling: the fitted model travels as Keras' own .keras bytes -------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # object's is __dict__ itself
        model = state.pop("model_", None)
        if model is not None:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "model.keras"
                model.save(path)
                state["_model_bytes"] = path.read_bytes()
            state["_custom_objects"] = _custom_objects(
                self.loss, self.optimizer, self.metrics, model.loss
            )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        data = state.pop("_model_bytes", None)
        custom_objects = state.pop("_custom_objects", {})
        super().__setstate__(state)
        if data is not None:
            keras = import_keras()
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "model.keras"
                path.write_bytes(data)
                # safe_mode=False lets Lambda layers load; unpickling runs
                # arbitrary code anyway.
                self.model_ = keras.saving.load_model(
                    path, custom_objects=custom_objects, safe_mode=False
                )

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


class KerasClassifier(ClassifierMixin, _KerasBase):
    """A Keras model as a scikit-learn classifier.

    The model comes from ``model``: a callable that returns a compiled or
    uncompiled ``keras.Model`` (it may declare ``meta`` and ``compile_kwargs``
    to size layers from the data), a ``keras.Model`` instance (a copy is trained,
    starting from its weights), or None for a multilayer perceptron. Every
    parameter, and every routed ``<route>__<name>`` keyword, is tunable with
    ``set_params`` and ``GridSearchCV``.

    Parameters
    ----------
    model : callable, keras.Model or None, default=None
        A function, bound method, callable object or ``functools.partial``
        returning a ``keras.Model``; it receives its routed ``model__*`` and the
        bare extra keywords, plus ``meta`` (a dict with ``n_features_in_``,
        ``X_shape_``, ``X_dtype_``, ``feature_names_in_``, ``target_type_``,
        ``classes_``, ``n_classes_``, ``n_outputs_``), ``compile_kwargs`` and
        ``params`` when it declares them. A model it returns compiled is used
        as compiled; an uncompiled one is compiled with ``loss``, ``optimizer``
        and ``metrics``. A ``keras.Model`` instance is cloned with its weights
        and compiled with those parameters (its own loss is used when ``loss``
        is None). None builds an MLP: ``hidden_layer_sizes=(100,)`` and
        ``activation="relu"`` (tune them as ``model__hidden_layer_sizes``),
        then one sigmoid unit (binary), a softmax (multiclass) or one sigmoid
        per label (multilabel).
    loss : str, keras loss class, instance or function, default=None
        None picks from the target and the output width:
        ``binary_crossentropy`` for one sigmoid unit or multilabel targets,
        ``categorical_crossentropy`` for one-hot targets, else
        ``sparse_categorical_crossentropy``. Whether y is given to Keras as
        integer codes or one-hot rows follows the loss (``sparse_*`` losses
        get codes). ``loss__*`` instantiates it with arguments
        (``loss__from_logits=True``; probabilities then go through a
        softmax / sigmoid).
    optimizer : str, keras optimizer class or instance, default="rmsprop"
        ``optimizer__*`` instantiates it with arguments
        (``optimizer__learning_rate=1e-3``). An instance is copied per fit.
    metrics : list of str, class, instance or function, default=None
        Extra metrics to record in ``history_``; ``metrics__<i>__*``
        instantiates entry ``i`` with arguments.
    epochs : int, default=1
        Passes over the training data per ``fit`` (``partial_fit`` runs one).
    batch_size : int, default=32
        Rows per gradient step and per prediction batch (None: 32).
    verbose : int, default=0
        Keras' training progress output; prediction is always silent.
    callbacks : list or dict of keras callbacks, classes or instances, default=None
        Classes are instantiated per fit with ``callbacks__<key>__*`` (``key``
        is the list index or dict key); instances are copied per fit.
    validation_split : float, default=0.0
        Fraction of the training data held out, at random (stratified by
        class when possible), to report ``val_*`` in ``history_`` and drive
        early stopping. For a fixed set, pass ``fit(X, y,
        validation_data=(X_val, y_val))``.
    early_stopping : bool or int, default=False
        Stop when the validation loss (the training loss without validation
        data) has not improved for this many epochs (True: 5), and restore
        the best weights.
    shuffle : bool, default=True
        Shuffle the training data every epoch.
    run_eagerly : bool, default=False
        Run Keras' training step eagerly (slow; for debugging).
    warm_start : bool, default=False
        Continue training the fitted ``model_`` on the next ``fit`` instead of
        building a new one; ``history_`` is appended to.
    random_state : int, RandomState instance or None, default=None
        Seeds Python's, NumPy's and the backend's generators during ``fit`` (the
        weights' initialisation, shuffling, dropout, the validation split), so
        fits repeat exactly on one backend; their previous states are restored
        afterwards. No determinism flag or environment variable is changed.
    class_weight : dict, "balanced" or None, default=None
        Weights per class label, multiplied into ``sample_weight`` (neither
        argument is modified).
    **kwargs : dict
        Routed ``<route>__<name>`` parameters (routes: model, optimizer, loss,
        metrics, callbacks, compile, fit, predict) and bare keywords for the
        build callable. An unknown name raises an error naming the closest
        valid one.

    Attributes
    ----------
    model_ : keras.Model
        The fitted network.
    history_ : dict of str to list of float
        Loss and metrics per epoch (``history_df_`` gives a DataFrame).
    classes_ : ndarray of shape (n_classes,)
        The class labels (column indices for one-hot and multilabel targets).
    n_classes_ : int
        Number of classes.
    target_type_ : str
        ``"binary"``, ``"multiclass"``, ``"multiclass-onehot"`` or
        ``"multilabel-indicator"``.
    n_outputs_ : int
        1, or the number of labels of a multilabel target.
    X_shape_ : tuple of int
        Shape of the training X.
    n_features_in_ : int
        Number of features (X's second dimension) seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names of a DataFrame X.

    See Also
    --------
    KerasRegressor : The same for regression.
    hybridml.KerasEmbeddingTransformer : Frozen pretrained features for any
        scikit-learn head.

    Notes
    -----
    ``predict_proba`` always returns ``(n_samples, n_classes)`` with rows that
    sum to 1 (a one-unit sigmoid gives two columns); multilabel targets get one
    probability per label. Pickling, ``copy.deepcopy`` and joblib workers carry
    the fitted model as Keras ``.keras`` bytes; custom losses and metrics given
    as parameters or used in the build callable are restored if they can be
    imported where the pickle is loaded. The module docstring shows transfer
    learning with a keras-hub backbone.

    Examples
    --------
    >>> import numpy as np
    >>> from hybridml import KerasClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(40, 3))
    >>> y = np.where(X[:, 0] > 0, "yes", "no")
    >>> clf = KerasClassifier(model__hidden_layer_sizes=(8,), epochs=2,
    ...                       random_state=0).fit(X, y)
    >>> clf.classes_
    array(['no', 'yes'], dtype='<U3')
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

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
        class_weight: dict | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            model,
            loss=loss,
            optimizer=optimizer,
            metrics=metrics,
            epochs=epochs,
            batch_size=batch_size,
            verbose=verbose,
            callbacks=callbacks,
            validation_split=validation_split,
            early_stopping=early_stopping,
            shuffle=shuffle,
            run_eagerly=run_eagerly,
            warm_start=warm_start,
            random_state=random_state,
            **kwargs,
        )
        self.class_weight = class_weight

    def partial_fit(
        self,
        X: Any,
        y: Any,
        classes: Any = None,
        sample_weight: Any = None,
        **fit_kwargs,
    ) -> KerasClassifier:
        """Train for one epoch, building the model on the first call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        classes : array-like of shape (n_classes,), default=None
            Every label, on the first call, when a batch may miss some.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights.
        **fit_kwargs : dict
            Extra arguments for ``keras.Model.fit``.

        Returns
        -------
        self : KerasClassifier
            The estimator, trained one epoch more.
        """
        return self._fit(X, y, sample_weight, fit_kwargs, partial=True, classes=classes)

    def predict(self, X: Any) -> np.ndarray:
        """Predict class labels (a 0/1 matrix for one-hot and multilabel y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Data to predict.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_classes)
            Predicted labels.
        """
        proba = self.predict_proba(X)
        if self.target_type_ == _targets.MULTILABEL:
            return (proba > 0.5).astype(int)
        index = np.argmax(proba, axis=1)
        if self.target_type_ == _targets.ONE_HOT:
            return np.eye(self.n_classes_, dtype=int)[index]
        return self.classes_[index]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Predict class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Data to predict.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities in the order of ``classes_``; rows sum to 1 except
            for multilabel targets (one probability per label).
        """
        raw = self._predict_raw(X)
        return _targets.probabilities(raw, self._encoding, self._logits)

    # -- target hooks ------------------------------------------------------------

    def _codes(self, y, *, reset=False, classes=None):
        if reset:
            y = np.asarray(y.toarray() if hasattr(y, "toarray") else y)
            if y.ndim == 2 and y.shape[1] == 1:
                y = column_or_1d(y, warn=True)
            kind, labels, codes = _targets.classifier_target(y, classes)
            self.target_type_, self.classes_ = kind, labels
            self.n_classes_ = len(labels)
            self.n_outputs_ = len(labels) if kind == _targets.MULTILABEL else 1
            return codes
        if self.target_type_ == _targets.MULTILABEL:
            return np.asarray(y, dtype="float32")
        if self.target_type_ == _targets.ONE_HOT:
            return np.argmax(np.asarray(y), axis=1)
        return _targets.encode_labels(column_or_1d(y), self.classes_)

    def _weigh_classes(self, weights, codes):
        if self.class_weight is None:
            return weights
        if self.target_type_ == _targets.MULTILABEL:
            raise ValueError(
                f"class_weight: got {self.class_weight!r} for a multilabel target. "
                "Expected None. Weight samples with sample_weight instead."
            )
        if not (
            isinstance(self.class_weight, Mapping) or self.class_weight == "balanced"
        ):
            raise ValueError(
                f"class_weight: got {self.class_weight!r}. Expected a dict "
                "{label: weight}, 'balanced' or None."
            )
        per_class = compute_class_weight(
            self.class_weight, classes=self.classes_, y=self.classes_[codes]
        )
        per_sample = per_class[codes]
        return per_sample if weights is None else weights * per_sample

    def _stratify(self, codes):
        return None if self.target_type_ == _targets.MULTILABEL else codes

    def _default_loss(self, width):
        return _targets.default_classifier_loss(self.target_type_, width)

    def _set_encoding(self, loss, width):
        self._encoding = _targets.classifier_encoding(
            self.target_type_, loss, width, self.n_classes_
        )
        self._logits = _targets.from_logits(loss)

    def _encode(self, codes):
        return _targets.encode_classifier(codes, self._encoding, self.n_classes_)

    def _meta(self) -> dict[str, Any]:
        return {
            **_base_meta(self),
            "classes_": self.classes_,
            "n_classes_": self.n_classes_,
        }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class KerasRegressor(RegressorMixin, _KerasBase):
    """A Keras model as a scikit-learn regressor.

    The model comes from ``model``: a callable that returns a compiled or
    uncompiled ``keras.Model`` (it may declare ``meta`` and ``compile_kwargs``
    to size layers from the data), a ``keras.Model`` instance (a copy is trained,
    starting from its weights), or None for a multilayer perceptron. Every
    parameter, and every routed ``<route>__<name>`` keyword, is tunable with
    ``set_params`` and ``GridSearchCV``.

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
    optimizer : str, keras optimizer class or instance, default="rmsprop"
        ``optimizer__*`` instantiates it with arguments
        (``optimizer__learning_rate=1e-3``). An instance is copied per fit.
    metrics : list of str, class, instance or function, default=None
        Extra metrics to record in ``history_``; ``metrics__<i>__*``
        instantiates entry ``i`` with arguments.
    epochs : int, default=1
        Passes over the training data per ``fit`` (``partial_fit`` runs one).
    batch_size : int, default=32
        Rows per gradient step and per prediction batch (None: 32).
    verbose : int, default=0
        Keras' training progress output; prediction is always silent.
    callbacks : list or dict of keras callbacks, classes or instances, default=None
        Classes are instantiated per fit with ``callbacks__<key>__*`` (``key``
        is the list index or dict key); instances are copied per fit.
    validation_split : float, default=0.0
        Fraction of the training data held out at random to report ``val_*``
        in ``history_`` and drive early stopping. For a fixed set, pass
        ``fit(X, y, validation_data=(X_val, y_val))``.
    early_stopping : bool or int, default=False
        Stop when the validation loss (the training loss without validation
        data) has not improved for this many epochs (True: 5), and restore
        the best weights.
    shuffle : bool, default=True
        Shuffle the training data every epoch.
    run_eagerly : bool, default=False
        Run Keras' training step eagerly (slow; for debugging).
    warm_start : bool, default=False
        Continue training the fitted ``model_`` on the next ``fit`` instead of
        building a new one; ``history_`` is appended to.
    random_state : int, RandomState instance or None, default=None
        Seeds Python's, NumPy's and the backend's generators during ``fit``, so
        fits repeat exactly on one backend; their previous states are restored
        afterwards. No determinism flag or environment variable is changed.
    **kwargs : dict
        Routed ``<route>__<name>`` parameters (routes: model, optimizer, loss,
        metrics, callbacks, compile, fit, predict) and bare keywords for the
        build callable. An unknown name raises an error naming the closest
        valid one.

    Attributes
    ----------
    model_ : keras.Model
        The fitted network.
    history_ : dict of str to list of float
        Loss and metrics per epoch (``history_df_`` gives a DataFrame).
    target_type_ : str
        ``"continuous"`` for 1-D y, ``"continuous-multioutput"`` for 2-D y.
    n_outputs_ : int
        Number of targets.
    X_shape_ : tuple of int
        Shape of the training X.
    n_features_in_ : int
        Number of features (X's second dimension) seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names of a DataFrame X.

    See Also
    --------
    KerasClassifier : The same for classification.

    Notes
    -----
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
        return _base_meta(self)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


# -- helpers -------------------------------------------------------------------


def _default_mlp(meta, hidden_layer_sizes=(100,), activation="relu"):
    """Build the model used when ``model=None``: an MLP sized from ``meta``."""
    keras = import_keras()
    inputs = keras.Input(shape=meta["X_shape_"][1:])
    x = keras.layers.Flatten()(inputs) if len(meta["X_shape_"]) > 2 else inputs
    for units in hidden_layer_sizes:
        x = keras.layers.Dense(units, activation=activation)(x)
    target = meta["target_type_"]
    if target == "binary":
        outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    elif target in ("multiclass", _targets.ONE_HOT):
        outputs = keras.layers.Dense(meta["n_classes_"], activation="softmax")(x)
    elif target == _targets.MULTILABEL:
        outputs = keras.layers.Dense(meta["n_outputs_"], activation="sigmoid")(x)
    else:
        outputs = keras.layers.Dense(meta["n_outputs_"])(x)
    return keras.Model(inputs, outputs)


def _base_meta(estimator) -> dict[str, Any]:
    return {
        "n_features_in_": estimator.n_features_in_,
        "feature_names_in_": getattr(estimator, "feature_names_in_", None),
        "X_shape_": estimator.X_shape_,
        "X_dtype_": estimator.X_dtype_,
        "target_type_": estimator.target_type_,
        "n_outputs_": estimator.n_outputs_,
    }


def _clone_with_weights(keras, model, X):
    """Copy a model instance: same architecture and weights, uncompiled."""
    clone = keras.models.clone_model(model)
    if len(clone.weights) != len(model.weights):  # subclassed: build it first
        clone(_as_floatx(keras, X[:1]), training=False)
    clone.set_weights(model.get_weights())
    return clone


def _output_width(keras, model, X) -> int | None:
    """Units of the model's single output; builds a subclassed model."""
    try:
        outputs = list(model.outputs)
    except (AttributeError, ValueError):  # subclassed, or not built yet
        out = model(_as_floatx(keras, X[:1]), training=False)
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


def _as_floatx(keras, X):
    dtype = keras.config.floatx()
    return X if X.dtype == dtype else X.astype(dtype)


def _declared(func: Callable) -> set[str]:
    """Every parameter name of ``func``'s signature."""
    try:
        return set(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return set()


def _custom_objects(*candidates) -> dict[str, Any]:
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


def _train_test_split(index, size, seed, stratify):
    try:
        return train_test_split(
            index, test_size=size, random_state=seed, stratify=stratify
        )
    except ValueError:  # a class too small to stratify
        return train_test_split(index, test_size=size, random_state=seed)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed Python, NumPy and the backend; restore their states afterwards.

    TensorFlow is only seeded when it is already imported (it is under the
    TensorFlow backend), so JAX and torch runs never import it.
    """
    if seed is None:
        yield
        return
    keras = import_keras()
    python_state = random.getstate()
    numpy_state = np.random.get_state()  # noqa: NPY002 (Keras draws from it)
    torch = sys.modules.get("torch") if keras.backend.backend() == "torch" else None
    torch_state = torch.random.get_rng_state() if torch is not None else None
    tf = sys.modules.get("tensorflow")
    tf_seed = _tf_global_seed(tf) if tf is not None else None
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002
    if torch is not None:
        torch.manual_seed(seed)
    if tf is not None:
        tf.random.set_seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)  # noqa: NPY002
        if torch is not None:
            torch.random.set_rng_state(torch_state)
        if tf is not None:
            tf.random.set_seed(tf_seed)


class _RetracingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _quiet_retracing() -> Iterator[None]:
    """Hide TensorFlow's "retracing" warning while we fit or predict.

    Every fit builds a new model with new traced functions, so a grid search
    retraces by design; TensorFlow's advice to avoid it does not apply.
    """
    logger = logging.getLogger("tensorflow")
    quiet = _RetracingFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _tf_global_seed(tf) -> int | None:
    """TensorFlow's global seed, or None when none is set."""
    try:
        return tf.compat.v1.get_seed(None)[0]
    except RuntimeError:  # op determinism on and no seed: nothing to restore
        return None

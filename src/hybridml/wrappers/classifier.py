"""KerasClassifier: a Keras model as a scikit-learn classifier."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import column_or_1d

from . import docstrings, targets
from .base import KerasBase
from .building import (
    base_meta,
)

__all__ = ["KerasClassifier"]


class KerasClassifier(ClassifierMixin, KerasBase):
    """A Keras model as a scikit-learn classifier.

    {intro}

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
    {shared_parameters}
    validation_split : float, default=0.0
        Fraction of the training data held out, at random (stratified by
        class when possible), to report ``val_*`` in ``history_`` and drive
        early stopping. For a fixed set, pass ``fit(X, y,
        validation_data=(X_val, y_val))``.
    {shared_training}
    random_state : int, RandomState instance or None, default=None
        Seeds Python's, NumPy's and the backend's generators during ``fit`` (the
        weights' initialisation, shuffling, dropout, the validation split), so
        fits repeat exactly on one backend; their previous states are restored
        afterwards. No determinism flag or environment variable is changed.
    class_weight : dict, "balanced" or None, default=None
        Weights per class label, multiplied into ``sample_weight`` (neither
        argument is modified).
    {shared_sequence_and_kwargs}

    Attributes
    ----------
    {shared_attributes}
    classes_ : ndarray of shape (n_classes,)
        The class labels (column indices for one-hot and multilabel targets).
    n_classes_ : int
        Number of classes.
    target_type_ : str
        ``"binary"``, ``"multiclass"``, ``"multiclass-onehot"`` or
        ``"multilabel-indicator"``.
    n_outputs_ : int
        1, or the number of labels of a multilabel target.
    {shared_shape_attributes}

    See Also
    --------
    KerasRegressor : The same for regression.
    hybridml.KerasEmbeddingTransformer : Frozen pretrained features for any
        scikit-learn head.

    Notes
    -----
    {raw_inputs_note}

    ``predict_proba`` always returns ``(n_samples, n_classes)`` with rows that
    sum to 1 (a one-unit sigmoid gives two columns); multilabel targets get one
    probability per label. Pickling, ``copy.deepcopy`` and joblib workers carry
    the fitted model as Keras ``.keras`` bytes; custom losses and metrics given
    as parameters or used in the build callable are restored if they can be
    imported where the pickle is loaded. For transfer learning with a keras-hub
    backbone, see :func:`hybridml.make_finetune_classifier`.

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
        sequence_length: int | None = None,
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
            sequence_length=sequence_length,
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
        if self.target_type_ == targets.MULTILABEL:
            return (proba > 0.5).astype(int)
        index = np.argmax(proba, axis=1)
        if self.target_type_ == targets.ONE_HOT:
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
        return targets.probabilities(raw, self._encoding, self._logits)

    # -- target hooks ------------------------------------------------------------

    def _codes(self, y, *, reset=False, classes=None):
        if reset:
            y = np.asarray(y.toarray() if hasattr(y, "toarray") else y)
            if y.ndim == 2 and y.shape[1] == 1:
                y = column_or_1d(y, warn=True)
            kind, labels, codes = targets.classifier_target(y, classes)
            self.target_type_, self.classes_ = kind, labels
            self.n_classes_ = len(labels)
            self.n_outputs_ = len(labels) if kind == targets.MULTILABEL else 1
            return codes
        if self.target_type_ == targets.MULTILABEL:
            return np.asarray(y, dtype="float32")
        if self.target_type_ == targets.ONE_HOT:
            return np.argmax(np.asarray(y), axis=1)
        return targets.encode_labels(column_or_1d(y), self.classes_)

    def _weigh_classes(self, weights, codes):
        if self.class_weight is None:
            return weights
        if self.target_type_ == targets.MULTILABEL:
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
        return None if self.target_type_ == targets.MULTILABEL else codes

    def _default_loss(self, width):
        return targets.default_classifier_loss(self.target_type_, width)

    def _set_encoding(self, loss, width):
        self._encoding = targets.classifier_encoding(
            self.target_type_, loss, width, self.n_classes_
        )
        self._logits = targets.from_logits(loss)

    def _encode(self, codes):
        return targets.encode_classifier(codes, self._encoding, self.n_classes_)

    def _meta(self) -> dict[str, Any]:
        return {
            **base_meta(self),
            "classes_": self.classes_,
            "n_classes_": self.n_classes_,
        }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


KerasClassifier.__doc__ = docstrings.fill(KerasClassifier.__doc__, "classifier")

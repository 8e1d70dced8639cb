"""One-line end-to-end fine-tuning: a pretrained keras-hub task inside sklearn.

``make_finetune_classifier("all_minilm_l6_v2_en")`` returns an unfitted
:class:`~hybridml.KerasClassifier` whose model is a keras-hub
``TextClassifier`` (or ``ImageClassifier``) built from the backbone, fitted on
raw strings (or images) inside each fold like any estimator. The backbone is
loaded from its preset folder once per ``fit`` (a fresh copy of the pretrained
weights; clones load nothing).
"""

from __future__ import annotations

from typing import Any

from ._imports import quiet_import
from ._validation import check_int
from .wrappers.classifier import KerasClassifier
from .wrappers.regressor import KerasRegressor

__all__ = ["finetune_task", "make_finetune_classifier", "make_finetune_regressor"]


def finetune_task(
    meta: dict,
    backbone: str = "all_minilm_l6_v2_en",
    backbone_trainable: bool = True,
    image_size: int | None = None,
    dropout: float = 0.1,
    dtype: str = "auto",
) -> Any:
    """Build an uncompiled keras-hub task on ``backbone``, sized from ``meta``.

    The build function of :func:`make_finetune_classifier`; its arguments are
    the estimator's ``model__*`` parameters (grid-searchable).

    Parameters
    ----------
    meta : dict
        From the estimator: ``n_classes_`` (classifiers) or ``n_outputs_``.
    backbone : str, default="all_minilm_l6_v2_en"
        A preset name, handle or folder, resolved as the embedding transformer
        resolves it (offline copies first).
    backbone_trainable : bool, default=True
        False freezes the backbone: only the new head trains.
    image_size : int or None, default=None
        Image tasks: resize to ``image_size`` x ``image_size`` (None keeps the
        preset's, e.g. 224); smaller is much faster on a CPU.
    dropout : float, default=0.1
        Dropout before the head of text tasks.
    dtype : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        The task's precision: "bfloat16" / "float16" compute in 16 bits with
        float32 weights (Keras' mixed policies). "auto" measures training
        steps of both on this machine once per backbone and keeps bfloat16
        only where it is faster and as accurate (:mod:`hybridml.finetune_dtype`;
        float32 on a CPU without bfloat16 units, by compute capability on a
        CUDA GPU). The built task's ``dtype_policy`` says what was chosen; the
        ``hybridml`` logger says why.

    Returns
    -------
    task : keras_hub.models.Task
        An uncompiled ``TextClassifier`` or ``ImageClassifier`` with its
        preprocessor, outputting logits.
    """
    from . import finetune_dtype
    from .embed.backbones import resolve_location

    location = str(resolve_location(backbone))
    width = meta.get("n_classes_") or meta["n_outputs_"]
    if image_size is not None:
        image_size = check_int(image_size, "model__image_size", minimum=8)

    def build(policy: str) -> Any:
        return _task(location, width, dropout, image_size, policy)

    regression = not meta.get("n_classes_")
    dtype, _ = finetune_dtype.resolve(dtype, build, backbone, regression)
    task = build(finetune_dtype.POLICIES[dtype])
    task.backbone.trainable = bool(backbone_trainable)
    return task


def _task(location: str, width: int, dropout: float, image_size, policy: str):
    """Build a keras-hub text (else image) task, its backbone in ``policy``."""
    keras_hub = quiet_import("keras_hub")
    try:
        task = keras_hub.models.TextClassifier.from_preset(
            location, num_classes=width, dropout=dropout, compile=False, dtype=policy
        )
        # a preset may pad past its backbone's positions: pad to what it has
        # (this task is ours, built here; a user's task is never changed)
        limit = getattr(task.backbone, "max_sequence_length", None)
        length = getattr(task.preprocessor, "sequence_length", None)
        if limit and length and length > limit:
            task.preprocessor.sequence_length = int(limit)
    except ValueError:  # not a text preset
        task = keras_hub.models.ImageClassifier.from_preset(
            location, num_classes=width, compile=False, dtype=policy
        )
        if image_size is not None:
            task.preprocessor.image_converter.image_size = (image_size, image_size)
    return task


def _options(
    backbone, learning_rate, epochs, batch_size, backbone_trainable, image_size, dtype
):
    if not isinstance(backbone, str):
        raise TypeError(
            f"backbone: got {type(backbone).__name__}. Expected a preset name, "
            "handle or folder (str). Pass a keras-hub task as model= to "
            "KerasClassifier instead."
        )
    return {
        "model": finetune_task,
        "model__backbone": backbone,
        "model__backbone_trainable": backbone_trainable,
        "model__image_size": image_size,
        "model__dtype": dtype,
        "optimizer": "adam",
        "optimizer__learning_rate": learning_rate,
        "epochs": epochs,
        "batch_size": batch_size,
    }


def make_finetune_classifier(
    backbone: str = "all_minilm_l6_v2_en",
    *,
    sequence_length: int | None = 128,
    image_size: int | None = None,
    learning_rate: float = 5e-5,
    epochs: int = 3,
    batch_size: int = 16,
    backbone_trainable: bool = True,
    dtype: str = "auto",
    **kwargs: Any,
) -> KerasClassifier:
    """Make a classifier that fine-tunes a pretrained backbone end to end.

    Parameters
    ----------
    backbone : str, default="all_minilm_l6_v2_en"
        Any preset name, handle or folder the embedding transformer accepts:
        text backbones give a keras-hub ``TextClassifier`` (fitted on raw
        strings), image backbones (e.g. ``"efficientnet_lite0"``) an
        ``ImageClassifier`` (fitted on image arrays, paths or PIL images).
    sequence_length : int or None, default=128
        Tokens per text row (None: the preset's own length).
    image_size : int or None, default=None
        Image side in pixels (None: the preset's).
    learning_rate : float, default=5e-5
        Adam's learning rate (``optimizer__learning_rate``).
    epochs : int, default=3
        Passes over the training data.
    batch_size : int, default=16
        Rows per step.
    backbone_trainable : bool, default=True
        False trains only the head (``model__backbone_trainable``).
    dtype : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        Training precision (``model__dtype``; see :func:`finetune_task`):
        "auto" measures bfloat16 against float32 once per machine and
        backbone.
    **kwargs : dict
        Any other :class:`~hybridml.KerasClassifier` parameter
        (``random_state``, ``validation_split``, ``early_stopping``,
        ``class_weight``, ``verbose``, ...).

    Returns
    -------
    estimator : KerasClassifier
        Unfitted. The number of classes comes from ``y`` at ``fit``; the task
        outputs logits and ``predict_proba`` applies the softmax.

    Examples
    --------
    >>> from hybridml import make_finetune_classifier
    >>> clf = make_finetune_classifier("all_minilm_l6_v2_en", epochs=2)
    >>> clf.get_params()["model__backbone_trainable"]
    True
    """
    options = _options(
        backbone,
        learning_rate,
        epochs,
        batch_size,
        backbone_trainable,
        image_size,
        dtype,
    )
    return KerasClassifier(
        loss="sparse_categorical_crossentropy",
        loss__from_logits=True,
        sequence_length=sequence_length,
        **{**options, **kwargs},
    )


def make_finetune_regressor(
    backbone: str = "all_minilm_l6_v2_en",
    *,
    sequence_length: int | None = 128,
    image_size: int | None = None,
    learning_rate: float = 5e-5,
    epochs: int = 3,
    batch_size: int = 16,
    backbone_trainable: bool = True,
    dtype: str = "auto",
    **kwargs: Any,
) -> KerasRegressor:
    """Make a regressor that fine-tunes a pretrained backbone end to end.

    Parameters
    ----------
    backbone : str, default="all_minilm_l6_v2_en"
        As for :func:`make_finetune_classifier`; the task's head has one
        linear unit per target.
    sequence_length : int or None, default=128
        Tokens per text row (None: the preset's own length).
    image_size : int or None, default=None
        Image side in pixels (None: the preset's).
    learning_rate : float, default=5e-5
        Adam's learning rate.
    epochs : int, default=3
        Passes over the training data.
    batch_size : int, default=16
        Rows per step.
    backbone_trainable : bool, default=True
        False trains only the head.
    dtype : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        Training precision (``model__dtype``), as for the classifier.
    **kwargs : dict
        Any other :class:`~hybridml.KerasRegressor` parameter.

    Returns
    -------
    estimator : KerasRegressor
        Unfitted, trained with mean squared error.

    Examples
    --------
    >>> from hybridml import make_finetune_regressor
    >>> reg = make_finetune_regressor("all_minilm_l6_v2_en", sequence_length=64)
    >>> reg.sequence_length
    64
    """
    options = _options(
        backbone,
        learning_rate,
        epochs,
        batch_size,
        backbone_trainable,
        image_size,
        dtype,
    )
    return KerasRegressor(
        loss="mean_squared_error",
        sequence_length=sequence_length,
        **{**options, **kwargs},
    )

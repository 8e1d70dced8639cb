"""Forward passes: pooling heads and per-backend compiled functions."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

from .._imports import quiet_import

# What Embedder.text_batch feeds a text backbone.
TEXT_INPUTS = {"token_ids", "padding_mask", "segment_ids"}
# torch: text batches of at least this many tokens per row run attention on the
# fused kernel (torch's scaled_dot_product_attention). CPU-s per MiniLM batch of
# 32 rows, plain / fused, AMD EPYC (Zen, AVX-512): 24 tokens 0.232 / 0.242,
# 40: 0.392 / 0.384, 72: 0.650 / 0.635, 136: 1.784 / 1.427; an Intel Xeon
# (AVX-512, no AMX): 24: 0.582 / 0.558, 40: 0.858 / 0.901, 48: 1.057 / 1.009,
# 136: 3.116 / 2.742. Same vectors (cosine >= 0.9999999).
TORCH_FUSED_FROM = 48
# fused_attention changes the attention layers' dropout rate for the length of
# an eager call on torch: one call at a time, so that no call saves a rate
# another has zeroed.
_FUSE_LOCK = threading.RLock()


def pow2_rows(n: int) -> int:
    """``n`` rounded up to a power of two: JAX's batch rows (few shapes to compile)."""
    return 1 << (n - 1).bit_length()


def pad_rows(keras: Any, inputs: Any, n: int, target: int) -> Any:
    if target == n:
        return inputs
    if isinstance(inputs, dict):
        return {k: pad_rows(keras, v, n, target) for k, v in inputs.items()}
    reps = keras.ops.repeat(inputs[:1], target - n, axis=0)
    return keras.ops.concatenate([inputs, reps], axis=0)


def pool_output(keras: Any, out: Any, mask: Any, pooling: str, normalize: bool) -> Any:
    ops = keras.ops
    out = ops.cast(out, "float32")
    if pooling == "none":
        pooled = out
    elif len(out.shape) == 4:
        pooled = (
            ops.max(out, axis=(1, 2))
            if pooling == "max"
            else ops.mean(out, axis=(1, 2))
        )
    elif pooling == "cls":
        pooled = out[:, 0, :]
    elif mask is None:
        pooled = ops.mean(out, axis=1) if pooling == "mean" else ops.max(out, axis=1)
    else:
        m = ops.cast(ops.expand_dims(mask, -1), "float32")
        if pooling == "mean":
            pooled = ops.sum(out * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1e-9)
        elif pooling == "max":
            pooled = ops.max(ops.where(m > 0, out, -3.0e38), axis=1)
        else:  # last non-padding token (right padding)
            last = ops.cast(ops.sum(mask, axis=1) - 1, "int32")
            onehot = ops.one_hot(last, ops.shape(out)[1], dtype="float32")
            pooled = ops.sum(out * ops.expand_dims(onehot, -1), axis=1)
    if normalize:
        norm = ops.sqrt(
            ops.maximum(ops.sum(pooled * pooled, axis=-1, keepdims=True), 1e-24)
        )
        pooled = pooled / norm
    return pooled


@contextlib.contextmanager
def fused_attention(keras: Any, model: Any):
    """Within: attention dropout rate 0, so Keras uses the fused kernel.

    Keras' ``MultiHeadAttention`` calls the backend's ``ops.dot_product_attention``
    only when its dropout rate is 0. At ``training=False`` dropout does nothing,
    so the forward computes the same function; the rates are restored on exit
    (the model, perhaps a user's, is left as it was). TensorFlow holds it while
    tracing, torch around one eager call; one holder at a time in a process.
    """
    with _FUSE_LOCK:
        layers = [
            layer
            for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.MultiHeadAttention) and layer._dropout
        ]
        rates = [layer._dropout for layer in layers]
        for layer in layers:
            layer._dropout = 0.0
        try:
            yield
        finally:
            for layer, rate in zip(layers, rates, strict=True):
                layer._dropout = rate


def uses_xla(embedder: Any) -> bool:
    """Whether the forward compiles once per input shape (JAX; TF text with XLA).

    TF: XLA for float32 text backbones (measured there only). A bfloat16
    forward runs TensorFlow's graph (oneDNN's kernels) instead: on an AVX-512
    BF16 EPYC, MiniLM's XLA forward in bfloat16 took 1.24-1.42x the CPU of the
    graph's (16 x 32 to 32 x 48 tokens), and more than XLA's float32. The
    environment variable ``HYBRIDML_TF_XLA``: "0" never uses XLA, "all" uses
    it in bfloat16 too (to measure the choice on another CPU).
    """
    backend = quiet_import("keras").backend.backend()
    if backend == "jax":
        return True
    switch = os.environ.get("HYBRIDML_TF_XLA", "1")
    return (
        backend == "tensorflow"
        and embedder.modality == "text"
        and switch != "0"
        and (switch == "all" or compute_dtype(embedder.model) != "bfloat16")
    )


def compute_dtype(model: Any) -> str:
    """The dtype a Keras model computes in ("float32" where it says none)."""
    policy = getattr(model, "dtype_policy", None)
    return str(getattr(policy, "compute_dtype", None) or "float32")


def compile_forward(
    embedder: Any,
    pooling: str,
    normalize: bool,
    *,
    jit: bool | None = None,
    fuse: bool = True,
) -> Callable:
    """Build a forward function compiled once per backend, reused across calls.

    TensorFlow: traced with attention on the fused ``dot_product_attention``
    (:func:`fused_attention`) and, with ``jit``, compiled with XLA; together
    1.55x less CPU per MiniLM batch than a plain ``tf.function``
    (``benchmarks/bench_levers.py``). ``jit=None``: :func:`uses_xla`; with
    ``jit=False`` a text forward is traced once for all shapes. ``fuse``
    False keeps the model's attention path as it is.
    """
    keras = quiet_import("keras")
    model = embedder.model
    key = embedder.output_key
    backend = keras.backend.backend()

    def head(out, inputs):
        if key is not None:
            out = out[key]
        mask = inputs.get("padding_mask") if isinstance(inputs, dict) else None
        return pool_output(keras, out, mask, pooling, normalize)

    if backend == "jax":
        import jax

        def pure(trainable, non_trainable, inputs):
            out, _ = model.stateless_call(
                trainable, non_trainable, inputs, training=False
            )
            return head(out, inputs)

        jitted = jax.jit(pure)

        def run(inputs):
            # Read variables at call time: keras' predict() may replace buffers.
            return jitted(
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
                inputs,
            )

        return run
    if backend == "tensorflow":
        import tensorflow as tf

        if jit is None:
            jit = uses_xla(embedder)
        # The plain graph is traced once for every (rows, tokens) shape.
        signature = None
        names = set(embedder.input_names or ())
        if not jit and {"token_ids", "padding_mask"} <= names <= TEXT_INPUTS:
            spec = tf.TensorSpec([None, None], tf.int32)
            signature = [{name: spec for name in sorted(names)}]

        @tf.function(reduce_retracing=True, jit_compile=jit, input_signature=signature)
        def run_tf(inputs):
            if not fuse:
                return head(model(inputs, training=False), inputs)
            with fused_attention(keras, model):  # runs once per trace
                return head(model(inputs, training=False), inputs)

        return run_tf
    if backend == "torch":
        import torch

        def run_torch(inputs):
            with torch.inference_mode():
                ids = inputs.get("token_ids") if isinstance(inputs, dict) else None
                if not fuse or ids is None or ids.shape[1] < TORCH_FUSED_FROM:
                    return head(model(inputs, training=False), inputs)
                with fused_attention(keras, model):
                    return head(model(inputs, training=False), inputs)

        return run_torch
    return lambda inputs: head(model(inputs, training=False), inputs)

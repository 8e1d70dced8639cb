"""Mixed precision for contrastive tuning: which dtype, and a copy that uses it.

Keras mixed precision keeps each variable in float32 and computes in a
16-bit type (policies ``mixed_bfloat16`` and ``mixed_float16``). On a CUDA
GPU ``"auto"`` follows the capability (:func:`auto_dtype`). On a CPU it is
measured (``training.resolve_dtype``: :mod:`calibrate`'s rule on timed
training steps), since the answer depends on the chip: on 2 cores of an AMD
EPYC (AVX-512 BF16, no AMX), 8-per-class fits in bfloat16 cost 1.02x the
CPU-seconds of float32 on MiniLM text and 1.46x on EfficientNet-Lite0 images
(3 draws each; README); :func:`auto_dtype` alone says float32 on every CPU.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DTYPES",
    "accelerator_capability",
    "auto_dtype",
    "copy_in_dtype",
    "weighted_layers",
]

DTYPES = ("auto", "float32", "bfloat16", "float16")


def accelerator_capability() -> tuple[int, int] | None:
    """CUDA compute capability of the Keras backend's first GPU; None on CPU."""
    from .._imports import quiet_import

    keras = quiet_import("keras")

    backend = keras.backend.backend()
    try:
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                return tuple(torch.cuda.get_device_capability(0))[:2]
        elif backend == "jax":
            import jax

            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            if gpus:
                cc = str(getattr(gpus[0], "compute_capability", "0.0"))
                major, _, minor = cc.partition(".")
                return int(major), int(minor or 0)
        elif backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return tuple(details.get("compute_capability", (0, 0)))[:2]
    except Exception:  # a broken driver reads as no GPU: float32 is always safe
        return None
    return None


def auto_dtype(capability: tuple[int, int] | None) -> str:
    """The unmeasured rule: bfloat16 on Ampere+ GPUs, float16 on Volta/Turing.

    Examples
    --------
    >>> from hybridml.embed.precision import auto_dtype
    >>> auto_dtype(None), auto_dtype((7, 5)), auto_dtype((9, 0))
    ('float32', 'float16', 'bfloat16')
    """
    if capability is None or tuple(capability) < (7, 0):
        return "float32"
    return "bfloat16" if tuple(capability) >= (8, 0) else "float16"


def gpu_choice(capability: tuple[int, int]) -> tuple[str, str]:
    """``(dtype, reason)`` for ``"auto"`` on a CUDA GPU: :func:`auto_dtype`, said.

    Examples
    --------
    >>> from hybridml.embed.precision import gpu_choice
    >>> gpu_choice((8, 6))[0], gpu_choice((7, 0))[0], gpu_choice((6, 1))[0]
    ('bfloat16', 'float16', 'float32')
    """
    chosen = auto_dtype(capability)
    return chosen, (
        f"{chosen}: CUDA GPU {capability[0]}.{capability[1]} (bfloat16 from "
        "compute capability 8.0, float16 on 7.x, float32 below)"
    )


def weighted_layers(model: Any) -> list:
    """The innermost layers of ``model`` that hold weights (nested models too)."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if layer.weights and not layer._layers
    ]


def _computes_in(model: Any, dtype: str) -> bool:
    """Whether every layer holding weights computes in ``dtype``."""
    layers = weighted_layers(model)
    return bool(layers) and all(layer.compute_dtype == dtype for layer in layers)


def copy_in_dtype(model: Any, dtype: str) -> Any | None:
    """A copy of ``model``'s architecture computing in ``dtype`` (float32 weights).

    keras-hub backbones take a ``dtype`` in their config and hand it to every
    layer; functional and sequential models are cloned layer by layer with
    the policy. Returns None when neither yields a model computing in
    ``dtype`` (a subclassed model builds its layers in its own code).
    """
    from .._imports import quiet_import

    keras = quiet_import("keras")

    if dtype == "float32":
        raise ValueError("copy_in_dtype is for reduced precision")
    policy = f"mixed_{dtype}"
    try:
        new = type(model).from_config({**model.get_config(), "dtype": policy})
        if _computes_in(new, dtype):
            return new
    except Exception:  # no config, or a constructor without dtype
        pass

    def with_policy(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": policy})

    try:
        new = keras.models.clone_model(
            model, clone_function=with_policy, recursive=True
        )
    except Exception:
        return None
    return new if _computes_in(new, dtype) else None

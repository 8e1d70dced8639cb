"""Sending a transformer to workers, shared by Ray and Dask.

On the driver, :func:`ship` pickles the transformer and loads the pickle back
at once (with the user's ``custom_objects``), so a model that cannot be
restored (a custom layer nobody registered, a ``Lambda`` refused by Keras' safe
mode) fails here, before any worker starts, not later in every worker. On a
worker, :meth:`Shipment.estimator` loads it once per process and pickle, and
:func:`prepare_process` caps the compute threads before the first op.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sys
import threading
from collections.abc import Iterator
from typing import Any

from .._imports import quiet_import
from ..embed.backbones import get_embedder
from ..embed.transformer import KerasEmbeddingTransformer
from ._checks import check_transformer

_ESTIMATORS: dict[str, Any] = {}  # unpickled estimators, by sha256 of their pickle
_ESTIMATORS_LOCK = threading.Lock()
_THREADS_CAPPED = False


class Shipment:
    """A transformer's pickle and the custom objects its model needs to load."""

    def __init__(self, blob: bytes, custom_objects: dict[str, Any]) -> None:
        self.blob = blob
        self.custom_objects = custom_objects
        self.digest = hashlib.sha256(blob).hexdigest()

    def __dask_tokenize__(self) -> tuple:
        return (self.digest, sorted(self.custom_objects))

    def load(self) -> Any:
        """A fresh copy of the transformer."""
        with _custom_scope(self.custom_objects):
            return pickle.loads(self.blob)

    def estimator(self) -> Any:
        """One unpickled estimator per process and pickle (so one loaded model)."""
        with _ESTIMATORS_LOCK:
            estimator = _ESTIMATORS.get(self.digest)
            if estimator is None:
                estimator = _ESTIMATORS[self.digest] = self.load()
        return estimator


def ship(estimator: Any, custom_objects: dict[str, Any]) -> Shipment:
    """Pickle ``estimator`` for the workers, and prove here that it loads back."""
    check_transformer(estimator)
    try:
        blob = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f"transformer: could not be pickled to send to workers ({exc}). "
            "Expected a picklable transformer. Pass the backbone as a preset name "
            "or folder, a keras.Model, or a module-level function."
        ) from exc
    shipment = Shipment(blob, custom_objects)
    try:
        shipment.load()
    except Exception as exc:
        raise ValueError(
            f"transformer: its pickle cannot be loaded back, so no worker could "
            f"use it ({_cause(exc)}). Expected a model Keras can "
            "restore. Pass custom_objects={'MyLayer': MyLayer} for custom layers "
            "(or register them with keras.saving.register_keras_serializable in "
            "a module the workers import); replace Lambda layers, which Keras' "
            "safe mode refuses, with a registered layer."
        ) from exc
    return shipment


def _cause(exc: BaseException) -> str:
    """Keras' load error in one short line (its innermost cause, no config dump)."""
    text = str(exc).split("Exception encountered:")[-1].split("Full object config")[0]
    text = " ".join(text.split()).rstrip(". ")
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}"


@contextlib.contextmanager
def _custom_scope(custom_objects: dict[str, Any]) -> Iterator[None]:
    if not custom_objects:
        yield
        return
    keras = quiet_import("keras")
    with keras.saving.custom_object_scope(custom_objects):
        yield


def worker_env() -> dict[str, str]:
    """Return the Keras backend of this process, for workers to use the same."""
    keras = sys.modules.get("keras")
    backend = None
    if keras is not None and hasattr(keras, "backend"):
        backend = keras.backend.backend()
    backend = backend or os.environ.get("KERAS_BACKEND")
    return {"KERAS_BACKEND": backend} if backend else {}


def warm_up(estimator: Any) -> None:
    """Load the backbone now (once per process, through the registry)."""
    if isinstance(estimator, KerasEmbeddingTransformer):
        # the dtype the fit resolved ("auto" is resolved once, on the driver)
        dtype = getattr(estimator, "dtype_", estimator.dtype)
        get_embedder(estimator.backbone, None if dtype == "auto" else dtype)


def prepare_process(threads: int | None, *, share_gpu: bool = False) -> None:
    """Cap this worker's compute threads before its first op; once per process."""
    global _THREADS_CAPPED
    if share_gpu:  # several workers on one GPU: grow memory, do not reserve it
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if _THREADS_CAPPED or not threads:
        return
    _THREADS_CAPPED = True
    n = str(threads)
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(var, n)
    flags = os.environ.get("XLA_FLAGS", "")
    if threads == 1 and "jax" not in sys.modules and "multi_thread_eigen" not in flags:
        # XLA reads its CPU threading from the environment, before jax loads;
        # it can only be told "one thread", not a number.
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        ).strip()
    keras = quiet_import("keras")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        tf = sys.modules["tensorflow"]
        try:  # TensorFlow ignores OMP_NUM_THREADS; it refuses after its first op
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass
    elif backend == "torch":
        import torch

        torch.set_num_threads(threads)

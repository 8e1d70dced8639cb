"""Seeding for repeatable fits and TensorFlow's retracing noise."""

from __future__ import annotations

import contextlib
import logging
import random
import sys
from collections.abc import Iterator

import numpy as np

from .._imports import import_keras


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed Python, NumPy and the backend; restore their states afterwards.

    TensorFlow is only seeded when it is already imported (it is under the
    TensorFlow backend), so JAX and torch runs never import it.
    """
    if seed is None:
        yield
        return
    keras = import_keras()
    python_state = random.getstate()
    numpy_state = np.random.get_state()  # noqa: NPY002 (Keras draws from it)
    torch = sys.modules.get("torch") if keras.backend.backend() == "torch" else None
    torch_state = torch.random.get_rng_state() if torch is not None else None
    tf = sys.modules.get("tensorflow")
    tf_seed = _tf_global_seed(tf) if tf is not None else None
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002
    if torch is not None:
        torch.manual_seed(seed)
    if tf is not None:
        tf.random.set_seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)  # noqa: NPY002
        if torch is not None:
            torch.random.set_rng_state(torch_state)
        if tf is not None:
            tf.random.set_seed(tf_seed)


class _RetracingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _quiet_retracing() -> Iterator[None]:
    """Hide TensorFlow's "retracing" warning while we fit or predict.

    Every fit builds a new model with new traced functions, so a grid search
    retraces by design; TensorFlow's advice to avoid it does not apply.
    """
    logger = logging.getLogger("tensorflow")
    quiet = _RetracingFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _tf_global_seed(tf) -> int | None:
    """TensorFlow's global seed, or None when none is set."""
    try:
        return tf.compat.v1.get_seed(None)[0]
    except RuntimeError:  # op determinism on and no seed: nothing to restore
        return None

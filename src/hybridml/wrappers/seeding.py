"""Seeding for repeatable fits and TensorFlow's retracing noise."""

from __future__ import annotations

import contextlib
import logging
import random
import sys
from collections.abc import Iterator

import numpy as np

from .._imports import import_keras
from ..embed.seeding import preserved_random_state


@contextlib.contextmanager
def seeded_fit(seed: int | None) -> Iterator[None]:
    """Seed Python, NumPy and the backend; restore their states afterwards.

    TensorFlow is only seeded when it is already imported (it is under the
    TensorFlow backend), so JAX and torch runs never import it.
    """
    if seed is None:
        yield
        return
    keras = import_keras()
    torch = sys.modules.get("torch") if keras.backend.backend() == "torch" else None
    tf = sys.modules.get("tensorflow")
    with preserved_random_state():
        random.seed(seed)
        np.random.seed(seed)  # noqa: NPY002
        if torch is not None:
            torch.manual_seed(seed)
        if tf is not None:
            tf.random.set_seed(seed)
        yield


class _RetracingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def quiet_retracing() -> Iterator[None]:
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

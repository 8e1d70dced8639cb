"""The caller's global random state, kept: a seeded fit leaves it as it was.

A fit with ``random_state`` seeds Python's, NumPy's, the backend's and Keras'
global generators so that it repeats; :func:`preserved_random_state` saves
every one of them first and puts them back afterwards, so the caller's next
draw is the draw it would have had without the fit. TensorFlow and torch are
only touched when already imported (a JAX run never imports TensorFlow here).
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["preserved_random_state"]

# keras' global seed (keras.utils.set_random_seed) and the SeedGenerator that
# keras.random draws from when no seed is given
_KERAS_ATTRS = ("global_random_seed", "global_seed_generator")


@contextlib.contextmanager
def preserved_random_state(active: bool = True) -> Iterator[None]:
    """Save the global random generators; restore them when the block ends.

    Covers ``random``, ``np.random``, Keras' global seed and seed generator,
    torch's CPU (and CUDA) generators and TensorFlow's global seed with its
    operation-seed counter. ``active=False`` (an unseeded fit) does nothing:
    restoring would make two unseeded fits draw the same numbers.
    """
    if not active:
        yield
        return
    python_state = random.getstate()
    numpy_state = np.random.get_state()  # noqa: NPY002 (Keras draws from it)
    keras_state = _keras_state()
    torch_state = _torch_state()
    tf_was_imported = "tensorflow" in sys.modules
    tf_state = _tf_state(sys.modules.get("tensorflow"))
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)  # noqa: NPY002
        _set_keras_state(keras_state)
        _set_torch_state(torch_state)
        tf = sys.modules.get("tensorflow")
        if tf is not None:
            # imported inside the block: it had no seed before it existed
            _set_tf_state(tf, tf_state if tf_was_imported else (None, None))


def _global_state() -> Any:
    if "keras" not in sys.modules:
        return None
    try:  # no public getter for these two (keras 3.15)
        from keras.src.backend.common import global_state
    except ImportError:  # pragma: no cover - a Keras that moved it
        return None
    return global_state


def _keras_state() -> dict[str, Any] | None:
    state = _global_state()
    if state is None:
        return None
    return {name: state.get_global_attribute(name) for name in _KERAS_ATTRS}


def _set_keras_state(saved: dict[str, Any] | None) -> None:
    state = _global_state()
    if state is None:
        return
    for name in _KERAS_ATTRS:
        state.set_global_attribute(name, (saved or {}).get(name))


def _torch_state() -> tuple[Any, Any] | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return torch.random.get_rng_state(), cuda


def _set_torch_state(saved: tuple[Any, Any] | None) -> None:
    torch = sys.modules.get("torch")
    if torch is None or saved is None:
        return
    cpu, cuda = saved
    torch.random.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def _tf_state(tf: Any) -> tuple[Any, Any]:
    """TensorFlow's global seed and its operation-seed counter (eager)."""
    if tf is None:
        return None, None
    rng = getattr(_tf_context(tf), "_rng", None)
    counter = rng.getstate() if rng is not None else None  # get_seed draws one
    try:
        seed = tf.compat.v1.get_seed(None)[0]
    except RuntimeError:  # op determinism on and no seed: nothing to restore
        return None, None
    return seed, counter


def _set_tf_state(tf: Any, saved: tuple[Any, Any]) -> None:
    seed, counter = saved
    tf.random.set_seed(seed)  # resets the counter: put the saved one back
    rng = getattr(_tf_context(tf), "_rng", None)
    if rng is not None and counter is not None:
        rng.setstate(counter)


def _tf_context(tf: Any) -> Any:
    try:
        from tensorflow.python.eager import context
    except ImportError:  # pragma: no cover - a TensorFlow without it
        return None
    return context.context()

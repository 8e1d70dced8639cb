"""Lazy, quiet imports of the heavy dependencies.

``import hybridml`` must stay fast, so keras, keras_hub, tensorflow and xgboost
are imported on first use through the helpers here. TensorFlow prints start-up
chatter (oneDNN, CUDA-not-found, absl) straight to file descriptor 2 while it is
imported; ``TF_CPP_MIN_LOG_LEVEL`` does not silence all of it. We capture fd 2
around the import and re-emit every line that is not known chatter, so real
warnings and errors still reach the user.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType

# Lines TensorFlow / XLA / absl print at import on a CPU-only machine.
_CHATTER = re.compile(
    r"oneDNN custom operations|TF_ENABLE_ONEDNN_OPTS|cuda drivers|CUDA drivers"
    r"|Unable to register cu(DNN|FFT|BLAS)|cuInit|computation placer already"
    r"|absl::InitializeLog|WARNING: All log messages before absl"
    r"|This TensorFlow binary is optimized|rebuild TensorFlow with the appropriate"
    r"|AVX2 FMA|Could not find TensorRT|TF-TRT Warning|GPU will not be used"
    r"|cpu_feature_guard|port\.cc:\d+\] |E0000 00:00|W0000 00:00|I0000 00:00"
    r"|An NVIDIA GPU may be present|Falling back to cpu|Unable to initialize backend"
)

_EXTRAS = {
    "xgboost": "xgboost",
    "jax": "jax",
    "torch": "torch",
    "ray": "ray",
    "dask": "dask",
    "distributed": "dask",
    "safetensors": "minilm",
    "tokenizers": "minilm",
    "PIL": None,
}


@contextlib.contextmanager
def _filtered_stderr() -> Iterator[None]:
    """Capture fd 2; afterwards write back every line that is not chatter."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # pytest capture, notebooks
        fd = 2
    try:
        saved = os.dup(fd)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        sys.stderr.flush()
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            kept = [ln for ln in text.splitlines() if ln and not _CHATTER.search(ln)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


def quiet_import(name: str) -> ModuleType:
    """Import a heavy module once, filtering TensorFlow's start-up chatter."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    with _filtered_stderr():
        module = importlib.import_module(name)
        if name in {"keras", "keras_hub"} or name.startswith("tensorflow"):
            _silence_absl()
            tf = sys.modules.get("tensorflow")
            if tf is not None:
                # cuInit's "no CUDA" error is printed when devices are first
                # listed; do it here, inside the filter. Thread settings can
                # still change afterwards (no op has run).
                tf.config.list_physical_devices()
    return module


def quiet() -> None:
    """Hide TensorFlow's C++ start-up log, for scripts and notebooks.

    Call it before the first estimator is used (TensorFlow reads the setting
    when it is imported). Python warnings and exceptions are unaffected; a user
    who wants the C++ log sets ``TF_CPP_MIN_LOG_LEVEL=0`` first (this only sets
    a default). ``hybridml``'s own command line calls it.

    Examples
    --------
    With the variable unset, ``quiet()`` sets it to ``"3"``; a value the user
    set is kept:

    >>> import os
    >>> import hybridml
    >>> saved = os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
    >>> hybridml.quiet()
    >>> os.environ["TF_CPP_MIN_LOG_LEVEL"]
    '3'
    >>> os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    >>> hybridml.quiet()
    >>> os.environ["TF_CPP_MIN_LOG_LEVEL"]
    '0'
    >>> if saved is None:
    ...     del os.environ["TF_CPP_MIN_LOG_LEVEL"]
    ... else:
    ...     os.environ["TF_CPP_MIN_LOG_LEVEL"] = saved

    It only sets a default: TensorFlow may still print a few lines at import
    (a known gap, ``tests/test_package.py``); hybridml's own imports filter them.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


quiet_runtime = quiet  # the name the CLI used before quiet() was public


def _silence_absl() -> None:
    absl_logging = sys.modules.get("absl.logging")
    if absl_logging is not None:
        absl_logging.set_verbosity(absl_logging.ERROR)


def import_keras() -> ModuleType:
    """Return ``keras``, imported quietly on first use."""
    return quiet_import("keras")


def optional_import(name: str, *, extra: str | None = None) -> ModuleType:
    """Import an optional dependency or raise an ImportError naming the pip line."""
    try:
        return quiet_import(name)
    except ImportError as exc:
        top = name.split(".")[0]
        extra = extra or _EXTRAS.get(top)
        line = f'pip install "hybridml[{extra}]"' if extra else f"pip install {top}"
        raise ImportError(
            f"{top!r} is required for this feature but is not installed. "
            f"Install it with: {line}"
        ) from exc

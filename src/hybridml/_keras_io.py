"""Keras models as bytes: the one home of saving and loading ``.keras`` archives.

Nothing here imports keras unless a model is actually saved or loaded.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any


def is_keras_model(obj: Any) -> bool:
    """Tell whether ``obj`` is a ``keras.Model``, without importing keras."""
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(obj, keras.Model)


def model_to_bytes(model: Any) -> bytes:
    """The model saved as a ``.keras`` archive (architecture, weights, assets)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.read_bytes()


def model_from_bytes(
    data: bytes,
    *,
    custom_objects: dict[str, Any] | None = None,
    compile: bool = True,
    safe_mode: bool = True,
) -> Any:
    """Load a model from :func:`model_to_bytes` output."""
    from ._imports import import_keras

    keras = import_keras()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(data)
        return keras.saving.load_model(
            path, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode
        )

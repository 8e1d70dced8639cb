"""Keras models as bytes: the one home of saving and loading ``.keras`` archives.

Nothing here imports keras unless a model is actually saved or loaded.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import zipfile
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


def registered_objects(data: bytes) -> dict[str, Any]:
    """The user's registered classes and functions a ``.keras`` archive names.

    Keras finds them at load time by registered name (``"package>Name"``),
    which only works once their module has run its
    ``@keras.saving.register_keras_serializable()`` decorator. Kept beside a
    pickled model, pickle stores them by reference (importing their module on
    load) and they are handed to the loader as ``custom_objects``. Keras' and
    keras-hub's own objects are left out.
    """
    from ._imports import import_keras

    keras = import_keras()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        config = json.loads(archive.read("config.json"))
    found: dict[str, Any] = {}
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            name = node.get("registered_name")
            if isinstance(name, str) and name not in found:
                obj = keras.saving.get_registered_object(name)
                module = getattr(obj, "__module__", None) or ""
                if obj is not None and not module.startswith("keras"):
                    found[name] = obj
            stack.extend(node.values())
    return found

"""hybridml: pretrained Keras / keras-hub networks as scikit-learn estimators.

The public names are imported lazily: ``import hybridml`` loads neither keras,
keras_hub nor tensorflow, and the module that defines a name is imported the
first time the name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

# public name -> private module that defines it
_LAZY = {
    "KerasClassifier": "wrappers",
    "KerasRegressor": "wrappers",
    "KerasEmbeddingTransformer": "embedding",
    "EmbeddingCache": "cache",
    "make_embedding_pipeline": "stacking",
    "make_hybrid_stack": "stacking",
    "make_multimodal_transformer": "stacking",
    "run_baseline": "baseline",
}

__all__ = [*sorted(_LAZY), "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    # ruff: noqa: F401
    from .baseline import run_baseline
    from .cache import EmbeddingCache
    from .embedding import KerasEmbeddingTransformer
    from .stacking import (
        make_embedding_pipeline,
        make_hybrid_stack,
        make_multimodal_transformer,
    )
    from .wrappers import KerasClassifier, KerasRegressor


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hybridml' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

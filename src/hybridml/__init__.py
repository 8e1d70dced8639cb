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
    "KerasClassifier": "wrappers.classifier",
    "KerasRegressor": "wrappers.regressor",
    "KerasEmbeddingTransformer": "embed.transformer",
    "ContrastiveFineTuner": "embed.contrastive",
    "EmbeddingCache": "cache.store",
    "make_embedding_pipeline": "compose",
    "make_hybrid_stack": "compose",
    "make_multimodal_transformer": "compose",
    "run_baseline": "baseline.run",
    "forward_rows": "embed.transformer",
    "quiet": "_imports",
    "make_finetune_classifier": "finetune_models",
    "make_finetune_regressor": "finetune_models",
    "load_model": "baseline.saved",
    "save_model": "baseline.saved",
}

__all__ = [*sorted(_LAZY), "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    # ruff: noqa: F401
    from ._imports import quiet
    from .baseline.run import run_baseline
    from .baseline.saved import load_model, save_model
    from .cache.store import EmbeddingCache
    from .compose import (
        make_embedding_pipeline,
        make_hybrid_stack,
        make_multimodal_transformer,
    )
    from .embed.contrastive import ContrastiveFineTuner
    from .embed.transformer import KerasEmbeddingTransformer, forward_rows
    from .finetune_models import make_finetune_classifier, make_finetune_regressor
    from .wrappers.classifier import KerasClassifier
    from .wrappers.regressor import KerasRegressor


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hybridml' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

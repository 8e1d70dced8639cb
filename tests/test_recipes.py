"""Every recipe runs end to end in its fast mode (``HYBRIDML_FAST=1``).

Recipes are scripts for people; running them here keeps them from going stale.
They run once, under the TensorFlow backend, to keep CI short: the library code
they call is tested on all three backends by the other test files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.py"))


@pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
    reason="recipes run once, under the TensorFlow backend, to keep CI short",
)
@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_recipe_runs_in_fast_mode(recipe, tmp_path):
    env = {**os.environ, "HYBRIDML_FAST": "1", "HYBRIDML_CACHE_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, str(recipe)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, f"{recipe.name} failed:\n{out.stdout}\n{out.stderr}"
    assert out.stdout.strip(), f"{recipe.name} printed nothing"
    # TensorFlow's start-up chatter must not reach a recipe's user.
    for noise in ("oneDNN", "cuInit", "cuda drivers", "absl::InitializeLog"):
        assert noise not in out.stderr, f"{recipe.name} leaked {noise!r}: {out.stderr}"

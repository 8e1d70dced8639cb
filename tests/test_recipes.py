"""Every recipe runs end to end in its fast mode (``HYBRIDML_FAST=1``).

Recipes are scripts for people; running them here keeps them from going stale.
They run once, under the TensorFlow backend, to keep CI short: the library code
they call is tested on all three backends by the other test files.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.py"))


ACC = r"(0\.\d{3}|1\.000)"

# Lines each recipe must print in fast mode (a regular expression per line, matched
# against a whole line): the counts are fixed by the recipe, the scores only by form.
RECIPE_LINES = {
    "contrastive_fewshot": [
        r"8 labelled snippets, 40 held out",
        rf"frozen MiniLM \+ logreg +accuracy {ACC}",
        rf"tuned MiniLM \+ logreg +accuracy {ACC}",
        r"tuning: 1 steps, 28 pairs, loss \d+\.\d{3} -> \d+\.\d{3}",  # 8*7/2 pairs
    ],
    "contrastive_fewshot_images": [
        r"20 labelled images, 40 held out, 32x32",
        rf"frozen EfficientNet \+ logreg +accuracy {ACC}",
        rf"tuned EfficientNet \+ logreg +accuracy {ACC}",
        r"tuning: loss supcon, learning rate 0\.0002, augmented True, float32, "
        r"2 steps; loss \d+\.\d{3} -> \d+\.\d{3}",
    ],
    "distributed_ray_xgboost": [
        r"Embedded 200 rows \(384-d\) with 1 Ray worker\(s\) in .*",
        rf"XGBoost on all_minilm_l6_v2_en embeddings: test accuracy {ACC} "
        r"\(47 snippets of unseen movies\)",
    ],
    "finetune_end_to_end": [
        rf"text, 32 reviews per side: fine-tuned MiniLM {ACC}, "
        rf"frozen \+ logistic {ACC}",
        r"pickled and restored: same probabilities: True",
        rf"images, 30 per side at 32px: fine-tuned EfficientNet-Lite0 {ACC}, "
        rf"frozen \+ logistic {ACC}",
    ],
    "gridsearch_keras_classifier": [
        rf"keras MLP: best \{{.*\}}, CV roc_auc {ACC}",
        rf"logistic regression: best \{{'C': .*\}}, CV roc_auc {ACC}",
        r"keras MLP refit: \d+ of 2 epochs \(early stopping on the validation loss\)",
    ],
    "image_embeddings_fashion_mnist": [
        r"Fashion-MNIST subset: 100 images, 3-fold stratified CV, "
        r"backbone efficientnet_lite0",
        rf"efficientnet_lite0 \+ logreg +{ACC} \+- {ACC}",
        rf"raw pixels \+ rf +{ACC} \+- {ACC}",
        r"embeddings \+ heads took \d+ s; each image was embedded once "
        r"\(cache: 100 misses, \d+ hits\)",
    ],
    "stacking_text_tabular": [
        r"Rotten Tomatoes: 200 snippets, 3-fold stratified CV, all_minilm_l6_v2_en",
        rf"  hybrid stack +accuracy {ACC} \+/- {ACC}",
        r"\d+ s; 200 texts embedded for 200 distinct snippets "
        r"\(cache: \d+ hits, 200 misses\)",
    ],
    "text_baseline": [
        r"classification of 'label': 200 rows, 3-fold stratified CV grouped by "
        r"'movie', accuracy \(higher is better\), mean \+/- std over folds",
        r" +\d  chance +prior +.*",
        rf"best: .* \({ACC} accuracy\); report in text-baseline-report/",
    ],
    "text_embedding_svc": [
        r"\d+ train / \d+ test reviews \(grouped by film\)",
        rf"  minilm\+svc +accuracy {ACC}",
        rf"  tfidf\+linearsvc +accuracy {ACC}",
    ],
}


def test_every_recipe_with_expected_lines_exists():
    assert set(RECIPE_LINES) <= {r.stem for r in RECIPES}


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
    lines = out.stdout.splitlines()
    for pattern in RECIPE_LINES.get(recipe.stem, []):
        assert any(re.fullmatch(pattern, line) for line in lines), (
            f"{recipe.name} did not print a line matching {pattern!r}:\n{out.stdout}"
        )
    # TensorFlow's start-up chatter must not reach a recipe's user.
    for noise in ("oneDNN", "cuInit", "cuda drivers", "absl::InitializeLog"):
        assert noise not in out.stderr, f"{recipe.name} leaked {noise!r}: {out.stderr}"

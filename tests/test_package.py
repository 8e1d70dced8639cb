"""The package itself: fast, quiet import and a consistent public API."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import hybridml

HEAVY = ("keras", "keras_hub", "tensorflow", "jax", "torch", "xgboost", "fastapi",
         "uvicorn")  # fmt: skip


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )


def test_import_hybridml_loads_no_heavy_module():
    code = (
        "import sys, hybridml; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


PUBLIC_API = [
    "ContrastiveFineTuner",
    "EmbeddingCache",
    "KerasClassifier",
    "KerasEmbeddingTransformer",
    "KerasRegressor",
    "__version__",
    "forward_rows",
    "load_model",
    "make_embedding_pipeline",
    "make_finetune_classifier",
    "make_finetune_regressor",
    "make_hybrid_stack",
    "make_multimodal_transformer",
    "quiet",
    "run_baseline",
    "save_model",
]


def test_public_api_is_pinned():
    # a name added or removed here is a user-visible change: CHANGELOG it
    assert sorted(hybridml.__all__) == PUBLIC_API


def test_public_names_resolve_and_are_listed():
    for name in hybridml.__all__:
        obj = getattr(hybridml, name)  # the real object, under the listed name
        if callable(obj):
            assert obj.__name__ == name and obj.__module__.startswith("hybridml.")
        else:
            assert name == "__version__" and obj.split(".")[0].isdigit()
    assert set(hybridml.__all__) <= set(dir(hybridml))


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        hybridml.nope  # noqa: B018


def test_keras_import_filters_tensorflow_chatter_but_keeps_real_lines():
    code = (
        "import os\n"
        "from hybridml._imports import quiet_import, _filtered_stderr\n"
        "with _filtered_stderr():\n"
        "    os.write(2, b'I0000 00:00 port.cc:1] oneDNN custom operations on\\n')\n"
        "    os.write(2, b'a real problem\\n')\n"
        "quiet_import('keras')\n"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert "a real problem" in out.stderr
    assert "oneDNN" not in out.stderr
    assert "cuInit" not in out.stderr


def test_optional_import_names_the_pip_line():
    from hybridml._imports import optional_import

    with pytest.raises(ImportError, match=r'pip install "hybridml\[ray\]"'):
        optional_import("ray.this_module_does_not_exist", extra="ray")

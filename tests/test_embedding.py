"""KerasEmbeddingTransformer on tiny local presets: text, CNN and ViT images.

Forward passes are counted with ``(hybridml.forward_rows() - start)``.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from _embedding_helpers import FakeCache, make_numeric_model, numeric_model
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import parametrize_with_checks

import hybridml
from hybridml import KerasEmbeddingTransformer
from hybridml._imports import quiet_import
from hybridml.embed.backbones import get_embedder

TEXTS = [
    "the cat sat on the mat",
    "a good movie",
    "",
    "the cat sat on the mat",
    "i love this film , it was very very fun and not boring at all !",
    "terrible plot",
]


@pytest.fixture
def forward_rows(monkeypatch):
    start = hybridml.forward_rows()
    return lambda: hybridml.forward_rows() - start


@pytest.fixture(scope="module")
def text_embed(text_preset):
    return KerasEmbeddingTransformer(text_preset).fit(TEXTS)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 40, 48, 3), dtype=np.uint8)


# -- text -----------------------------------------------------------------------


def test_text_matches_keras_hub_text_embedder(text_embed, text_preset):
    keras_hub = quiet_import("keras_hub")
    reference = keras_hub.models.TextEmbedder.from_preset(str(text_preset))
    expected = np.asarray(reference.predict(TEXTS, verbose=0))
    Z = text_embed.transform(TEXTS)
    assert Z.dtype == np.float32 and Z.shape == (len(TEXTS), 8)
    np.testing.assert_allclose(Z, expected, atol=2e-6)
    assert text_embed.pooling_ == "mean" and text_embed.normalize_ is True
    assert text_embed.sequence_length_ == 32 and text_embed.modality_ == "text"


def test_batching_and_bucketing_do_not_change_vectors(text_preset, text_embed):
    small = KerasEmbeddingTransformer(text_preset, batch_size=1).fit(None)
    np.testing.assert_allclose(
        small.transform(TEXTS), text_embed.transform(TEXTS), atol=2e-6
    )


def test_every_planned_shape_gives_the_same_vectors(text_preset, text_embed):
    # embed/shapes.py may pad a batch's rows and tokens up to a compiled shape
    # or run it un-compiled (TF graph): none of it may change a vector.
    embedder = get_embedder(text_preset)
    tokens = embedder.tokenize(TEXTS, 32)
    natural = embedder.text_batch(tokens)
    ref = embedder.forward(natural, "mean", True)
    n, length = natural["token_ids"].shape
    for rows, longer, compiled in [
        (n, length, False),
        (n + 3, length + 8, True),
        (n + 3, length + 8, False),
    ]:
        got = embedder.forward(
            embedder.text_batch(tokens, longer),
            "mean",
            True,
            rows=rows,
            compiled=compiled,
        )
        np.testing.assert_allclose(got, ref, atol=2e-6)
    np.testing.assert_allclose(text_embed.transform(TEXTS), ref, atol=2e-6)


def test_batch_rows_per_backend(text_preset):
    # JAX compiles per shape: a partial batch is rounded up to a power of two;
    # torch runs each batch as it is; TF's plan may pad but never shrinks.
    backend = quiet_import("keras").backend.backend()
    plan = get_embedder(text_preset).plan([10] * 37, 32, "mean", True)
    rows = [b.rows for b in plan]
    assert [(b.start, b.stop) for b in plan] == [(0, 32), (32, 37)]
    if backend == "jax":
        assert rows == [32, 8]
    elif backend == "torch":
        assert rows == [32, 5]
    else:
        assert rows[0] == 32 and rows[1] >= 5


def test_padding_rounds_to_8_only_where_shapes_compile(text_preset):
    # JAX and TF's XLA compile per shape: lengths round up to 8. torch runs
    # eagerly and pays per token: batches pad to their longest row only.
    backend = quiet_import("keras").backend.backend()
    embedder = get_embedder(text_preset)
    rows = [np.arange(5), np.arange(11)]
    expected = 11 if backend == "torch" else 16
    assert embedder.padded_length(rows) == expected
    assert embedder.text_batch(rows)["token_ids"].shape == (2, expected)


@pytest.mark.parametrize("compiled", [True, False])
def test_a_graph_batch_pads_to_its_longest_row(text_preset, monkeypatch, compiled):
    # The plan's length binds a compiled batch (its shape is compiled); a batch
    # sent un-compiled (TF's graph) pays per token and pads to its longest row.
    from hybridml.embed.shapes import Batch

    embedder = get_embedder(text_preset)
    embed = KerasEmbeddingTransformer(text_preset).fit(None)
    longest = max(len(t) for t in embedder.tokenize(TEXTS, 32))
    n = len(set(TEXTS))
    monkeypatch.setattr(
        embedder, "plan", lambda *a: [Batch(0, n, n, longest + 8, compiled)]
    )
    widths = []
    real = embedder.forward
    monkeypatch.setattr(
        embedder,
        "forward",
        lambda inputs, *a, **k: (
            widths.append(inputs["token_ids"].shape[1]) or real(inputs, *a, **k)
        ),
    )
    Z = embed.transform(TEXTS)
    assert widths == [longest + 8 if compiled else longest]
    monkeypatch.undo()
    np.testing.assert_allclose(Z, embed.transform(TEXTS), atol=2e-6)


def test_torch_fused_attention_gives_the_same_vectors(text_preset, monkeypatch):
    keras = quiet_import("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("the eager fused-attention switch is torch's")
    from keras.src import ops as keras_ops

    from hybridml.embed import forward

    embedder = get_embedder(text_preset)
    words = "the cat sat on the mat a good movie terrible plot".split()
    long_text = " ".join(words[i % len(words)] for i in range(60))
    tokens = embedder.tokenize([long_text, "a good movie"], 56)
    batch = embedder.text_batch(tokens, 56)
    assert batch["token_ids"].shape[1] >= forward.TORCH_FUSED_FROM
    fused_calls = []
    real = keras_ops.dot_product_attention
    monkeypatch.setattr(
        keras_ops,
        "dot_product_attention",
        lambda *a, **k: fused_calls.append(1) or real(*a, **k),
    )
    plain = forward.compile_forward(embedder, "mean", True, fuse=False)
    fused = forward.compile_forward(embedder, "mean", True)
    a = keras.ops.convert_to_numpy(plain(batch))
    assert fused_calls == []
    b = keras.ops.convert_to_numpy(fused(batch))
    assert len(fused_calls) == 2  # both attention layers took the fused kernel
    np.testing.assert_allclose(a, b, atol=2e-6)
    rates = [
        layer._dropout
        for layer in embedder.model._flatten_layers()
        if isinstance(layer, keras.layers.MultiHeadAttention)
    ]
    assert rates and min(rates) > 0  # the model's dropout rates came back
    length = forward.TORCH_FUSED_FROM - 8
    fused(embedder.text_batch(embedder.tokenize([long_text], length), length))
    assert len(fused_calls) == 2  # short batches keep the plain path


def test_duplicates_are_embedded_once(text_embed, forward_rows):
    Z = text_embed.transform(TEXTS + TEXTS)
    assert forward_rows() == len(set(TEXTS))
    np.testing.assert_array_equal(Z[0], Z[3])
    np.testing.assert_array_equal(Z[: len(TEXTS)], Z[len(TEXTS) :])


@pytest.mark.parametrize(
    "wrap",
    [
        tuple,
        np.array,
        lambda t: np.array(t, dtype=object)[:, None],
        pd.Series,
        lambda t: pd.DataFrame({"review": t}),
    ],
    ids=["tuple", "str-array", "2d-column", "series", "frame"],
)
def test_text_containers_give_the_same_vectors(text_embed, wrap):
    np.testing.assert_array_equal(
        text_embed.transform(wrap(TEXTS)), text_embed.transform(list(TEXTS))
    )


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (["ok", None], ValueError, "item 1 is missing"),
        (pd.Series(["ok", "fine", np.nan]), ValueError, "item 2 is missing"),
        (["ok", 3], TypeError, "item 1 is a int"),
        ([], ValueError, "got 0 rows"),
        (np.ones((3, 2)), TypeError, "numeric array of shape"),
        (np.array([["a", "b"], ["c", "d"]]), ValueError, "Expected a 1-D array"),
        ("just one string", TypeError, "single string"),
        (pd.DataFrame({"a": ["x"], "b": ["y"]}), ValueError, "2 columns"),
        ({"a": 1}, TypeError, "got dict"),
    ],
)
def test_bad_text_input_is_reported_before_any_model_work(
    text_embed, forward_rows, bad, error, match
):
    with pytest.raises(error, match=match):
        text_embed.transform(bad)
    assert forward_rows() == 0


def test_pooling_and_normalize_options(text_preset, text_embed):
    mean = text_embed.transform(TEXTS)
    raw = KerasEmbeddingTransformer(text_preset, normalize=False).fit(None)
    Z = raw.transform(TEXTS)
    assert not np.allclose(np.linalg.norm(Z, axis=1), 1.0)
    np.testing.assert_allclose(Z / np.linalg.norm(Z, axis=1, keepdims=True), mean,
                               atol=1e-6)  # fmt: skip
    for pooling in ("cls", "max", "last"):
        other = KerasEmbeddingTransformer(text_preset, pooling=pooling).fit(None)
        assert other.pooling_ == pooling
        assert not np.allclose(other.transform(TEXTS), mean, atol=1e-3)
    # cls really is the first token's vector
    keras = quiet_import("keras")
    embedder = get_embedder(text_preset)
    batch = embedder.text_batch(embedder.tokenize(TEXTS[:1], 32))
    seq = keras.ops.convert_to_numpy(embedder.model(batch)["sequence_output"])
    cls = KerasEmbeddingTransformer(text_preset, pooling="cls", normalize=False)
    np.testing.assert_allclose(cls.fit(None).transform(TEXTS[:1])[0], seq[0, 0],
                               atol=1e-6)  # fmt: skip


def test_max_and_last_pooling_match_numpy_on_the_sequence_output(text_preset):
    """max: the largest value of each dimension over the row's real tokens;
    last: the row's last real token (right padding). Padding never counts."""
    keras = quiet_import("keras")
    embedder = get_embedder(text_preset)
    batch = embedder.text_batch(embedder.tokenize(TEXTS, 32))
    mask = batch["padding_mask"].astype(bool)
    assert len(set(mask.sum(axis=1))) > 2  # rows of several lengths: padding
    seq = keras.ops.convert_to_numpy(embedder.model(batch)["sequence_output"])
    expected_max = np.stack([seq[i][mask[i]].max(axis=0) for i in range(len(TEXTS))])
    expected_last = np.stack([seq[i, mask[i].sum() - 1] for i in range(len(TEXTS))])
    for pooling, expected in (("max", expected_max), ("last", expected_last)):
        Z = KerasEmbeddingTransformer(text_preset, pooling=pooling, normalize=False)
        np.testing.assert_allclose(
            Z.fit(None).transform(TEXTS), expected, atol=1e-5, err_msg=pooling
        )


def test_sequence_length_truncates(text_preset):
    short = KerasEmbeddingTransformer(text_preset, sequence_length=4).fit(None)
    # [CLS] the cat [SEP]: everything after "the cat" is cut
    Z = short.transform(["the cat sat on the mat", "the cat is bad"])
    np.testing.assert_allclose(Z[0], Z[1], atol=1e-6)
    assert short.sequence_length_ == 4


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"pooling": "median"}, ValueError, "pooling: got 'median'"),
        ({"pooling": "gap"}, ValueError, "pooling: got 'gap' for"),
        ({"normalize": "yes"}, ValueError, "normalize: got 'yes'"),
        ({"dtype": "int8"}, ValueError, "dtype: got 'int8'"),
        ({"batch_size": 0}, ValueError, "batch_size: got 0"),
        ({"batch_size": 2.5}, TypeError, "batch_size: got 2.5"),
        ({"sequence_length": 1000}, ValueError, "Expected at most 64"),
        ({"image_size": (0, 3)}, ValueError, "image_size: got"),
        ({"cache": object()}, TypeError, "cache: got object"),
    ],
)
def test_bad_parameters_raise_at_fit(text_preset, params, error, match):
    with pytest.raises(error, match=match):
        KerasEmbeddingTransformer(text_preset, **params).fit(TEXTS)


def test_feature_names_and_pandas_output(text_embed):
    names = text_embed.get_feature_names_out()
    assert list(names) == [f"embed{i}" for i in range(8)]
    embed = clone(text_embed).set_output(transform="pandas")
    frame = embed.fit_transform(pd.Series(TEXTS, index=range(10, 16)))
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(names) and list(frame.index) == list(
        range(10, 16)
    )


def test_transform_before_fit_raises(text_preset):
    with pytest.raises(NotFittedError):
        KerasEmbeddingTransformer(text_preset).transform(TEXTS)


def test_verbose_shows_a_progress_bar_with_rows_per_second(text_preset, capsys):
    KerasEmbeddingTransformer(text_preset, verbose=1, batch_size=2).fit_transform(TEXTS)
    err = capsys.readouterr().err
    assert "embedding" in err and "rows" in err and "5/5" in err


# -- registry, clone, pickle --------------------------------------------------------


def test_clones_share_one_loaded_model(text_embed, monkeypatch):
    import hybridml.embed.backbones as backbones

    loads = []
    real = backbones._load
    monkeypatch.setattr(backbones, "_load", lambda *a: loads.append(a) or real(*a))
    search = GridSearchCV(
        Pipeline([("embed", clone(text_embed)), ("clf", LogisticRegression())]),
        {"clf__C": [0.1, 1.0]},
        cv=2,
    )
    search.fit(TEXTS * 2, [0, 1, 0, 0, 1, 1] * 2)
    assert loads == []  # the module fixture loaded it; no clone reloads


def test_pickle_carries_parameters_not_weights(text_embed):
    blob = pickle.dumps(text_embed)
    assert len(blob) < 5_000
    restored = pickle.loads(blob)
    np.testing.assert_array_equal(
        restored.transform(TEXTS), text_embed.transform(TEXTS)
    )
    assert restored.fingerprint_ == text_embed.fingerprint_


def test_model_instance_is_kept_by_clone_and_pickled_with_keras_saving():
    model = numeric_model()
    embed = KerasEmbeddingTransformer(model).fit(np.ones((2, 3)))
    assert clone(embed).backbone is model
    X = np.random.default_rng(0).normal(size=(6, 3))
    restored = pickle.loads(pickle.dumps(embed))
    assert restored.backbone is not model
    np.testing.assert_allclose(restored.transform(X), embed.transform(X), atol=1e-6)
    # every copy unpickled in this process shares one restored model
    again = pickle.loads(pickle.dumps(embed))
    assert again.backbone is restored.backbone


def test_fit_does_not_change_a_model_parameter():
    keras = quiet_import("keras")
    model = numeric_model()
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.weights]
    config = model.get_config()
    X = np.random.default_rng(0).normal(size=(6, 3))
    KerasEmbeddingTransformer(model).fit(X).transform(X)
    assert model.get_config() == config
    for w, b in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), b)


def test_zero_argument_callable_backbone():
    embed = KerasEmbeddingTransformer(make_numeric_model).fit(np.ones((2, 5)))
    X = np.random.default_rng(0).normal(size=(4, 5))
    expected = make_numeric_model().predict(X, verbose=0)
    np.testing.assert_allclose(embed.transform(X), expected, atol=1e-6)
    assert embed.pooling_ == "none" and embed.modality_ == "numeric"
    assert pickle.loads(pickle.dumps(embed)).transform(X).shape == (4, 4)


def test_fingerprint_follows_weights_and_output_parameters(text_preset, text_embed):
    fp = text_embed.fingerprint_
    assert len(fp) == 64 and clone(text_embed).fit(None).fingerprint_ == fp
    for params in ({"pooling": "cls"}, {"normalize": False}, {"sequence_length": 16}):
        other = KerasEmbeddingTransformer(text_preset, **params).fit(None)
        assert other.fingerprint_ != fp, params
    a = KerasEmbeddingTransformer(numeric_model(seed=0)).fit(np.ones((1, 2)))
    b = KerasEmbeddingTransformer(numeric_model(seed=0)).fit(np.ones((1, 2)))
    c = KerasEmbeddingTransformer(numeric_model(seed=1)).fit(np.ones((1, 2)))
    assert a.fingerprint_ == b.fingerprint_ != c.fingerprint_


# -- sklearn composition ------------------------------------------------------------


def test_pipeline_column_transformer_and_feature_union(text_preset, text_embed):
    frame = pd.DataFrame({"text": TEXTS * 2, "x": np.arange(12.0)})
    y = np.array([0, 1, 0, 0, 1, 1] * 2)
    ct = ColumnTransformer(
        [("embed", clone(text_embed), "text"), ("num", StandardScaler(), ["x"])]
    )
    Z = ct.fit_transform(frame)
    assert Z.shape == (12, 9)
    assert ct.get_feature_names_out()[0] == "embed__embed0"
    union = FeatureUnion(
        [
            ("mean", clone(text_embed)),
            ("cls", KerasEmbeddingTransformer(text_preset, pooling="cls")),
        ]
    )
    assert union.fit_transform(TEXTS).shape == (6, 16)
    pipe = Pipeline([("ct", ct), ("clf", LogisticRegression())]).fit(frame, y)
    assert pipe.predict(frame).shape == (12,)


@pytest.mark.slow
def test_loky_workers(text_embed):
    pipe = Pipeline([("embed", clone(text_embed)), ("clf", LogisticRegression())])
    scores = cross_val_score(pipe, TEXTS * 2, [0, 1, 0, 0, 1, 1] * 2, cv=2, n_jobs=2)
    alone = cross_val_score(pipe, TEXTS * 2, [0, 1, 0, 0, 1, 1] * 2, cv=2, n_jobs=1)
    np.testing.assert_allclose(scores, alone)  # workers compute what one process does


# -- cache call pattern (a dict-backed fake; the real cache: test_cache.py) -------


def test_forward_rows_counts_the_distinct_rows_a_call_embeds(text_preset):
    """What forward_rows()'s doctest should show: the counter grows by the rows
    really embedded (duplicates once, padding rows never), and never decreases."""
    embed = KerasEmbeddingTransformer(text_preset, batch_size=4).fit(None)
    before = hybridml.forward_rows()
    embed.transform(["a good movie", "so boring", "a good movie"])
    assert hybridml.forward_rows() - before == 2  # a batch of 4 may be padded
    embed.transform(["so boring"] * 5)  # no cache: embedded again, once
    assert hybridml.forward_rows() - before == 3


def test_cache_gets_misses_and_puts_every_finished_batch(
    text_preset, forward_rows, monkeypatch
):
    cache = FakeCache()
    embed = KerasEmbeddingTransformer(text_preset, cache=cache, batch_size=2)
    embed.fit(None)
    embedder = get_embedder(text_preset)
    real, sizes = embedder.forward, []

    def counted(inputs, *args, **kw):
        sizes.append(len(inputs["token_ids"]))
        return real(inputs, *args, **kw)

    monkeypatch.setattr(embedder, "forward", counted)
    Z = embed.transform(TEXTS)
    ns = embed.fingerprint_
    puts = [c for c in cache.calls if c[0] == "put"]
    # each batch is put as soon as it is embedded (the plan may cut rows
    # where that saves padding: [2, 2, 1] or [1, 2, 2])
    assert [len(c[2]) for c in puts] == sizes
    assert sum(sizes) == 5 and max(sizes) <= 2  # 5 distinct rows, batch 2
    assert {c[1] for c in cache.calls} == {ns}
    assert forward_rows() == 5
    cache.calls.clear()
    np.testing.assert_array_equal(clone(embed).fit(None).transform(TEXTS), Z)
    assert forward_rows() == 5  # all hits: no new forward pass
    assert [c[0] for c in cache.calls] == ["get"]


def test_interrupted_run_keeps_finished_batches(text_preset, monkeypatch):
    cache = FakeCache()
    embed = KerasEmbeddingTransformer(text_preset, cache=cache, batch_size=2)
    embed.fit(None)
    embedder = get_embedder(text_preset)
    real, calls = embedder.forward, []

    def failing(inputs, *args, **kw):
        calls.append(len(inputs["token_ids"]))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(inputs, *args, **kw)

    monkeypatch.setattr(embedder, "forward", failing)
    with pytest.raises(KeyboardInterrupt):
        embed.transform(TEXTS)
    first = calls[0]
    assert len(cache.store) == first >= 1  # the first batch was written back
    monkeypatch.setattr(embedder, "forward", real)
    start = hybridml.forward_rows()
    embed.transform(TEXTS)
    assert (hybridml.forward_rows() - start) == 5 - first  # only the rest


# -- out of memory ------------------------------------------------------------------


class ResourceExhaustedError(Exception):
    """Named like TensorFlow's OOM error."""


def test_out_of_memory_halves_the_batch(text_preset, text_embed, monkeypatch):
    embed = KerasEmbeddingTransformer(text_preset, batch_size=8).fit(None)
    embedder = get_embedder(text_preset)
    real, sizes = embedder.forward, []

    def limited(inputs, *args, **kw):
        sizes.append(len(inputs["token_ids"]))
        if sizes[-1] > 2:
            raise ResourceExhaustedError("OOM when allocating tensor")
        return real(inputs, *args, **kw)

    monkeypatch.setattr(embedder, "forward", limited)
    with pytest.warns(RuntimeWarning, match="retrying with batch_size=2"):
        Z = embed.transform(TEXTS)
    assert sizes[0] == 5  # refused, then every row again in batches of 2
    assert max(sizes[1:]) <= 2 and sum(sizes[1:]) == 5
    np.testing.assert_allclose(Z, text_embed.transform(TEXTS), atol=2e-6)

    def always(inputs, *args, **kw):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(embedder, "forward", always)
    with pytest.warns(RuntimeWarning, match="retrying with batch_size=1"):
        with pytest.raises(RuntimeError, match="CUDA out of memory"):
            embed.transform(TEXTS)

    def broken(inputs, *args, **kw):
        raise ValueError("some other failure")

    monkeypatch.setattr(embedder, "forward", broken)
    with pytest.raises(ValueError, match="some other failure"):
        embed.transform(TEXTS)


# -- images ---------------------------------------------------------------------------


def _manual_cnn(cnn_preset, images):
    keras = quiet_import("keras")
    keras_hub = quiet_import("keras_hub")
    backbone = keras_hub.models.Backbone.from_preset(str(cnn_preset))
    converter = keras_hub.layers.ImageConverter.from_preset(str(cnn_preset))
    x = keras.ops.convert_to_numpy(converter(images))
    out = keras.ops.convert_to_numpy(backbone(x))
    return out.mean(axis=(1, 2))


def test_cnn_array_input_matches_converter_backbone_and_gap(cnn_preset, images):
    embed = KerasEmbeddingTransformer(cnn_preset).fit(images)
    Z = embed.transform(images)
    assert embed.modality_ == "image" and embed.pooling_ == "gap"
    assert embed.image_size_ == (32, 32) and embed.normalize_ is False
    np.testing.assert_allclose(Z, _manual_cnn(cnn_preset, images), atol=1e-4)


def test_ragged_grayscale_paths_and_pil_images(cnn_preset, images, tmp_path):
    from PIL import Image

    embed = KerasEmbeddingTransformer(cnn_preset, batch_size=2).fit(None)
    ragged = [images[0], images[1][:30, :20], images[2]]
    Z = embed.transform(ragged)
    one_by_one = np.vstack([embed.transform([im]) for im in ragged])
    np.testing.assert_allclose(Z, one_by_one, atol=1e-5)

    gray = images[:, :, :, 0]
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    np.testing.assert_allclose(embed.transform(gray), embed.transform(rgb), atol=1e-6)
    np.testing.assert_allclose(
        embed.transform([g[..., None] for g in gray]), embed.transform(rgb), atol=1e-6
    )

    paths = []
    for i, im in enumerate(images):
        paths.append(tmp_path / f"im{i}.png")
        Image.fromarray(im).save(paths[-1])
    expected = embed.transform(images)
    np.testing.assert_allclose(embed.transform(paths), expected, atol=1e-5)
    frame = pd.DataFrame({"path": [str(p) for p in paths]})
    np.testing.assert_allclose(embed.transform(frame), expected, atol=1e-5)
    pil = [Image.open(p) for p in paths]
    np.testing.assert_allclose(embed.transform(pil), expected, atol=1e-5)
    rgba = [np.dstack([im, np.full(im.shape[:2], 255, np.uint8)]) for im in images]
    np.testing.assert_allclose(embed.transform(rgba), expected, atol=1e-5)


def test_duplicate_images_are_embedded_once(cnn_preset, images, forward_rows):
    embed = KerasEmbeddingTransformer(cnn_preset).fit(None)
    Z = embed.transform(np.concatenate([images, images[:2]]))
    assert forward_rows() == 5
    np.testing.assert_array_equal(Z[5:], Z[:2])


def test_bad_image_input_names_the_item_or_file(cnn_preset, images, tmp_path):
    embed = KerasEmbeddingTransformer(cnn_preset).fit(None)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    cases = [
        ([str(tmp_path / "missing.png")], ValueError, "missing.png"),
        # a long path is shortened from the left: the file's name stays
        ([str(tmp_path / ("d" * 120) / "lost.png")], ValueError, "lost.png"),
        ([corrupt], ValueError, "corrupt.png"),
        (["a sentence, not a file"], ValueError, "not an existing file"),
        (np.ones((4, 10)), ValueError, "Expected \\(n_images, height, width"),
        (np.array(["x"])[None, :, None], TypeError, "dtype <U1"),
        ([images[0], None], ValueError, "item 1 is missing"),
        ([images[0], 3.0], TypeError, "item 1 is a float"),
        ([np.ones((4, 4, 5))], ValueError, "has 5 channels"),
        ([np.ones(4)], ValueError, "item 0 is an array of shape \\(4,\\)"),
        (np.ones((0, 4, 4, 3)), ValueError, "got 0 images"),
        ([], ValueError, "got 0 images"),
    ]
    for bad, error, match in cases:
        with pytest.raises(error, match=match):
            embed.transform(bad)


def test_truncated_image_is_named_at_decode(cnn_preset, images, tmp_path):
    from PIL import Image

    path = tmp_path / "cut.jpg"
    Image.fromarray(np.repeat(images[0], 4, axis=0)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    embed = KerasEmbeddingTransformer(cnn_preset).fit(None)
    with pytest.raises(ValueError, match=r"cut\.jpg"):
        embed.transform([path])


def test_vit_uses_the_cls_token(vit_preset, images):
    keras = quiet_import("keras")
    embed = KerasEmbeddingTransformer(vit_preset).fit(None)
    assert embed.pooling_ == "cls"
    embedder = get_embedder(vit_preset)
    x = embedder.image_batch(list(images), None)
    cls = keras.ops.convert_to_numpy(embedder.model(x))[:, 0]
    np.testing.assert_allclose(embed.transform(images), cls, atol=1e-5)
    mean = KerasEmbeddingTransformer(vit_preset, pooling="mean").fit(None)
    assert not np.allclose(mean.transform(images), cls, atol=1e-3)


def test_image_size_overrides_the_converter(cnn_preset, images):
    embed = KerasEmbeddingTransformer(cnn_preset, image_size=16).fit(None)
    assert embed.image_size_ == (16, 16)
    default = KerasEmbeddingTransformer(cnn_preset).fit(None)
    assert embed.fingerprint_ != default.fingerprint_
    assert not np.allclose(embed.transform(images), default.transform(images))


def test_text_to_an_image_backbone_and_images_to_a_text_one(
    cnn_preset, text_embed, images
):
    with pytest.raises(ValueError, match="not an existing file"):
        KerasEmbeddingTransformer(cnn_preset).fit(["a review of a film"])
    with pytest.raises(TypeError, match="numeric array"):
        text_embed.transform(images)


# -- numeric configuration: the common checks; text: the data-free ones --------------


def _expected_failures(estimator):
    return {
        "check_estimators_overwrite_params": (
            "joblib.hash pickles the keras.Model parameter, and a Keras pickle "
            "is a .keras archive stamped with the time it was saved (metadata "
            "date_saved, to the second), so any fit longer than a second changes "
            "the hash; config and weights do not change (see "
            "test_fit_does_not_change_a_model_parameter; a Task's preprocessor: "
            "test_inputs.py::test_a_task_passed_as_backbone_is_not_mutated)"
        )
    }


@parametrize_with_checks(
    [KerasEmbeddingTransformer(numeric_model())],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_common_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "check",
    [
        estimator_checks.check_estimator_cloneable,
        estimator_checks.check_estimator_repr,
        estimator_checks.check_no_attributes_set_in_init,
        estimator_checks.check_parameters_default_constructible,
        estimator_checks.check_get_params_invariance,
        estimator_checks.check_set_params,
        estimator_checks.check_do_not_raise_errors_in_init_or_set_params,
        estimator_checks.check_mixin_order,
        estimator_checks.check_estimator_tags_renamed,
    ],
)
def test_data_free_checks_on_the_text_configuration(text_preset, check):
    check("KerasEmbeddingTransformer", KerasEmbeddingTransformer(str(text_preset)))


def test_tags_follow_the_backbone(text_preset):
    text_tags = KerasEmbeddingTransformer(text_preset).__sklearn_tags__()
    assert text_tags.input_tags.string and not text_tags.input_tags.two_d_array
    num_tags = KerasEmbeddingTransformer(numeric_model()).__sklearn_tags__()
    assert num_tags.input_tags.two_d_array and not num_tags.input_tags.string


def test_numeric_backbone_needs_data(text_preset):
    with pytest.raises(ValueError, match="X: got None"):
        KerasEmbeddingTransformer(numeric_model()).fit(None)

"""hybridml.distributed: the same transformer on a Ray actor pool and on Dask workers.

One local Ray session (2 CPUs, 1 logical GPU, no dashboard) and one Dask
LocalCluster (2 spawned worker processes, 1 thread each) are shared by the tests
of this module. Every result is compared row for row with the single-process
``transform`` of the same transformer. The extras are installed by ``make test``:
the tests skip only where one is absent outside CI.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

import hybridml
from hybridml import EmbeddingCache, KerasEmbeddingTransformer
from hybridml.distributed import embed_dask, embed_ray_dataset

WORDS = "the a movie film plot actor story good bad great terrible fun boring".split()
N_ROWS = 256  # 8 blocks / 4 partitions of 32 / 64 rows: few shapes to compile
TOL = {"rtol": 1e-5, "atol": 1e-6}  # batch composition moves results by ~1e-7
OFFLINE = {"HF_HUB_OFFLINE": "1", "KAGGLEHUB_CACHE": "/nonexistent"}

# Ray Data warns about its own deprecated context fields whenever it copies one;
# JAX warns at any fork, and ray.init starts its processes by fork+exec (safe).
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
    pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning"),
]


def _require(name: str, extra: str):
    try:
        return pytest.importorskip(name)
    except pytest.skip.Exception:
        if os.environ.get("CI"):
            pytest.fail(
                f'{name} must be installed in CI: pip install "hybridml[{extra}]"'
            )
        raise


def _texts(n: int, seed: int = 0) -> list[str]:
    """Sentences of 1 to 12 words (so batches bucket to different lengths)."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(1, 13))) for _ in range(n)]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return _texts(N_ROWS)


@pytest.fixture(scope="module")
def expected(text_preset, texts) -> np.ndarray:
    """The single-process embeddings every distributed run must reproduce."""
    return KerasEmbeddingTransformer(str(text_preset)).fit_transform(texts)


# --------------------------------------------------------------------------
# Ray


@pytest.fixture(scope="module")
def ray_session():
    ray = _require("ray", "ray")
    _require("ray.data", "ray")

    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        num_cpus=2,
        num_gpus=1,  # logical: Ray sets CUDA_VISIBLE_DEVICES, the models stay on CPU
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=300 * 1024**2,
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def _ray_rows(ray, texts, blocks=8):
    items = [{"id": i, "text": t} for i, t in enumerate(texts)]
    return ray.data.from_items(items, override_num_blocks=blocks)


def test_ray_pool_matches_single_process_row_for_row(
    ray_session, text_preset, texts, expected, tmp_path, monkeypatch
):
    ray = ray_session
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    embed = KerasEmbeddingTransformer(str(text_preset), cache=cache)
    ds = _ray_rows(ray, texts)
    # Two workers share the one logical GPU: Ray reserves it and sets their
    # CUDA_VISIBLE_DEVICES; with no CUDA here the backends run on CPU. The
    # transformer is unfitted: each worker fits its copy (that only loads).
    out = embed_ray_dataset(
        ds, embed, column="text", num_workers=2, num_gpus_per_worker=0.5, batch_size=32
    )
    assert isinstance(out, ray.data.Dataset)
    # the order option lives on the result's own context only
    assert out.context.execution_options.preserve_order
    assert not ds.context.execution_options.preserve_order
    assert not ray.data.DataContext.get_current().execution_options.preserve_order
    rows = out.take_all()
    assert [r["id"] for r in rows] == list(range(N_ROWS))
    assert [r["text"] for r in rows] == texts
    Z = np.stack([r["embedding"] for r in rows])
    assert Z.dtype == np.float32 and Z.shape == expected.shape
    np.testing.assert_allclose(Z, expected, **TOL)
    # the workers wrote every distinct row to the transformer's cache, each once
    # (get_or_compute: no row embedded and written by both workers) ...
    stats = cache.stats()
    assert stats["rows"] == stats["written"] == len(set(texts)) < len(texts), stats
    # ... so this process embeds none of them again
    start = hybridml.forward_rows()
    np.testing.assert_allclose(embed.fit_transform(texts), expected, **TOL)
    assert (hybridml.forward_rows() - start) == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_workers": 2, "num_gpus_per_worker": 1}, r"2 GPUs in all.*at most the 1"),
        ({"num_workers": 1, "num_gpus_per_worker": 1.5}, r"at most the 1 GPUs"),
        ({"num_workers": 3}, r"3 CPUs in all.*at most the 2 CPUs"),
    ],
)
def test_ray_refuses_a_pool_the_cluster_cannot_place_at_once(
    ray_session, text_preset, texts, kwargs, match
):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=match):
        embed_ray_dataset(
            _ray_rows(ray_session, texts[:8], blocks=1),
            KerasEmbeddingTransformer(str(text_preset)),
            column="text",
            **kwargs,
        )
    assert time.perf_counter() - start < 10  # an error, not a hang


def test_ray_skips_the_resource_check_when_asked(ray_session, text_preset, texts):
    # On an autoscaling cluster the check is off; the dataset is still lazy.
    out = embed_ray_dataset(
        _ray_rows(ray_session, texts[:8], blocks=1),
        KerasEmbeddingTransformer(str(text_preset)),
        column="text",
        num_workers=2,
        num_gpus_per_worker=1,
        check_resources=False,
    )
    assert isinstance(out, ray_session.data.Dataset)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"column": "txt"}, ValueError, r"column: got 'txt'.*\['id', 'text'\]"),
        ({"column": 3}, TypeError, r"column: got 3"),
        ({"output_column": ""}, TypeError, r"output_column: got ''"),
        ({"num_workers": 0}, ValueError, r"num_workers: got 0"),
        ({"num_workers": 1.5}, TypeError, r"num_workers: got 1.5"),
        ({"batch_size": True}, TypeError, r"batch_size: got True"),
        ({"num_cpus_per_worker": 0}, ValueError, r"num_cpus_per_worker: got 0"),
        ({"num_gpus_per_worker": -1}, ValueError, r"num_gpus_per_worker: got -1"),
    ],
)
def test_ray_checks_arguments_before_launching(
    ray_session, text_preset, texts, kwargs, error, match
):
    args = {"column": "text", **kwargs}
    with pytest.raises(error, match=match):
        embed_ray_dataset(
            _ray_rows(ray_session, texts[:8], blocks=1),
            KerasEmbeddingTransformer(str(text_preset)),
            **args,
        )


def test_ray_rejects_what_it_cannot_run(ray_session, text_preset, texts):
    ds = _ray_rows(ray_session, texts[:8], blocks=1)
    with pytest.raises(TypeError, match=r"ds: got DataFrame. Expected a ray.data"):
        embed_ray_dataset(pd.DataFrame({"text": texts}), "x", column="text")
    context = ray_session.data.DataContext.get_current()  # from ray, not a Dataset
    with pytest.raises(TypeError, match=r"ds: got DataContext. Expected a ray.data"):
        embed_ray_dataset(context, KerasEmbeddingTransformer(), column="text")
    with pytest.raises(TypeError, match=r"transformer: got str"):
        embed_ray_dataset(ds, "all_minilm_l6_v2_en", column="text")
    with pytest.raises(ValueError, match=r"unfitted Pipeline.*Call fit first"):
        embed_ray_dataset(
            ds, make_pipeline(KerasEmbeddingTransformer(), PCA(2)), column="text"
        )
    with pytest.raises(TypeError, match=r"could not be pickled"):
        embed_ray_dataset(
            ds, KerasEmbeddingTransformer(lambda: str(text_preset)), column="text"
        )


def test_ray_worker_names_a_column_missing_from_its_batch():
    # A lazy dataset's columns are unknown until it runs: the worker checks.
    from types import SimpleNamespace

    from hybridml.distributed._ray import RayEmbedder as _RayEmbedder

    worker = SimpleNamespace(column="txt", output_column="embedding", fitted=True)
    with pytest.raises(ValueError, match=r"column: got 'txt'.*\['id', 'text'\]"):
        _RayEmbedder.__call__(worker, {"text": np.array(["a"]), "id": np.array([0])})


# --------------------------------------------------------------------------
# Dask


@pytest.fixture(scope="module")
def dask_client():
    _require("dask", "dask")
    distributed = _require("distributed", "dask")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env=OFFLINE,  # any download attempt in a worker would fail
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _worker_models():
    """On each Dask worker: the id of every loaded model (runs via client.run)."""
    import hybridml.embed.backbones as backbones

    return {str(k): id(e) for k, e in backbones._REGISTRY.items()}


def test_dask_series_matches_single_process_and_loads_once_per_worker(
    dask_client, text_preset, texts, expected
):
    import dask.dataframe as dd

    index = pd.RangeIndex(1000, 1000 + N_ROWS)
    series = dd.from_pandas(pd.Series(texts, index=index), npartitions=4)
    out = embed_dask(series, KerasEmbeddingTransformer(str(text_preset)))
    assert isinstance(out, dd.DataFrame)  # lazy
    assert list(out.columns) == [f"embed{i}" for i in range(expected.shape[1])]
    frame = out.compute()
    pd.testing.assert_index_equal(frame.index, index)
    assert (frame.dtypes == np.float32).all()
    np.testing.assert_allclose(frame.to_numpy(), expected, **TOL)
    loaded = dask_client.run(_worker_models)
    assert all(len(models) <= 1 for models in loaded.values())
    assert sum(len(models) for models in loaded.values()) >= 1
    # persistent workers keep the model between computations
    out.compute()
    assert dask_client.run(_worker_models) == loaded


def test_transformer_pickles_small_and_two_copies_share_one_model_in_a_worker(
    dask_client, text_preset, texts, expected
):
    embed = KerasEmbeddingTransformer(str(text_preset)).fit(texts)
    blob = pickle.dumps(embed)
    weights = (Path(text_preset) / "model.weights.h5").stat().st_size
    # parameters and fitted attributes, not weights
    assert len(blob) < 4096 and len(blob) * 10 < weights

    def probe(blob, rows):
        import pickle

        import hybridml.embed.backbones as backbones

        first, second = pickle.loads(blob), pickle.loads(blob)
        za, zb = first.transform(rows), second.transform(rows)
        same = backbones.get_embedder(first.backbone) is backbones.get_embedder(
            second.backbone
        )
        return os.getpid(), sorted(backbones._REGISTRY), same, za, zb

    pid, keys, same, za, zb = dask_client.submit(
        probe, blob, texts[:20], pure=False
    ).result()
    assert pid != os.getpid()
    # the model came from the local preset folder, loaded once for both copies
    assert (("preset", str(Path(text_preset).resolve())), "float32") in keys
    assert same
    np.testing.assert_allclose(za, expected[:20], **TOL)
    np.testing.assert_array_equal(za, zb)


def test_dask_array_of_texts_with_a_fitted_transformer(
    dask_client, text_preset, texts, expected
):
    import dask.array as da

    embed = KerasEmbeddingTransformer(str(text_preset)).fit(texts[:1])
    arr = da.from_array(np.array(texts, dtype=object), chunks=64)
    out = embed_dask(arr, embed)
    assert out.shape == expected.shape and out.dtype == np.float32
    np.testing.assert_allclose(out.compute(), expected, **TOL)


def test_dask_applies_a_fitted_pipeline_as_it_is(dask_client, text_preset, texts):
    import dask.array as da

    pipe = make_pipeline(
        KerasEmbeddingTransformer(str(text_preset)), PCA(3, random_state=0)
    ).fit(texts)
    out = embed_dask(da.from_array(np.array(texts, dtype=object), chunks=128), pipe)
    np.testing.assert_allclose(out.compute(), pipe.transform(texts), **TOL)


def test_dask_image_array_matches_single_process(dask_client, cnn_preset):
    import dask.array as da

    images = np.random.default_rng(0).integers(0, 256, (16, 40, 40, 3), np.uint8)
    embed = KerasEmbeddingTransformer(str(cnn_preset))
    want = embed.fit_transform(images)
    arr = da.from_array(images, chunks=(8, 20, 40, 3))  # split rows and height
    got = embed_dask(arr, embed).compute()
    np.testing.assert_allclose(got, want, **TOL)


def test_dask_one_column_dataframe_and_errors(dask_client, text_preset, texts):
    import dask.array as da
    import dask.dataframe as dd

    frame = dd.from_pandas(pd.DataFrame({"text": texts[:10], "y": 1}), npartitions=2)
    embed = KerasEmbeddingTransformer(str(text_preset))
    assert embed_dask(frame[["text"]], embed).compute().shape == (10, 8)
    with pytest.raises(ValueError, match=r"columns \['text', 'y'\].*data\['text'\]"):
        embed_dask(frame, embed)
    with pytest.raises(TypeError, match=r"data: got list. Expected a dask"):
        embed_dask(texts, embed)
    with pytest.raises(ValueError, match=r"0-d dask array"):
        embed_dask(da.from_array(np.array("one text", dtype=object)), embed)
    with pytest.raises(TypeError, match=r"data: got Scalar"):
        embed_dask(frame["y"].sum(), embed)


def test_joblib_dask_backend_runs_the_head_search_on_the_cluster(
    dask_client, expected, texts
):
    import joblib
    from distributed import get_task_stream

    y = np.array([("good" in t or "great" in t) for t in texts], dtype=int)
    grid = {"C": [0.1, 1.0, 10.0]}
    local = GridSearchCV(LogisticRegression(), grid, cv=3).fit(expected, y)
    with get_task_stream(dask_client) as stream, joblib.parallel_backend("dask"):
        remote = GridSearchCV(LogisticRegression(), grid, cv=3, n_jobs=-1)
        remote.fit(expected, y)
    assert stream.data  # the fits ran as tasks on the cluster
    np.testing.assert_allclose(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    assert remote.best_params_ == local.best_params_


# --------------------------------------------------------------------------
# Missing extras


def _fake(module: str):
    """An object whose type claims to come from ``module`` (no import needed)."""
    return type("Collection", (), {"__module__": module})()


@pytest.mark.parametrize(
    ("module", "embed"),
    [
        ("ray", lambda t: embed_ray_dataset(_fake("ray.data"), t, column="text")),
        ("dask", lambda t: embed_dask(_fake("dask.dataframe"), t)),
    ],
)
def test_a_missing_extra_names_the_pip_line(monkeypatch, module, embed):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(ImportError, match=rf'pip install "hybridml\[{module}\]"'):
        embed(KerasEmbeddingTransformer())


# --------------------------------------------------------------------------
# Shipping: the pickle is proven loadable on the driver, custom objects travel


def _numeric_data(n=6):
    import dask.array as da

    X = np.random.default_rng(0).normal(size=(n, 3)).astype("float32")
    return X, da.from_array(X, chunks=3)


class Doubler(keras.layers.Layer):  # a custom layer, not registered with keras
    def call(self, x):
        return x * 2


def _doubler_model():
    inputs = keras.Input((3,))
    return keras.Model(inputs, Doubler()(keras.layers.Dense(2)(inputs)))


class Unrebuildable(keras.layers.Layer):  # pickles, but cannot be loaded back
    def call(self, x):
        return x * 2

    @classmethod
    def from_config(cls, config):
        raise RuntimeError("this layer cannot be rebuilt")


def _unrebuildable_model():
    inputs = keras.Input((3,))
    return keras.Model(inputs, Unrebuildable()(inputs))


def test_a_lambda_model_ships_and_embeds_as_on_the_driver():
    # the transformer's pickle carries Lambda code (loaded outside safe mode)
    _require("dask", "dask")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    X, data = _numeric_data()
    embed = KerasEmbeddingTransformer(model).fit(X)
    out = embed_dask(data, embed).compute(scheduler="threads")
    np.testing.assert_allclose(out, X * 2, **TOL)


def test_a_pickle_that_cannot_come_back_fails_on_the_driver():
    _require("dask", "dask")
    _, data = _numeric_data()
    # the transformer's pickle proves its model loads back while pickling, so
    # the driver refuses it before anything is shipped
    with pytest.raises(TypeError, match=r"transformer: could not be pickled.*rebuilt"):
        embed_dask(data, KerasEmbeddingTransformer(_unrebuildable_model()))


def test_custom_objects_travel_to_the_workers():
    import hybridml.distributed._shipping as shipping
    import hybridml.embed.pickling as pickling

    _require("dask", "dask")
    X, data = _numeric_data()
    model = _doubler_model()
    embed = KerasEmbeddingTransformer(model).fit(X)
    Z = embed_dask(data, embed, custom_objects={"Doubler": Doubler})
    # forget what the driver's check loaded: the "worker" must load it anew
    pickling._RESTORED.clear()
    shipping._ESTIMATORS.clear()
    out = Z.compute(scheduler="threads")
    np.testing.assert_allclose(out, embed.transform(X), **TOL)
    with pytest.raises(TypeError, match=r"custom_objects: got \['Doubler'\]"):
        embed_dask(data, embed, custom_objects=["Doubler"])


def test_ray_also_checks_the_pickle_on_the_driver(ray_session):
    ds = ray_session.data.from_items([{"x": [0.0, 0.0, 0.0]}])
    with pytest.raises(TypeError, match=r"transformer: could not be pickled.*rebuilt"):
        embed_ray_dataset(
            ds, KerasEmbeddingTransformer(_unrebuildable_model()), column="x"
        )


def test_a_worker_loads_the_dtype_the_fit_resolved(text_preset, monkeypatch):
    """'auto' is decided once, on the driver: a worker loads what fit chose
    (never 'auto', which would measure again per worker and could differ)."""
    import hybridml.distributed._shipping as shipping

    loaded = []
    monkeypatch.setattr(
        shipping, "get_embedder", lambda spec, dtype: loaded.append(dtype)
    )
    fitted = KerasEmbeddingTransformer(text_preset).fit(None)
    fitted.dtype_ = "bfloat16"  # as fit records a choice of 'auto' on a bf16 chip
    shipping.warm_up(fitted)
    shipping.warm_up(KerasEmbeddingTransformer(text_preset))  # unfitted 'auto'
    shipping.warm_up(KerasEmbeddingTransformer(text_preset, dtype="float16"))
    assert loaded == ["bfloat16", None, "float16"]

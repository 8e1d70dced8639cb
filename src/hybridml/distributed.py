"""Embed on many processes: a Ray Data pool of workers, or Dask partitions.

hybridml does not schedule work itself. These entry points run the transformer a
user already has on an engine they already run:

- :func:`embed_ray_dataset` adds an embedding column to a ``ray.data.Dataset``
  with a pool of actors (``pip install "hybridml[ray]"``);
- :func:`embed_dask` embeds a dask Series, one-column DataFrame or array
  partition by partition (``pip install "hybridml[dask]"``).

The transformer travels as its parameters (a preset name or folder, pooling,
cache path, ...), never as weights: each worker process loads the backbone once
through hybridml's process-wide registry, and every worker on a machine shares
the transformer's ``EmbeddingCache`` file when one is set.

Both engines start their workers as fresh (spawned) processes. Never fork a
process after a Keras model has run in it: a forked child hangs on all three
Keras backends. Use ``spawn`` (``multiprocessing.get_context("spawn")``), Ray,
Dask's default nanny workers, or joblib's default ``loky`` backend.

The classical stage (a head fitted on the embeddings) needs no hybridml code to
run distributed: joblib sends scikit-learn's ``n_jobs`` work to a cluster.

- Dask: with a ``distributed.Client`` open,
  ``with joblib.parallel_backend("dask"): GridSearchCV(..., n_jobs=-1).fit(Z, y)``.
- Ray: ``from ray.util.joblib import register_ray; register_ray()``, then
  ``with joblib.parallel_backend("ray"): ...``.
- XGBoost heads train on Dask directly with ``xgboost.dask``.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import sys
import threading
import warnings
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._imports import optional_import, quiet_import
from ._validation import check_int
from .embed.backbones import get_embedder
from .embed.transformer import KerasEmbeddingTransformer

__all__ = ["embed_dask", "embed_ray_dataset"]

_ESTIMATORS: dict[str, Any] = {}  # unpickled estimators, by sha256 of their pickle
_ESTIMATORS_LOCK = threading.Lock()
_THREADS_CAPPED = False


def embed_ray_dataset(
    ds: Any,
    transformer: Any,
    *,
    column: str,
    output_column: str = "embedding",
    num_workers: int = 2,
    num_cpus_per_worker: float = 1,
    num_gpus_per_worker: float = 0,
    batch_size: int = 256,
    preserve_order: bool = True,
    check_resources: bool = True,
) -> Any:
    """Add an embedding column to a Ray Dataset with a pool of workers.

    Lazy: returns a new ``ray.data.Dataset``; nothing runs until it is consumed
    (``take``, ``iter_batches``, ``write_parquet``, ``materialize``, ...). Each
    worker is a Ray actor that unpickles ``transformer`` (its parameters, not its
    weights), loads the backbone once through hybridml's registry, caps its
    compute threads at its CPU share, and embeds batch after batch.

    Parameters
    ----------
    ds : ray.data.Dataset
        Rows to embed; its other columns are kept.
    transformer : KerasEmbeddingTransformer or fitted transformer
        What to embed with: the object used on one machine. An unfitted
        ``KerasEmbeddingTransformer`` is fitted in each worker (fitting only
        loads the backbone). Any other transformer (e.g. a pipeline of
        embedding and PCA) must be fitted, and is applied as it is.
    column : str
        The column holding texts, image paths or image arrays.
    output_column : str, default="embedding"
        The column to write the vectors to, as a float32 tensor column of shape
        ``(embedding_dim,)`` per row.
    num_workers : int, default=2
        Actors in the pool; each loads the backbone once.
    num_cpus_per_worker : float, default=1
        CPUs Ray reserves for each actor; also its TensorFlow / torch threads
        (rounded up).
    num_gpus_per_worker : float, default=0
        GPUs Ray reserves for each actor (a fraction shares one GPU; memory then
        grows on demand instead of being reserved in full).
    batch_size : int, default=256
        Rows handed to each ``transform`` call. The transformer's own
        ``batch_size`` still sets the rows per forward pass.
    preserve_order : bool, default=True
        Keep rows in their input order. Without it, Ray Data emits blocks as
        workers finish them (a little faster, rows shuffled by block).
    check_resources : bool, default=True
        Raise at once when the pool needs more CPUs or GPUs than the running
        Ray cluster has (Ray would otherwise wait for them forever). Turn it
        off on an autoscaling cluster, which adds nodes on demand.

    Returns
    -------
    ray.data.Dataset
        ``ds`` with ``output_column`` added, not yet executed.

    See Also
    --------
    embed_dask : The same for a dask Series or array.

    Notes
    -----
    Row order is kept by executing the returned dataset (and everything derived
    from it) with Ray Data's ``preserve_order`` option, set on a private copy of
    its ``DataContext``: ``ds`` and the global context are left unchanged. No id
    column or sort is needed.

    Without a running Ray, a local one is started (``ray.init()``) to read the
    cluster's resources. Workers inherit the driver's Keras backend (passed to them as
    ``KERAS_BACKEND`` in the actors' ``runtime_env``). They are spawned processes,
    never forks. A transformer's ``EmbeddingCache`` is shared by the workers of
    one machine (an SQLite file); on a multi-node cluster each node uses the file
    at that path on its own disk. A GPU worker sees only its GPU
    (``CUDA_VISIBLE_DEVICES``); without a usable GPU it runs on CPU.

    Examples
    --------
    Checks run before Ray starts anything:

    >>> from hybridml import KerasEmbeddingTransformer
    >>> from hybridml.distributed import embed_ray_dataset
    >>> embed_ray_dataset(["a", "b"], KerasEmbeddingTransformer(), column="text")
    Traceback (most recent call last):
    ...
    TypeError: ds: got list. Expected a ray.data.Dataset. ...

    With Ray running, and the offline all-MiniLM-L6-v2 installed::

        import ray
        ds = ray.data.read_csv("reviews.csv")
        out = embed_ray_dataset(ds, KerasEmbeddingTransformer(), column="text")
        out.write_parquet("embedded/")
    """
    check_int(num_workers, "num_workers")
    check_int(batch_size, "batch_size")
    _check_amount("num_cpus_per_worker", num_cpus_per_worker, positive=True)
    _check_amount("num_gpus_per_worker", num_gpus_per_worker, positive=False)
    for name, value in (("column", column), ("output_column", output_column)):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{name}: got {value!r}. Expected a column name (str).")
    if _module_of(ds) != "ray":
        raise TypeError(
            f"ds: got {type(ds).__name__}. Expected a ray.data.Dataset. Build one "
            "with ray.data.read_csv / read_parquet / from_pandas / from_items, or "
            "use embed_dask or transformer.transform for other inputs."
        )
    ray = optional_import("ray", extra="ray")
    ray_data = optional_import("ray.data", extra="ray")
    if not isinstance(ds, ray_data.Dataset):
        raise TypeError(
            f"ds: got {type(ds).__name__}. Expected a ray.data.Dataset. Build one "
            "with ray.data.read_csv / read_parquet / from_pandas / from_items."
        )
    columns = ds.columns(fetch_if_missing=False)
    if columns is not None and column not in columns:
        raise ValueError(
            f"column: got {column!r}. Expected one of the dataset's columns "
            f"{columns}. Pass the column holding the texts or images."
        )
    blob = _pickle_estimator(transformer)
    if check_resources:
        if not ray.is_initialized():
            with warnings.catch_warnings():
                # JAX warns at any fork; Ray's are fork+exec (subprocess): safe
                warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
                ray.init()
        _check_cluster(
            ray.cluster_resources(),
            num_workers,
            num_cpus_per_worker,
            num_gpus_per_worker,
        )
    env = _worker_env()
    out = ds.map_batches(
        _RayEmbedder,
        fn_constructor_kwargs={
            "blob": blob,
            "column": column,
            "output_column": output_column,
            "threads": math.ceil(num_cpus_per_worker),
            "share_gpu": 0 < num_gpus_per_worker < 1,
        },
        compute=ray_data.ActorPoolStrategy(size=num_workers),
        batch_size=batch_size,
        batch_format="numpy",
        num_cpus=num_cpus_per_worker,
        num_gpus=num_gpus_per_worker or None,
        runtime_env={"env_vars": env} if env else None,
    )
    if preserve_order:
        # A private context: ``ds``, its siblings and the global one unchanged.
        with warnings.catch_warnings():  # Ray's own deprecated context fields
            warnings.simplefilter("ignore", DeprecationWarning)
            out = ray_data.Dataset.copy(out, _deep_copy=True)
        out.context.execution_options.preserve_order = True
    return out


def embed_dask(data: Any, transformer: Any) -> Any:
    """Embed a dask Series, one-column DataFrame or array, partition by partition.

    Lazy: returns a dask collection with one row of ``embedding_dim`` float32
    values per input row, in order (a DataFrame with the input's index and
    columns ``embed0``... for a Series or DataFrame; an ``(n, dim)`` array for an
    array). Each Dask worker process unpickles the transformer once and loads the
    backbone once through hybridml's registry, and keeps it between partitions
    and between computations (the workers persist). The transformer is shipped
    to each worker once, as one shared graph key.

    Parameters
    ----------
    data : dask.dataframe.Series, dask.dataframe.DataFrame or dask.array.Array
        Texts or image paths (a Series, a one-column DataFrame, or a 1-D array),
        images as an ``(n, height, width, channels)`` array, or numeric rows as
        an ``(n, features)`` array. Arrays are split along rows only (other axes
        are rechunked whole).
    transformer : KerasEmbeddingTransformer or fitted transformer
        What to embed with. An unfitted ``KerasEmbeddingTransformer`` is fitted
        first, by one small task on the cluster, on the first row (fitting only
        loads the backbone and reads the output width). Any other transformer
        must be fitted.

    Returns
    -------
    dask.dataframe.DataFrame or dask.array.Array
        The embeddings, not yet computed.

    See Also
    --------
    embed_ray_dataset : The same for a Ray Dataset, with an actor pool.

    Notes
    -----
    Run it under a ``distributed.Client`` (e.g. ``LocalCluster(n_workers=2,
    threads_per_worker=1)``): its workers are spawned processes that persist, so
    the model is loaded once per worker. Under Dask's default threaded
    scheduler it runs in this process. TensorFlow and torch threads are capped
    at each worker's thread count.

    Examples
    --------
    A tiny numeric model stands in for a real backbone; the threaded scheduler
    runs it in this process:

    >>> import dask.array as da, keras, numpy as np
    >>> from hybridml import KerasEmbeddingTransformer
    >>> from hybridml.distributed import embed_dask
    >>> inputs = keras.Input((4,))
    >>> model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    >>> X = np.random.default_rng(0).normal(size=(10, 4)).astype("float32")
    >>> Z = embed_dask(da.from_array(X, chunks=5), KerasEmbeddingTransformer(model))
    >>> Z.shape, Z.dtype
    ((10, 3), dtype('float32'))
    >>> expected = KerasEmbeddingTransformer(model).fit_transform(X)
    >>> bool(np.allclose(Z.compute(), expected, atol=1e-6))
    True
    """
    module = _module_of(data)
    if module != "dask":
        raise TypeError(
            f"data: got {type(data).__name__}. Expected a dask Series, one-column "
            "DataFrame or array. Build one with dask.dataframe.from_pandas / "
            "read_csv or dask.array.from_array, or use embed_ray_dataset or "
            "transformer.transform for other inputs."
        )
    dask = optional_import("dask", extra="dask")
    # a dask collection's own module is loaded already; import nothing more
    dd, da = sys.modules.get("dask.dataframe"), sys.modules.get("dask.array")
    if dd is not None and isinstance(data, dd.DataFrame):
        if len(data.columns) != 1:
            raise ValueError(
                f"data: got a DataFrame with columns {list(data.columns)}. Expected "
                "one column of texts or images. Select it: data['text']."
            )
        data = data[data.columns[0]]
    is_series = dd is not None and isinstance(data, dd.Series)
    if not is_series and not (da is not None and isinstance(data, da.Array)):
        raise TypeError(
            f"data: got {type(data).__name__}. Expected a dask Series, one-column "
            "DataFrame or array."
        )
    if not is_series and data.ndim == 0:
        raise ValueError(
            f"data: got a 0-d dask array {data!r}. Expected one row per input "
            "along the first axis."
        )
    blob = _pickle_estimator(transformer)
    if isinstance(transformer, KerasEmbeddingTransformer) and not _is_fitted(
        transformer
    ):
        head = data.head(1, compute=False) if is_series else data[:1]
        fitted = dask.delayed(_fit_remote, pure=True)(blob, head).compute()
        blob = _pickle_estimator(fitted)
    else:
        fitted = transformer
    names = [str(n) for n in fitted.get_feature_names_out()]
    shared = dask.delayed(blob, pure=True)  # one graph key, sent once per worker
    token = hashlib.sha256(blob).hexdigest()[:16]
    if is_series:
        import pandas as pd

        meta = pd.DataFrame({n: np.array([], dtype=np.float32) for n in names})
        return data.map_partitions(
            _transform_partition,
            shared,
            names,
            meta=meta,
            token=f"embed-{token}",
        )
    if data.ndim > 1:
        data = data.rechunk({axis: -1 for axis in range(1, data.ndim)})
    return da.map_blocks(
        _transform_block,
        data,
        shared,
        dtype=np.float32,
        chunks=(data.chunks[0], (len(names),)),
        drop_axis=list(range(2, data.ndim)) or None,  # images: (n, h, w, c)
        new_axis=1 if data.ndim == 1 else None,  # texts, paths: (n,)
        name=f"embed-{token}",
        meta=np.empty((0, len(names)), dtype=np.float32),
    )


# --------------------------------------------------------------------------
# Checks (driver side, before anything is launched)


def _check_amount(name: str, value: Any, *, positive: bool) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    )
    if not ok or not math.isfinite(value) or value < 0 or (positive and value == 0):
        expected = "a positive number" if positive else "a number >= 0"
        raise ValueError(f"{name}: got {value!r}. Expected {expected}.")


def _check_cluster(
    resources: dict[str, float], workers: int, cpus: float, gpus: float
) -> None:
    """Refuse a pool the cluster cannot place: Ray would wait silently."""
    have_cpu = resources.get("CPU", 0.0)
    have_gpu = resources.get("GPU", 0.0)
    if gpus and workers * gpus > have_gpu + 1e-9:
        raise ValueError(
            f"num_gpus_per_worker: got {gpus!r} for {workers} workers "
            f"({workers * gpus:g} GPUs in all). Expected at most the {have_gpu:g} "
            "GPUs of this Ray cluster (ray.cluster_resources()). Pass "
            "num_gpus_per_worker=0 to embed on CPU, use fewer workers, or connect "
            "to a cluster with GPUs: ray.init(address=...). On an autoscaling "
            "cluster pass check_resources=False."
        )
    if workers * cpus > have_cpu + 1e-9:
        raise ValueError(
            f"num_workers: got {workers} workers of {cpus:g} CPUs "
            f"({workers * cpus:g} CPUs in all). Expected at most the {have_cpu:g} "
            "CPUs of this Ray cluster (ray.cluster_resources()). Use fewer "
            "workers or a smaller num_cpus_per_worker. On an autoscaling cluster "
            "pass check_resources=False."
        )


def _module_of(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def _is_fitted(estimator: Any) -> bool:
    try:
        check_is_fitted(estimator)
    except Exception:
        return False
    return True


def _pickle_estimator(estimator: Any) -> bytes:
    if not hasattr(estimator, "transform"):
        raise TypeError(
            f"transformer: got {type(estimator).__name__}. Expected a "
            "KerasEmbeddingTransformer or another fitted scikit-learn transformer."
        )
    if not isinstance(estimator, KerasEmbeddingTransformer) and not _is_fitted(
        estimator
    ):
        raise ValueError(
            f"transformer: got an unfitted {type(estimator).__name__}. Expected a "
            "KerasEmbeddingTransformer (fitted or not) or a fitted transformer: "
            "workers apply it as it is, they do not fit it. Call fit first."
        )
    try:
        return pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f"transformer: could not be pickled to send to workers ({exc}). "
            "Expected a picklable transformer. Pass the backbone as a preset name "
            "or folder, a keras.Model, or a module-level function."
        ) from exc


def _worker_env() -> dict[str, str]:
    """Return the Keras backend of this process, for workers to use the same."""
    keras = sys.modules.get("keras")
    backend = None
    if keras is not None and hasattr(keras, "backend"):
        backend = keras.backend.backend()
    backend = backend or os.environ.get("KERAS_BACKEND")
    return {"KERAS_BACKEND": backend} if backend else {}


# --------------------------------------------------------------------------
# Worker side


def _prepare_process(threads: int | None, *, share_gpu: bool = False) -> None:
    """Cap this worker's compute threads before its first op; once per process."""
    global _THREADS_CAPPED
    if share_gpu:  # several workers on one GPU: grow memory, do not reserve it
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if _THREADS_CAPPED or not threads:
        return
    _THREADS_CAPPED = True
    n = str(threads)
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(var, n)
    flags = os.environ.get("XLA_FLAGS", "")
    if threads == 1 and "jax" not in sys.modules and "multi_thread_eigen" not in flags:
        # XLA reads its CPU threading from the environment, before jax loads;
        # it can only be told "one thread", not a number.
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        ).strip()
    keras = quiet_import("keras")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        tf = sys.modules["tensorflow"]
        try:  # TensorFlow ignores OMP_NUM_THREADS; it refuses after its first op
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass
    elif backend == "torch":
        import torch

        torch.set_num_threads(threads)


def _estimator_from(blob: bytes) -> Any:
    """One unpickled estimator per process and pickle (so one loaded model)."""
    digest = hashlib.sha256(blob).hexdigest()
    with _ESTIMATORS_LOCK:
        estimator = _ESTIMATORS.get(digest)
        if estimator is None:
            estimator = _ESTIMATORS[digest] = pickle.loads(blob)
    return estimator


def _warm_up(estimator: Any) -> None:
    """Load the backbone now (once per process, through the registry)."""
    if isinstance(estimator, KerasEmbeddingTransformer):
        get_embedder(estimator.backbone, estimator.dtype)


def _dask_threads() -> int | None:
    distributed = sys.modules.get("distributed")  # loaded in every dask worker
    if distributed is None:
        return None  # dask's local schedulers: this process, threads left alone
    try:
        return distributed.get_worker().state.nthreads
    except (ValueError, AttributeError):
        return None  # not on a dask.distributed worker


def _fit_remote(blob: bytes, head: Any) -> Any:
    _prepare_process(_dask_threads())
    estimator = pickle.loads(blob)
    return estimator.fit(head)


def _worker_transform(blob: bytes, X: Any) -> np.ndarray:
    _prepare_process(_dask_threads())
    return np.asarray(_estimator_from(blob).transform(X), dtype=np.float32)


def _transform_partition(part: Any, blob: bytes, names: list[str]) -> Any:
    import pandas as pd

    if len(part) == 0:
        Z = np.empty((0, len(names)), dtype=np.float32)
    else:
        Z = _worker_transform(blob, part)
    return pd.DataFrame(Z, index=part.index, columns=names)


def _transform_block(block: np.ndarray, blob: bytes) -> np.ndarray:
    if len(block) == 0:
        dim = len(_estimator_from(blob).get_feature_names_out())
        return np.empty((0, dim), dtype=np.float32)
    return _worker_transform(blob, block)


class _RayEmbedder:
    """Ray Data actor: load once in ``__init__``, embed each batch in ``__call__``."""

    def __init__(
        self,
        blob: bytes,
        column: str,
        output_column: str,
        threads: int,
        share_gpu: bool,
    ) -> None:
        _prepare_process(threads, share_gpu=share_gpu)
        self.estimator = _estimator_from(blob)
        self.column = column
        self.output_column = output_column
        self.fitted = _is_fitted(self.estimator)
        _warm_up(self.estimator)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.column not in batch:
            raise ValueError(
                f"column: got {self.column!r}. Expected one of the dataset's "
                f"columns {sorted(batch)}. Pass the column holding the texts or "
                "images."
            )
        X = batch[self.column]
        if self.fitted:
            Z = self.estimator.transform(X)
        else:  # fitting only loads the backbone and reads the output width
            Z = self.estimator.fit_transform(X)
            self.fitted = True
        return {**batch, self.output_column: np.asarray(Z, dtype=np.float32)}

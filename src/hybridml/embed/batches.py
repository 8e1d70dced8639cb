"""The embedding loop's helpers: cache fill, out-of-memory detection, progress."""

from __future__ import annotations

import io

import numpy as np


def fill_from_cache(cache, namespace, keys, batches, out) -> None:
    """Fill ``out`` (one row per key) from ``cache``, embedding what is missing.

    ``batches(indices)`` yields ``(batch, vectors)`` pairs. An EmbeddingCache
    embeds each key once across processes (``get_or_compute``); any other object
    with ``get_many`` / ``put_many`` is read, then written batch by batch.
    """
    dim = out.shape[1]
    index = {k: j for j, k in enumerate(keys)}
    if hasattr(cache, "get_or_compute"):

        def compute(missing):
            for batch, vectors in batches([index[k] for k in missing]):
                yield [keys[j] for j in batch], vectors

        found = cache.get_or_compute(namespace, keys, compute, dim=dim)
    else:
        found = cache.get_many(namespace, keys)
        missing = [j for j, k in enumerate(keys) if k not in found]
        for batch, vectors in batches(missing):
            batch_keys = [keys[j] for j in batch]
            cache.put_many(namespace, batch_keys, vectors)
            found.update(zip(batch_keys, vectors, strict=True))
    for j, key in enumerate(keys):
        vector = np.asarray(found[key])
        if vector.shape != (dim,):
            raise ValueError(
                f"cache {getattr(cache, 'path', cache)!r}: got a vector of shape "
                f"{vector.shape} for a row. Expected ({dim},), the embedding "
                "dimension. Clear the cache's namespace or pass another cache."
            )
        out[j] = vector


_OOM_MARKERS = ("out of memory", "resource_exhausted", "resourceexhausted", "oom ")


def is_oom(exc: BaseException) -> bool:
    """Tell whether ``exc`` is an out-of-memory error (TF, JAX/XLA, torch, numpy)."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    if name in ("ResourceExhaustedError", "OutOfMemoryError"):
        return True
    text = f"{name} {exc}".lower()
    return any(marker in text for marker in _OOM_MARKERS)


def progress_bar(total: int, verbose: int):
    if not verbose:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="rows", desc="embedding", file=_stderr())


def _stderr() -> io.TextIOBase:
    import sys

    return sys.stderr

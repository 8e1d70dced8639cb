"""Worker processes for the EmbeddingCache tests (run with the "spawn" context).

Each worker "embeds" keys with a deterministic fake model, ``vector_of``, so the
tests can check every stored vector. Run as a script, it writes keys in batches
and prints one line after each committed batch (the interruption test kills it).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from hybridml import EmbeddingCache

DIM = 6


def vector_of(key: str) -> np.ndarray:
    """The fake embedding of a key: reproducible in any process."""
    return np.random.default_rng(int(key)).standard_normal(DIM).astype(np.float32)


def embed(keys: list[str]) -> np.ndarray:
    return np.stack([vector_of(k) for k in keys]) if keys else np.empty((0, DIM))


def _start_together(barrier) -> float:
    """Wait until every worker is ready (``barrier``: a Manager's Barrier), so
    that they really overlap; return the moment this one started."""
    barrier.wait(60)  # however slow the spawn
    return time.time()


def write_plain(path: str, keys: list[str], batch: int, barrier) -> tuple:
    """Write ``keys`` in batches with no lock: duplicates race, nothing breaks.

    Returns (start, end) of the writing, for the test to check the overlap.
    """
    cache = EmbeddingCache(path)
    len(cache)  # opened before the common start
    begin = _start_together(barrier)
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        cache.get_many("ns", chunk)
        time.sleep(0.005)
        cache.put_many("ns", chunk, embed(chunk))
    end = time.time()
    cache.close()
    return begin, end


def embed_once(path, keys: list[str], batch: int, barrier=None):
    """``get_or_compute`` with a slow fake model; return how many rows it embedded.

    With a ``barrier``, start with the other workers and return
    (rows embedded, start, end).
    """
    cache = EmbeddingCache.coerce(path)
    len(cache)  # opened before the common start
    begin = _start_together(barrier) if barrier is not None else time.time()
    embedded = []

    def compute(missing):
        for start in range(0, len(missing), batch):
            chunk = missing[start : start + batch]
            time.sleep(0.01)  # a slow model: widen the race window
            embedded.extend(chunk)
            yield chunk, embed(chunk)

    found = cache.get_or_compute("ns", keys, compute, dim=DIM)
    end = time.time()
    assert sorted(found) == sorted(set(keys))
    for key in keys:
        np.testing.assert_array_equal(found[key], vector_of(key))
    assert len(embedded) == len(set(embedded)) == cache.misses, (embedded, cache.misses)
    cache.close()
    if barrier is None:
        return len(embedded)
    return len(embedded), begin, end


def embed_timed(path: str, keys: list[str], delay: float, barrier) -> list:
    """``get_or_compute`` one key per batch; return each batch's (start, end)."""
    cache = EmbeddingCache(path)
    len(cache)  # opened before the common start
    _start_together(barrier)
    spans = []

    def compute(missing):
        for key in missing:
            begin = time.time()
            time.sleep(delay)  # a model that takes ``delay`` per row
            spans.append((begin, time.time()))
            yield [key], embed([key])

    cache.get_or_compute("ns", keys, compute, dim=DIM)
    cache.close()
    return spans


def main(path: str, n: int, batch: int, delay: float) -> None:
    """Resume-friendly run: embed what is missing among keys 0..n-1, in batches."""
    cache = EmbeddingCache(path)
    keys = [str(i) for i in range(n)]
    found = cache.get_many("ns", keys)
    missing = [k for k in keys if k not in found]
    print(f"missing {len(missing)}", flush=True)
    for start in range(0, len(missing), batch):
        chunk = missing[start : start + batch]
        vectors = embed(chunk)
        time.sleep(delay)
        cache.put_many("ns", chunk, vectors)
        print(f"committed {start + len(chunk)}", flush=True)


def claim_and_die(path: str, n: int, batch: int) -> None:
    """Claim keys 0..n-1, commit batches, print after each (the test kills it)."""
    cache = EmbeddingCache(path)
    keys = [str(i) for i in range(n)]

    def compute(missing):
        for start in range(0, len(missing), batch):
            chunk = missing[start : start + batch]
            yield chunk, embed(chunk)
            print(f"committed {start + len(chunk)}", flush=True)
            time.sleep(0.05)

    cache.get_or_compute("ns", keys, compute, dim=DIM)


def embed_texts(path: str, preset: str, n: int, batch: int, delay: float) -> None:
    """Embed ``n`` texts with the transformer, a slow backbone, and the cache."""
    from hybridml import KerasEmbeddingTransformer
    from hybridml.embed.backbones import Embedder

    forward = Embedder.forward

    def slow_forward(self, *args, **kwargs):
        time.sleep(delay)  # a big model on a small machine
        return forward(self, *args, **kwargs)

    Embedder.forward = slow_forward
    embed = KerasEmbeddingTransformer(preset, cache=path, batch_size=batch)
    embed.fit_transform(texts(n))


def texts(n: int) -> list[str]:
    """``n`` distinct short sentences in the tiny test vocabulary."""
    words = ["good", "bad", "movie", "plot", "fun", "story", "the", "a"]
    return [
        f"{words[i % 8]} {words[i // 8 % 8]} {words[i // 64 % 8]}" for i in range(n)
    ]


if __name__ == "__main__":
    if sys.argv[1] == "claims":
        claim_and_die(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "transformer":
        embed_texts(
            sys.argv[2], sys.argv[3], *map(int, sys.argv[4:6]), float(sys.argv[6])
        )
    else:
        main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))

"""EmbeddingCache.get_or_compute: compute-once across processes, without one lock.

Workers live in ``_cache_workers.py`` (spawned processes); each "embeds" with a
deterministic fake model, so every stored vector can be checked.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import _cache_workers as workers
import numpy as np
import pytest

from hybridml import EmbeddingCache

HERE = Path(__file__).parent


def _keys(n, start=0):
    return [str(i) for i in range(start, start + n)]


def _claims(path):
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT key, owner FROM claims").fetchall()


def _claim(path, keys, owner, expires):
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO claims VALUES ('ns', ?, ?, ?)",
            [(k, owner, expires) for k in keys],
        )


@pytest.fixture
def cache(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    assert len(cache) == 0  # opens (creates) the file
    yield cache
    cache.close()


def test_processes_with_disjoint_rows_compute_at_the_same_time(tmp_path):
    # The old protocol held one lock per namespace for the whole loop: the
    # second process started only after the first had finished.
    path = str(tmp_path / "shared.sqlite")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(2) as pool:
        barrier = manager.Barrier(2)
        args = [(path, _keys(8, start), 0.15, barrier) for start in (0, 100)]
        spans = pool.starmap(workers.embed_timed, args)
    (a0, a1), (b0, b1) = [(s[0][0], s[-1][1]) for s in spans]
    overlap = min(a1, b1) - max(a0, b0)
    assert overlap > 0.5 * min(a1 - a0, b1 - b0), spans
    cache = EmbeddingCache(path)
    assert len(cache) == 16 and cache.stats()["written"] == 16
    assert _claims(path) == []


def test_processes_with_the_same_rows_embed_each_row_once(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    ranges = [_keys(40), _keys(40), _keys(40, 20), _keys(40, 10)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(4) as pool:
        barrier = manager.Barrier(4)
        runs = pool.starmap(
            workers.embed_once, [(path, keys, 5, barrier) for keys in ranges]
        )
    embedded, begins, ends = zip(*runs, strict=True)
    assert max(begins) < min(ends), runs  # all four were computing at once
    distinct = len({k for keys in ranges for k in keys})
    cache = EmbeddingCache(path)
    assert sum(embedded) == distinct == len(cache) == cache.stats()["written"]
    assert cache.stats()["misses"] == distinct
    assert _claims(path) == []


def test_threads_wait_for_rows_another_thread_is_computing(cache):
    started, computed = threading.Event(), {"a": [], "b": []}

    def slow(name):
        def compute(missing):
            computed[name].extend(missing)
            started.set()
            time.sleep(0.3)
            return workers.embed(missing)

        return compute

    first = threading.Thread(
        target=cache.get_or_compute, args=("ns", _keys(10), slow("a"))
    )
    first.start()
    started.wait(5)
    found = cache.get_or_compute("ns", _keys(12), slow("b"))  # 10 of them claimed
    first.join()
    assert sorted(computed["a"]) == sorted(_keys(10))
    assert computed["b"] == ["10", "11"]  # it waited for the other ten
    for key in _keys(12):
        np.testing.assert_array_equal(found[key], workers.vector_of(key))


def test_claims_of_a_process_that_died_are_taken_over_at_once(cache):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner = f"{socket.gethostname()}:{dead.pid}:gone"
    _claim(cache.path, _keys(5), owner, time.time() + 3600)
    start = time.time()
    found = cache.get_or_compute("ns", _keys(5), workers.embed)
    assert time.time() - start < 2 and len(found) == 5 == cache.misses
    assert _claims(cache.path) == []


def test_claims_whose_lease_expired_are_taken_over(cache):
    owner = "another-machine:1:busy"  # alive as far as we can tell
    _claim(cache.path, ["1"], owner, time.time() + 0.5)
    start = time.time()
    found = cache.get_or_compute("ns", ["1", "2"], workers.embed)
    assert 0.4 < time.time() - start < 5
    np.testing.assert_array_equal(found["1"], workers.vector_of("1"))
    assert cache.misses == 2


def test_committing_a_batch_renews_the_lease_of_the_other_claims(cache):
    leases = []

    def compute(missing):
        for key in missing:
            time.sleep(0.05)
            yield [key], workers.embed([key])
            with sqlite3.connect(cache.path) as conn:
                leases.append(
                    conn.execute("SELECT MIN(expires) FROM claims").fetchone()
                )

    cache.get_or_compute("ns", _keys(3), compute, lease=60)
    renewed = [t for (t,) in leases if t is not None]
    assert len(renewed) == 2 and renewed[1] > renewed[0]


def test_an_interrupted_call_keeps_its_batches_and_releases_its_claims(cache):
    def interrupted(missing):
        yield missing[:4], workers.embed(missing[:4])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_compute("ns", _keys(10), interrupted)
    assert len(cache) == 4 and _claims(cache.path) == []
    calls = []
    cache.get_or_compute("ns", _keys(10), lambda m: calls.append(m) or workers.embed(m))
    assert calls == [_keys(6, 4)]  # only what was missing


def test_a_killed_claimant_leaves_its_batches_and_a_rerun_takes_over(tmp_path):
    path = str(tmp_path / "killed.sqlite")
    script = [sys.executable, str(HERE / "_cache_workers.py"), "claims", path]
    proc = subprocess.Popen([*script, "100", "10"], stdout=subprocess.PIPE, text=True)
    for _ in range(3):
        assert proc.stdout.readline().startswith("committed")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = len(EmbeddingCache(path))
    assert 30 <= kept < 100 and kept % 10 == 0
    assert len(_claims(path)) == 100 - kept  # the dead process's claims remain
    cache = EmbeddingCache(path)
    start = time.time()
    cache.get_or_compute("ns", _keys(100), workers.embed)
    assert time.time() - start < 5 and cache.misses == 100 - kept
    assert len(cache) == 100 and _claims(path) == []


def test_fn_must_return_one_vector_per_key(cache):
    with pytest.raises(ValueError, match=r"returned no vector for 1 of the 2 keys"):
        cache.get_or_compute(
            "ns", ["a", "b"], lambda m: iter([(m[:1], np.ones((1, 2)))])
        )
    with pytest.raises(ValueError, match=r"returned key 'z', which was not asked"):
        cache.get_or_compute("ns", ["c"], lambda m: iter([(["z"], np.ones((1, 2)))]))
    assert _claims(cache.path) == []


def test_bad_fn_and_lease_are_rejected(cache):
    with pytest.raises(TypeError, match=r"fn: got 3\. Expected a callable"):
        cache.get_or_compute("ns", ["a"], 3)
    with pytest.raises(ValueError, match=r"lease: got 0\. Expected a positive"):
        cache.get_or_compute("ns", ["a"], np.ones, lease=0)


def test_vectors_of_the_wrong_length_are_refused_naming_the_file(cache):
    cache.put_many("ns", ["a"], np.ones((1, 3)))
    with pytest.raises(
        ValueError, match=r"cache\.sqlite'.*length 3.*Expected length 4"
    ):
        cache.get_or_compute("ns", ["a"], workers.embed, dim=4)
    with pytest.raises(ValueError, match=r"cache\.sqlite'.*Expected length 4"):
        cache.get_many("ns", ["a"], dim=4)

"""EmbeddingCache on its own: storage, sharing, eviction, concurrency, resumption."""

from __future__ import annotations

import copy
import gc
import multiprocessing
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import _cache_workers as workers
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.preprocessing import FunctionTransformer

from hybridml import EmbeddingCache

HERE = Path(__file__).parent


def _keys(n, start=0):
    return [str(i) for i in range(start, start + n)]


def _integrity(path):
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.fixture
def cache(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    yield cache
    cache.close()


# -- storage ------------------------------------------------------------------------


def test_round_trip_returns_float32_vectors_of_the_hits_only(cache):
    keys = _keys(5)
    vectors = np.random.default_rng(0).standard_normal((5, 7))  # float64 in
    assert cache.put_many("m", keys, vectors) == 5
    found = cache.get_many("m", [*keys[:3], "absent"])
    assert sorted(found) == keys[:3]
    for i, key in enumerate(keys[:3]):
        assert found[key].dtype == np.float32 and found[key].shape == (7,)
        np.testing.assert_array_equal(found[key], vectors[i].astype(np.float32))
    found[keys[0]][:] = 0  # a writable copy: the cache is not changed
    assert cache.get_many("m", keys[:1])[keys[0]][0] == np.float32(vectors[0, 0])


def test_large_lookups_are_chunked_below_sqlite_variable_limit(cache):
    keys = _keys(2500)
    cache.put_many("m", keys, np.arange(2500, dtype=np.float32)[:, None])
    found = cache.get_many("m", keys)
    assert len(found) == 2500
    assert found["1234"][0] == 1234


def test_writing_the_same_rows_again_is_harmless_and_first_writer_wins(cache):
    keys = _keys(3)
    assert cache.put_many("m", keys, np.zeros((3, 2))) == 3
    assert cache.put_many("m", [*keys, "3"], np.ones((4, 2))) == 1
    assert cache.put_many("m", ["9", "9"], np.array([[5, 5], [6, 6]])) == 1
    assert len(cache) == 5
    found = cache.get_many("m", ["0", "3", "9"])
    assert found["0"].tolist() == [0, 0] and found["3"].tolist() == [1, 1]
    assert found["9"].tolist() == [5, 5]
    assert cache.stats()["written"] == 3 + 4 + 2  # every row offered


def test_namespaces_are_isolated_and_cleared_separately(cache):
    cache.put_many("a", ["k"], np.zeros((1, 3)))
    cache.put_many("b", ["k", "j"], np.ones((2, 4)))
    assert cache.get_many("a", ["k"])["k"].tolist() == [0, 0, 0]
    assert cache.get_many("b", ["k"])["k"].tolist() == [1, 1, 1, 1]
    assert cache.namespaces() == {"a": 1, "b": 2}
    assert cache.clear("b") == 2
    assert cache.namespaces() == {"a": 1}
    assert cache.clear() == 1
    assert len(cache) == 0 and cache.size_bytes == 0


def test_rows_persist_across_reopening_the_file(tmp_path):
    path = tmp_path / "sub" / "dir" / "cache.sqlite"  # folders are created
    first = EmbeddingCache(str(path))
    first.put_many("m", _keys(4), np.eye(4))
    first.close()
    second = EmbeddingCache(path)
    assert len(second) == 4
    np.testing.assert_array_equal(second.get_many("m", ["2"])["2"], np.eye(4)[2])
    assert second.stats()["written"] == 4


def test_temporary_cache_is_a_private_file_removed_with_the_cache():
    cache = EmbeddingCache()
    cache.put_many("m", ["k"], np.ones((1, 2)))
    path = cache.path
    assert cache.temporary and path.exists() and repr(cache) == "EmbeddingCache()"
    other = EmbeddingCache()
    assert other.path != path and len(other) == 0
    del cache
    gc.collect()
    assert not path.exists()
    assert not Path(str(path) + "-wal").exists()


# -- clone, copy, pickle ------------------------------------------------------------


def test_clone_and_deepcopy_share_the_store(cache):
    step = FunctionTransformer(np.asarray, kw_args={"cache": cache})
    cloned = clone(step)
    assert cloned.kw_args["cache"] is cache
    assert copy.deepcopy(cache) is cache and copy.copy(cache) is cache
    cache.get_many("m", ["x"])
    assert cloned.kw_args["cache"].misses == 1


def test_pickle_of_a_file_cache_reopens_the_same_file(cache):
    cache.put_many("m", ["k"], np.ones((1, 2)))
    again = pickle.loads(pickle.dumps(cache))
    assert again is not cache and again.path == cache.path
    assert sorted(again.get_many("m", ["k"])) == ["k"]
    assert repr(again) == f"EmbeddingCache({str(cache.path)!r})"
    # a worker unpickles every task's estimator: one handle per file and process
    assert pickle.loads(pickle.dumps(cache)) is again


def test_pickled_temporary_cache_is_shared_with_a_spawned_worker():
    cache = EmbeddingCache(max_size_bytes=10**6)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        done = pool.apply(workers.embed_once, (cache, _keys(20), 5))
    assert done == 20
    assert len(cache) == 20  # the parent sees the worker's rows
    again = pickle.loads(pickle.dumps(cache))
    assert again.path == cache.path and again.max_size_bytes == 10**6
    del again
    gc.collect()
    assert cache.path.exists()  # a handle never deletes its owner's file


def test_temporary_cache_unpickled_after_its_file_is_gone_starts_empty():
    cache = EmbeddingCache()
    cache.put_many("m", ["k"], np.ones((1, 2)))
    data, path = pickle.dumps(cache), cache.path
    del cache
    gc.collect()
    restored = pickle.loads(data)
    assert restored.path != path and len(restored) == 0


def test_coerce_accepts_paths_caches_and_none(tmp_path):
    path = tmp_path / "c.sqlite"
    first = EmbeddingCache.coerce(str(path))
    assert isinstance(first, EmbeddingCache) and first.path == path
    assert EmbeddingCache.coerce(path) is first  # one handle per path
    assert EmbeddingCache.coerce(first) is first
    assert EmbeddingCache.coerce(None) is None


# -- statistics, eviction -----------------------------------------------------------


def test_hits_misses_and_sizes(cache):
    cache.put_many("ns", _keys(4), np.zeros((4, 8)))
    cache.get_many("ns", ["0", "1", "0", "7"])  # duplicates are looked up once
    assert (cache.hits, cache.misses) == (2, 1)
    per_row = 8 * 4 + 1 + 2  # vector, key, namespace
    assert cache.size_bytes == 4 * per_row
    stats = cache.stats()
    assert stats["rows"] == 4 and stats["hits"] == 2 and stats["misses"] == 1
    assert cache.disk_bytes == stats["disk_bytes"] > cache.size_bytes


def test_eviction_removes_least_recently_used_rows(tmp_path):
    per_row = 4 * 4 + 1 + 1
    cache = EmbeddingCache(tmp_path / "c.sqlite", max_size_bytes=4 * per_row)
    cache.put_many("m", list("abcd"), np.ones((4, 4)))
    cache.get_many("m", ["a", "c"])  # a and c are now the most recently used
    cache.put_many("m", ["e", "f"], np.ones((2, 4)))
    assert sorted(cache.get_many("m", list("abcdef"))) == ["a", "c", "e", "f"]
    assert cache.size_bytes == 4 * per_row
    assert cache.stats()["evicted"] == 2


def test_eviction_returns_space_on_disk(tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite", max_size_bytes=200_000)
    rng = np.random.default_rng(0)
    for start in range(0, 2000, 200):
        cache.put_many("m", _keys(200, start), rng.standard_normal((200, 256)))
    assert cache.size_bytes <= 200_000 and len(cache) < 200
    cache.flush()
    with sqlite3.connect(cache.path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert cache.disk_bytes < 600_000  # 2 MB were written, most of it freed


def test_a_forked_or_reopened_process_gets_a_fresh_connection(cache, monkeypatch):
    cache.put_many("m", ["k"], np.ones((1, 2)))
    cache.get_many("m", ["k"])
    before = cache._store.conn
    monkeypatch.setattr(os, "getpid", lambda: -1)  # what a fork looks like
    assert sorted(cache.get_many("m", ["k"])) == ["k"]
    assert cache._store.conn is not before and cache.hits == 1  # counts restart


def test_threads_share_one_cache_safely(cache):
    errors = []

    def work(offset):
        try:
            for start in range(0, 200, 20):
                keys = _keys(20, offset + start)
                cache.get_many("t", keys)
                cache.put_many("t", keys, workers.embed(keys))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(o,)) for o in (0, 100, 200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(cache) == 400


# -- several processes --------------------------------------------------------------


def test_concurrent_writers_leave_the_cache_consistent_and_complete(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    ranges = [_keys(150, start) for start in (0, 50, 100, 25)]  # overlapping
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(4) as pool:
        barrier = manager.Barrier(4)
        args = [(path, keys, 7, barrier) for keys in ranges]
        spans = pool.starmap(workers.write_plain, args)
    begins, ends = zip(*spans, strict=True)
    assert max(begins) < min(ends), spans  # all four were writing at once
    union = sorted({k for keys in ranges for k in keys}, key=int)
    cache = EmbeddingCache(path)
    found = cache.get_many("ns", union)
    assert len(cache) == len(union) == len(found) == 250
    for key in union:
        np.testing.assert_array_equal(found[key], workers.vector_of(key))
    assert cache.stats()["written"] == 600  # no write was lost
    assert cache.size_bytes == sum(4 * workers.DIM + len(k) + 2 for k in union)
    assert _integrity(path) == "ok"


def test_get_or_compute_makes_concurrent_processes_embed_each_row_once(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    ranges = [_keys(60, start) for start in (0, 20, 40, 10)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(4) as pool:
        barrier = manager.Barrier(4)
        args = [(path, keys, 10, barrier) for keys in ranges]
        runs = pool.starmap(workers.embed_once, args)
    embedded, begins, ends = zip(*runs, strict=True)
    assert max(begins) < min(ends), runs  # all four were computing at once
    distinct = len({k for keys in ranges for k in keys})
    cache = EmbeddingCache(path)
    assert sum(embedded) == distinct == len(cache) == cache.stats()["written"]
    assert cache.stats()["misses"] == distinct  # the workers' counts, persisted
    assert _integrity(path) == "ok"


def test_a_killed_run_keeps_its_finished_batches_and_the_rerun_fills_the_rest(
    tmp_path,
):
    path = str(tmp_path / "resume.sqlite")
    script = [sys.executable, str(HERE / "_cache_workers.py"), path, "200", "20"]
    proc = subprocess.Popen(
        [*script, "0.05"], stdout=subprocess.PIPE, text=True, cwd=HERE
    )
    assert proc.stdout.readline().strip() == "missing 200"
    for _ in range(3):
        assert proc.stdout.readline().startswith("committed")
    proc.send_signal(signal.SIGKILL)  # no clean-up, no atexit: a hard crash
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert _integrity(path) == "ok"
    kept = len(EmbeddingCache(path))
    assert 60 <= kept < 200 and kept % 20 == 0  # whole batches only
    rerun = subprocess.run(
        [*script, "0"], capture_output=True, text=True, cwd=HERE, check=True
    )
    assert rerun.stdout.splitlines()[0] == f"missing {200 - kept}"
    cache = EmbeddingCache(path)
    assert len(cache) == 200 and cache.stats()["written"] == 200
    found = cache.get_many("ns", _keys(200))
    np.testing.assert_array_equal(found["199"], workers.vector_of("199"))


# -- errors -------------------------------------------------------------------------


def test_bad_path_type_is_rejected():
    with pytest.raises(TypeError, match=r"EmbeddingCache path: got 3\. Expected"):
        EmbeddingCache(3)


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-5, ValueError), (1.5, TypeError),
                         (True, TypeError)],
)  # fmt: skip
def test_bad_max_size_is_rejected(value, error):
    """The one integer rule (_validation.check_int): a type or a value error."""
    with pytest.raises(error, match=r"max_size_bytes .*: got .*Expected an integer"):
        EmbeddingCache(max_size_bytes=value)


def test_a_file_that_is_not_a_cache_is_rejected(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a database" * 100)
    with pytest.raises(ValueError, match=r"not a usable embedding cache") as e:
        len(EmbeddingCache(path))
    assert "delete" not in str(e.value).lower()  # not our file to delete
    assert path.read_text() == "hello, this is not a database" * 100


def test_vectors_must_be_one_row_per_key(cache):
    with pytest.raises(ValueError, match=r"vectors: got shape \(3,\)\. Expected a 2-D"):
        cache.put_many("m", ["a", "b", "c"], np.zeros(3))
    with pytest.raises(ValueError, match=r"got shape \(2, 4\).*\(3 keys\)"):
        cache.put_many("m", ["a", "b", "c"], np.zeros((2, 4)))
    assert len(cache) == 0  # checked before writing


def test_bad_namespace_and_keys_are_rejected(cache):
    with pytest.raises(TypeError, match=r"namespace: got ''\. Expected a non-empty"):
        cache.get_many("", ["a"])
    with pytest.raises(TypeError, match=r"keys: got 'abc'\. Expected a sequence"):
        cache.get_many("m", "abc")
    with pytest.raises(TypeError, match=r"keys\[1\]: got 7\. Expected str keys"):
        cache.put_many("m", ["a", 7], np.zeros((2, 2)))
    with pytest.raises(TypeError, match=r"namespace: got None"):
        cache.get_or_compute(None, ["a"], np.ones)
    with pytest.raises(TypeError, match=r"namespace: got 5"):
        cache.clear(5)


def test_coerce_rejects_other_types():
    with pytest.raises(TypeError, match=r"cache: got True\. Expected None, a file"):
        EmbeddingCache.coerce(True)


def test_an_interrupted_transform_keeps_finished_batches(
    text_preset, tmp_path, monkeypatch
):
    import hybridml
    from hybridml import KerasEmbeddingTransformer
    from hybridml.embed.backbones import Embedder

    texts = workers.texts(100)
    forward, calls = Embedder.forward, []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C during the 4th batch
        return forward(self, *args, **kwargs)

    cache = EmbeddingCache(tmp_path / "run.sqlite")
    embed = KerasEmbeddingTransformer(text_preset, cache=cache, batch_size=10)
    monkeypatch.setattr(Embedder, "forward", interrupted)
    with pytest.raises(KeyboardInterrupt):
        embed.fit_transform(texts)
    assert len(cache) == 30  # the three finished batches
    monkeypatch.setattr(Embedder, "forward", forward)
    start = hybridml.forward_rows()
    resumed = embed.fit_transform(texts)
    assert (hybridml.forward_rows() - start) == 70 and len(cache) == 100
    fresh = KerasEmbeddingTransformer(text_preset).fit_transform(texts)
    np.testing.assert_allclose(resumed, fresh, atol=1e-5)


@pytest.mark.slow  # a subprocess imports keras (~10-25 s)
def test_a_killed_embedding_run_resumes_from_the_cache(
    text_preset, tmp_path, monkeypatch
):
    import hybridml
    from hybridml import KerasEmbeddingTransformer

    path = tmp_path / "run.sqlite"
    script = [sys.executable, str(HERE / "_cache_workers.py"), "transformer"]
    args = [str(path), str(text_preset), "400", "8", "0.1"]
    proc = subprocess.Popen([*script, *args], cwd=HERE)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if path.exists() and len(EmbeddingCache(path)) >= 24:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)  # mid-run: at most 400/8 = 50 batches
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed"
    assert _integrity(path) == "ok"
    kept = len(EmbeddingCache(path))
    assert 24 <= kept < 400 and kept % 8 == 0  # whole batches only
    texts = workers.texts(400)
    start = hybridml.forward_rows()
    resumed = KerasEmbeddingTransformer(text_preset, cache=path).fit_transform(texts)
    assert (hybridml.forward_rows() - start) == 400 - kept  # only what was missing
    fresh = KerasEmbeddingTransformer(text_preset).fit_transform(texts)
    np.testing.assert_allclose(resumed, fresh, atol=1e-5)


# -- files that are not ours ----------------------------------------------------------


def _foreign_db(path, schema="CREATE TABLE notes (id INTEGER, body TEXT)"):
    with sqlite3.connect(path) as conn:
        conn.executescript(schema)
        conn.execute("INSERT INTO " + schema.split()[2] + " VALUES (1, 'x')")
    conn.close()
    return path.read_bytes()


def test_a_new_cache_file_is_stamped_as_ours(tmp_path):
    path = tmp_path / "new.sqlite"
    assert len(EmbeddingCache(path)) == 0
    with sqlite3.connect(path) as conn:
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    assert app_id == 0x686D6C63 and version == 2


def test_another_programs_database_is_refused_and_left_unchanged(tmp_path):
    path = tmp_path / "app.db"
    before = _foreign_db(path)
    with pytest.raises(
        ValueError, match=r"hybridml did not create.*tables: notes"
    ) as e:
        len(EmbeddingCache(path))
    assert "delete" not in str(e.value).lower()  # not our file to delete
    assert path.read_bytes() == before  # not switched to WAL, no table added
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_same_named_tables_of_another_schema_give_a_clear_error(tmp_path):
    path = tmp_path / "other.sqlite"
    before = _foreign_db(path, "CREATE TABLE embeddings (id INTEGER, body TEXT)")
    with pytest.raises(ValueError, match=r"did not create.*tables: embeddings"):
        EmbeddingCache(path).get_many("ns", ["a"])
    assert path.read_bytes() == before
    schema = (
        "CREATE TABLE embeddings (id INTEGER, body TEXT);"
        "CREATE TABLE counters (name TEXT, value INTEGER)"
    )
    (tmp_path / "two.sqlite").unlink(missing_ok=True)
    before = _foreign_db(tmp_path / "two.sqlite", schema)
    with pytest.raises(ValueError, match=r"table 'embeddings' has columns \['id'"):
        len(EmbeddingCache(tmp_path / "two.sqlite"))
    assert (tmp_path / "two.sqlite").read_bytes() == before


def test_a_cache_from_before_the_stamp_is_adopted_with_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # the schema of hybridml 0.x, unstamped
        conn.executescript(
            "CREATE TABLE embeddings (namespace TEXT NOT NULL, key TEXT NOT NULL, "
            "dim INTEGER NOT NULL, vector BLOB NOT NULL, nbytes INTEGER NOT NULL, "
            "atime REAL NOT NULL, PRIMARY KEY (namespace, key));"
            "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        )
        vector = np.ones(2, dtype="<f4").tobytes()
        conn.execute(
            "INSERT INTO embeddings VALUES ('ns', 'a', 2, ?, 11, 0)", (vector,)
        )
    conn.close()
    cache = EmbeddingCache(path)
    np.testing.assert_array_equal(cache.get_many("ns", ["a"])["a"], [1, 1])
    found = cache.get_or_compute("ns", ["a", "b"], lambda k: np.zeros((len(k), 2)))
    assert found["b"].tolist() == [0, 0] and found["a"].tolist() == [1, 1]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)


def test_a_cache_of_a_newer_format_is_refused(tmp_path):
    path = tmp_path / "future.sqlite"
    assert len(EmbeddingCache(path)) == 0
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"newer hybridml \(cache format 99\)"):
        len(EmbeddingCache(str(path), timeout=1.0))
    assert path.read_bytes() == before


def test_a_folder_as_path_holds_the_database(tmp_path):
    folder = tmp_path / "cachedir"
    folder.mkdir()
    cache = EmbeddingCache(folder)
    cache.put_many("ns", ["a"], np.ones((1, 2)))
    assert cache.path == folder / "hybridml-cache.sqlite" and cache.path.is_file()
    assert len(EmbeddingCache.coerce(str(folder))) == 1
    fresh = EmbeddingCache(str(tmp_path / "new") + "/")  # a folder yet to be made
    assert len(fresh) == 0 and fresh.path == tmp_path / "new" / "hybridml-cache.sqlite"


def test_a_path_that_cannot_be_created_gives_a_clear_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    with pytest.raises(ValueError, match=r"cannot be opened .*writable file path"):
        len(EmbeddingCache(blocker / "cache.sqlite"))
    assert blocker.read_text() == "a file, not a folder"


def test_the_cache_writes_no_sidecar_file_of_its_own(tmp_path):
    # Beside the database only SQLite's journal files (crash-safe by design)
    # may appear; the old "-lock" file is gone with the per-namespace lock.
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    cache.get_or_compute("ns", ["a", "b"], lambda keys: np.ones((len(keys), 2)))
    names = {p.name for p in tmp_path.iterdir()}
    assert names <= {"c.sqlite", "c.sqlite-wal", "c.sqlite-shm"}


def test_transform_refuses_cached_vectors_of_another_length(tmp_path):
    import keras
    from sklearn.base import clone as sk_clone

    from hybridml import KerasEmbeddingTransformer

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
    X = np.arange(6, dtype="float32").reshape(2, 3)
    path = tmp_path / "dims.sqlite"
    embed = KerasEmbeddingTransformer(model, cache=path)
    embed.fit_transform(X)
    with sqlite3.connect(path) as conn:  # as if another model wrote them
        conn.execute("UPDATE embeddings SET vector = substr(vector, 1, 8), dim = 2")
    conn.close()
    with pytest.raises(ValueError, match=r"dims\.sqlite'.*length 2.*Expected length 4"):
        sk_clone(embed).fit_transform(X)

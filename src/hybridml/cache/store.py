"""EmbeddingCache: embed each distinct row once, across folds, clones and processes.

The cache is an explicit object passed as a parameter (``cache=``), so
``clone()`` keeps it. Vectors live in an SQLite database in WAL mode: shared by
the loky workers of ``GridSearchCV(n_jobs=2)``, kept across restarts, safe under
concurrent writers, and every finished ``put_many`` is committed, so an
interrupted run resumes from what it wrote.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .sqlite import Store, bump, evict, sidecar

__all__ = ["EmbeddingCache"]

_CHUNK = 500  # keys per ``IN (...)``: far below SQLite's variable limit (999+)
_FLUSH_EVERY = 20_000  # buffered access times written after this many hits
_DTYPE = np.dtype("<f4")  # little-endian float32 on disk, whatever the machine
_HANDLES: dict[tuple, EmbeddingCache] = {}  # one handle per file and process


class EmbeddingCache:
    """Persistent store of embedding vectors keyed by namespace and row key.

    Pass one to ``KerasEmbeddingTransformer(cache=...)``: each distinct row is
    then embedded once, whatever the number of folds, candidates, base models
    or worker processes. The transformer chooses the namespace (a fingerprint
    of the backbone and every parameter that changes its output) and the keys
    (a hash of each row's content); the cache stores what it is given.

    Parameters
    ----------
    path : str or os.PathLike, default=None
        SQLite file to use (created with its folder if missing). ``None`` makes a
        temporary cache: a private file in the system temp folder, deleted when
        the cache is garbage-collected or the process exits. Worker processes
        that receive it (pickled) share that file, so ``n_jobs=2`` still embeds
        each row once.
    max_size_bytes : int, default=None
        Bound on the stored data (vectors and keys, see ``size_bytes``). Writes
        that pass it evict the least recently used rows. ``None``: no bound.
    timeout : float, default=60.0
        Seconds a writer waits for another process's write to finish.

    Attributes
    ----------
    hits : int
        Keys this process found, counted by ``get_many``; shared by clones.
    misses : int
        Keys this process did not find (so had to embed).

    See Also
    --------
    hybridml.KerasEmbeddingTransformer : Takes the cache as its ``cache=``.

    Notes
    -----
    ``copy.deepcopy`` (and so ``sklearn.base.clone``) returns the cache itself,
    so every clone of a pipeline shares one store. Pickling carries the path, not
    the rows: a worker process opens the same file. A temporary cache unpickled
    after its file is gone (another machine, a later session) starts empty.

    Connections are opened lazily, one per process, reopened after a fork, and
    shared by threads behind a lock. Rows are evicted least recently used first;
    access times are buffered in memory and written with the next write, so a
    lookup is a pure read. ``stats()`` returns the totals of all processes,
    ``hits`` and ``misses`` those of this process.

    Examples
    --------
    >>> import numpy as np
    >>> from hybridml import EmbeddingCache
    >>> cache = EmbeddingCache()
    >>> cache.put_many("model-a", ["k1", "k2"], np.eye(2, dtype="float32"))
    2
    >>> sorted(cache.get_many("model-a", ["k1", "k3"]))
    ['k1']
    >>> cache.hits, cache.misses, len(cache)
    (1, 1, 2)
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        max_size_bytes: int | None = None,
        timeout: float = 60.0,
    ) -> None:
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise TypeError(
                f"EmbeddingCache path: got {path!r}. Expected a file path (str or "
                "pathlib.Path) or None. Pass the SQLite file to use, or None for "
                "a temporary cache."
            )
        if max_size_bytes is not None and (
            isinstance(max_size_bytes, bool)
            or not isinstance(max_size_bytes, (int, np.integer))
            or max_size_bytes <= 0
        ):
            raise ValueError(
                f"max_size_bytes: got {max_size_bytes!r}. Expected a positive "
                "integer number of bytes or None. Pass e.g. 2 * 1024**3 for 2 GiB."
            )
        self.temporary = path is None
        if path is None:
            fd, name = tempfile.mkstemp(prefix="hybridml-cache-", suffix=".sqlite")
            os.close(fd)
            path = name
        self.path = Path(path).expanduser().absolute()
        self.max_size_bytes = None if max_size_bytes is None else int(max_size_bytes)
        self.timeout = float(timeout)
        self._store = Store(self.path, self.timeout)
        owned = (self.path,) if self.temporary else ()
        self._finalizer = weakref.finalize(self, _close_and_remove, self._store, owned)

    @classmethod
    def coerce(cls, cache: Any) -> EmbeddingCache | None:
        """Turn a ``cache=`` parameter into a cache: None, a path or a cache.

        Parameters
        ----------
        cache : None, str, os.PathLike or EmbeddingCache
            What the user passed. A path gives the same ``EmbeddingCache`` for
            every call in this process.

        Returns
        -------
        EmbeddingCache or None
            ``None`` when ``cache`` is None (no caching).

        Examples
        --------
        >>> from hybridml import EmbeddingCache
        >>> cache = EmbeddingCache()
        >>> EmbeddingCache.coerce(cache) is cache, EmbeddingCache.coerce(None)
        (True, None)
        """
        if cache is None or isinstance(cache, EmbeddingCache):
            return cache
        if isinstance(cache, (str, os.PathLike)):
            return _handle(str(Path(cache).expanduser().absolute()))
        raise TypeError(
            f"cache: got {cache!r}. Expected None, a file path (str or "
            "pathlib.Path) or a hybridml.EmbeddingCache. Pass e.g. "
            "cache='embeddings.sqlite' or cache=EmbeddingCache()."
        )

    # -- lookups and writes -------------------------------------------------------

    def get_many(self, namespace: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Return the cached vectors of ``keys`` that are present.

        Parameters
        ----------
        namespace : str
            The backbone fingerprint the keys belong to.
        keys : sequence of str
            Row keys to look up (duplicates are looked up once).

        Returns
        -------
        dict of str to ndarray
            ``{key: float32 1-D vector}`` for the hits only. Inside ``lock()``, a
            lookup re-checks earlier misses: keys found there turn a counted miss
            into a hit, and keys still missing are not counted again.
        """
        distinct = _check_keys(namespace, keys)
        store = self._store
        with store.mutex:
            conn = store.connect()
            found: dict[str, np.ndarray] = {}
            for start in range(0, len(distinct), _CHUNK):
                chunk = distinct[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    "SELECT key, vector FROM embeddings "
                    f"WHERE namespace = ? AND key IN ({marks})",
                    (namespace, *chunk),
                )
                for key, blob in rows:
                    found[key] = np.frombuffer(blob, dtype=_DTYPE).astype(np.float32)
            now = time.time()
            store.pending.update(((namespace, key), now) for key in found)
            if (threading.get_ident(), namespace) in store.rechecking:
                store.hits += len(found)
                store.misses -= len(found)
            else:
                store.hits += len(found)
                store.misses += len(distinct) - len(found)
            if len(store.pending) >= _FLUSH_EVERY:
                self._write(lambda conn: None)
        return found

    def put_many(self, namespace: str, keys: Sequence[str], vectors: np.ndarray) -> int:
        """Store one vector per key, in one committed transaction.

        Parameters
        ----------
        namespace : str
            The backbone fingerprint the keys belong to.
        keys : sequence of str
            Row keys, one per row of ``vectors``.
        vectors : array-like of shape (n_keys, dim)
            The embeddings, stored as float32.

        Returns
        -------
        int
            Rows added; keys already present are kept as they are (the first
            writer wins), so writing the same rows twice is harmless.
        """
        keys = list(keys)
        _check_keys(namespace, keys)
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[0] != len(keys):
            raise ValueError(
                f"vectors: got shape {vectors.shape}. Expected a 2-D array with one "
                f"row per key ({len(keys)} keys). Pass vectors of shape "
                "(len(keys), dim)."
            )
        vectors = np.ascontiguousarray(vectors, dtype=_DTYPE)
        dim = vectors.shape[1]
        ns_bytes = len(namespace.encode())
        now = time.time()
        rows, seen = [], set()
        for key, row in zip(keys, vectors, strict=True):
            if key not in seen:
                seen.add(key)
                blob = row.tobytes()
                nbytes = len(blob) + len(key.encode()) + ns_bytes
                rows.append((namespace, key, dim, blob, nbytes, now))

        def insert(conn: sqlite3.Connection) -> int:
            present = set()
            for start in range(0, len(rows), _CHUNK):
                chunk = [r[1] for r in rows[start : start + _CHUNK]]
                marks = ",".join("?" * len(chunk))
                present.update(
                    k
                    for (k,) in conn.execute(
                        "SELECT key FROM embeddings "
                        f"WHERE namespace = ? AND key IN ({marks})",
                        (namespace, *chunk),
                    )
                )
            new = [r for r in rows if r[1] not in present]
            conn.executemany(
                "INSERT INTO embeddings (namespace, key, dim, vector, nbytes, atime) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                new,
            )
            bump(conn, bytes=sum(r[4] for r in new), written=len(keys))
            if self.max_size_bytes is not None:
                evict(conn, self.max_size_bytes)
            return len(new)

        return self._write(insert)

    @contextlib.contextmanager
    def lock(self, namespace: str) -> Iterator[EmbeddingCache]:
        """Hold an exclusive lock on ``namespace`` across processes and threads.

        The compute-once protocol: look up, then under the lock look up the
        misses again (another process may have written them while this one
        waited), embed what is still missing and ``put_many`` it, batch by
        batch. Two processes never embed the same rows at the same time. The
        operating system releases the lock if the holder dies.

        Parameters
        ----------
        namespace : str
            The namespace to lock; other namespaces stay free.

        Yields
        ------
        EmbeddingCache
            This cache.

        Examples
        --------
        >>> import numpy as np
        >>> from hybridml import EmbeddingCache
        >>> cache, keys = EmbeddingCache(), ["a", "b"]
        >>> missing = [k for k in keys if k not in cache.get_many("ns", keys)]
        >>> with cache.lock("ns"):
        ...     missing = [k for k in missing if k not in cache.get_many("ns", missing)]
        ...     cache.put_many("ns", missing, np.ones((len(missing), 3)))
        2
        """
        _check_keys(namespace, [])
        store = self._store
        offset = (
            int.from_bytes(hashlib.sha1(namespace.encode()).digest()[:8], "big") >> 2
        )
        with store.locked(offset):
            token = (threading.get_ident(), namespace)
            with store.mutex:
                store.rechecking.add(token)
            try:
                yield self
            finally:
                with store.mutex:
                    store.rechecking.discard(token)

    # -- statistics and housekeeping ---------------------------------------------

    @property
    def hits(self) -> int:
        """Keys found by this process's lookups (all clones together)."""
        return self._store.hits

    @property
    def misses(self) -> int:
        """Keys this process looked up and did not find."""
        return self._store.misses

    @property
    def size_bytes(self) -> int:
        """Bytes of stored data (vectors, keys, namespaces): what the bound limits."""
        return self.stats()["size_bytes"]

    @property
    def disk_bytes(self) -> int:
        """Bytes the database files take on disk (SQLite's pages and its WAL)."""
        return sum(
            p.stat().st_size
            for p in (self.path, sidecar(self.path, "-wal"))
            if p.exists()
        )

    def __len__(self) -> int:
        with self._store.mutex:
            return (
                self._store.connect()
                .execute("SELECT COUNT(*) FROM embeddings")
                .fetchone()[0]
            )

    def namespaces(self) -> dict[str, int]:
        """Return the number of rows stored in each namespace."""
        with self._store.mutex:
            rows = self._store.connect().execute(
                "SELECT namespace, COUNT(*) FROM embeddings GROUP BY namespace"
            )
            return dict(rows.fetchall())

    def stats(self) -> dict[str, int]:
        """Totals over every process that used this file.

        Returns
        -------
        dict
            ``rows``; ``size_bytes`` (stored data) and ``disk_bytes``;
            ``written``: rows passed to ``put_many``, duplicates included, so
            with the embedding transformer it counts every row embedded by any
            process; ``evicted``; ``hits`` and ``misses`` of all processes
            (other processes' lookups appear once they write or close).
        """
        self.flush()
        with self._store.mutex:
            conn = self._store.connect()
            totals = dict(conn.execute("SELECT name, value FROM counters").fetchall())
            rows = conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
        return {
            "rows": rows,
            "size_bytes": totals.get("bytes", 0),
            "disk_bytes": self.disk_bytes,
            **{k: totals.get(k, 0) for k in ("written", "evicted", "hits", "misses")},
        }

    def clear(self, namespace: str | None = None) -> int:
        """Delete every row, or those of one namespace; return how many.

        Parameters
        ----------
        namespace : str, default=None
            Namespace to empty; ``None`` empties the whole cache.

        Returns
        -------
        int
            Rows deleted.
        """
        if namespace is not None:
            _check_keys(namespace, [])

        def delete(conn: sqlite3.Connection) -> int:
            where, args = (
                ("WHERE namespace = ?", (namespace,)) if namespace else ("", ())
            )
            freed = conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM(nbytes), 0) FROM embeddings {where}",
                args,
            ).fetchone()
            conn.execute(f"DELETE FROM embeddings {where}", args)
            bump(conn, bytes=-freed[1])
            return freed[0]

        with self._store.mutex:
            self._store.pending.clear()
        deleted = self._write(delete)
        with self._store.mutex:
            self._store.connect().execute("PRAGMA incremental_vacuum")
        return deleted

    def flush(self) -> None:
        """Write buffered access times and hit/miss counts to the file."""
        self._write(lambda conn: None)

    def close(self) -> None:
        """Flush and close this process's connection (reopened on next use)."""
        self._store.close()

    # -- copying and pickling ----------------------------------------------------

    def __deepcopy__(self, memo: dict) -> EmbeddingCache:
        return self  # clones of an estimator share one store

    def __copy__(self) -> EmbeddingCache:
        return self

    def __reduce__(self) -> tuple:
        return (
            _reopen,
            (str(self.path), self.temporary, self.max_size_bytes, self.timeout),
        )

    def __repr__(self) -> str:
        args = [] if self.temporary else [repr(str(self.path))]
        if self.max_size_bytes is not None:
            args.append(f"max_size_bytes={self.max_size_bytes}")
        return f"EmbeddingCache({', '.join(args)})"

    def _write(self, body: Any) -> Any:
        return self._store.write(body)


def _check_keys(namespace: Any, keys: Sequence[Any]) -> list[str]:
    if not isinstance(namespace, str) or not namespace:
        raise TypeError(
            f"namespace: got {namespace!r}. Expected a non-empty str. Pass the "
            "backbone fingerprint the keys belong to."
        )
    if isinstance(keys, (str, bytes)):
        raise TypeError(
            f"keys: got {keys!r}. Expected a sequence of str keys, not a single "
            "string. Wrap one key in a list: [key]."
        )
    for i, key in enumerate(keys):
        if not isinstance(key, str):
            raise TypeError(
                f"keys[{i}]: got {key!r}. Expected str keys. Hash the row's content "
                "to a string (e.g. hashlib.sha1(data).hexdigest())."
            )
    return list(dict.fromkeys(keys))


def _handle(
    path: str,
    max_size_bytes: int | None = None,
    timeout: float = 60.0,
    temporary: bool = False,
) -> EmbeddingCache:
    """Return this process's one handle on ``path`` (``coerce``, unpickling).

    A loky worker unpickles the estimator of every task it runs; one handle per
    file keeps one connection and one hit/miss count for all of them.
    """
    key = (path, max_size_bytes, timeout)
    cache = _HANDLES.get(key)
    if cache is None:
        cache = EmbeddingCache(path, max_size_bytes=max_size_bytes, timeout=timeout)
        cache.temporary = temporary  # another process's temporary file: not ours
        _HANDLES[key] = cache
    return cache


def _reopen(
    path: str, temporary: bool, max_size_bytes: int | None, timeout: float
) -> EmbeddingCache:
    """Unpickle: the same file; a temporary one that is gone starts afresh."""
    if temporary and not Path(path).exists():
        _HANDLES.pop((path, max_size_bytes, timeout), None)
        return EmbeddingCache(max_size_bytes=max_size_bytes, timeout=timeout)
    return _handle(path, max_size_bytes, timeout, temporary)


def _close_and_remove(store: Store, owned: tuple[Path, ...]) -> None:
    store.close()
    for path in owned:
        for file in (path, *(sidecar(path, s) for s in ("-wal", "-shm", "-lock"))):
            with contextlib.suppress(OSError):
                file.unlink()

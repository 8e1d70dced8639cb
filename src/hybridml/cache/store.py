"""EmbeddingCache: embed each distinct row once, across folds, clones and processes.

The cache is an explicit object passed as a parameter (``cache=``), so
``clone()`` keeps it. Vectors live in an SQLite database in WAL mode: shared by
the loky workers of ``GridSearchCV(n_jobs=2)``, kept across restarts, safe under
concurrent writers, and every finished ``put_many`` is committed, so an
interrupted run resumes from what it wrote.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_int
from . import claims
from .sqlite import (
    Store,
    bump,
    check_keys,
    close_and_remove,
    evict,
    insert_new,
    select_in,
    sidecar,
)

__all__ = ["EmbeddingCache"]

_FLUSH_EVERY = 20_000  # buffered access times written after this many hits
FILE_NAME = "hybridml-cache.sqlite"  # the database in a folder passed as path
_DTYPE = np.dtype("<f4")  # little-endian float32 on disk, whatever the machine
_HANDLES: dict[tuple, EmbeddingCache] = {}  # one handle per file and process


LEGACY_FILE_NAME = "embeddings.sqlite"  # what `--cache DIR` wrote before 0.1


def database_path(path: str | os.PathLike) -> Path:
    """The one rule from a ``cache=`` / ``--cache`` path to the SQLite file.

    A folder (an existing one, a path ending in ``/``, or a new path without a
    suffix) holds ``hybridml-cache.sqlite``; a folder that already holds the
    ``embeddings.sqlite`` an older ``hybridml baseline --cache`` wrote keeps
    using it, so no embedding already paid for is lost. Anything else is the
    database file itself.

    Examples
    --------
    >>> from hybridml.cache.store import database_path
    >>> database_path("runs/").name, database_path("runs").name
    ('hybridml-cache.sqlite', 'hybridml-cache.sqlite')
    >>> database_path("my.sqlite").name
    'my.sqlite'
    """
    target = Path(path).expanduser().absolute()
    folder = (
        target.is_dir()
        or str(path).endswith(("/", os.sep))
        or (not target.suffix and not target.exists())
    )
    if not folder:
        return target
    legacy = target / LEGACY_FILE_NAME
    if legacy.is_file() and not (target / FILE_NAME).exists():
        return legacy
    return target / FILE_NAME


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
        SQLite file to use (created with its folder if missing); a folder (or a
        path ending in ``/``) holds it as ``hybridml-cache.sqlite``. A database
        EmbeddingCache did not create is refused and left unchanged. ``None``
        makes a temporary cache: a private file in the system temp folder,
        deleted when the cache is garbage-collected or the process exits.
        Worker processes that receive it (pickled) share that file.
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
        if max_size_bytes is not None:
            # the one integer rule: TypeError for a non-integer, ValueError below 1
            check_int(max_size_bytes, "max_size_bytes (bytes; e.g. 2 * 1024**3)")
        self.temporary = path is None
        if path is None:
            fd, name = tempfile.mkstemp(prefix="hybridml-cache-", suffix=".sqlite")
            os.close(fd)
            path = name
        self.path = database_path(path)
        self.max_size_bytes = None if max_size_bytes is None else int(max_size_bytes)
        self.timeout = float(timeout)
        self._store = Store(self.path, self.timeout)
        owned = (self.path,) if self.temporary else ()
        self._finalizer = weakref.finalize(self, close_and_remove, self._store, owned)

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
            return _handle(str(database_path(cache)))
        raise TypeError(
            f"cache: got {cache!r}. Expected None, a file path (str or "
            "pathlib.Path) or a hybridml.EmbeddingCache. Pass e.g. "
            "cache='embeddings.sqlite' or cache=EmbeddingCache()."
        )

    # -- lookups and writes -------------------------------------------------------

    def get_many(
        self, namespace: str, keys: Sequence[str], *, dim: int | None = None
    ) -> dict[str, np.ndarray]:
        """Return the cached vectors of ``keys`` that are present.

        Parameters
        ----------
        namespace : str
            The backbone fingerprint the keys belong to.
        keys : sequence of str
            Row keys to look up (duplicates are looked up once).
        dim : int, default=None
            The expected length of every vector: a stored vector of another
            length raises ``ValueError`` naming this file. ``None``: not checked.

        Returns
        -------
        dict of str to ndarray
            ``{key: float32 1-D vector}`` for the hits only.
        """
        distinct = check_keys(namespace, keys)
        found = self._read(namespace, distinct, dim)
        self._count(hits=len(found), misses=len(distinct) - len(found))
        return found

    def get_or_compute(
        self,
        namespace: str,
        keys: Sequence[str],
        fn: Callable[[list[str]], Any],
        *,
        dim: int | None = None,
        lease: float = 300.0,
    ) -> dict[str, np.ndarray]:
        """Return the vector of every key, computing each missing one once.

        The missing keys that no other caller is computing are claimed in one
        short transaction; ``fn`` then computes them with no lock held, so
        processes (loky, Ray or Dask workers) with different keys compute in
        parallel, and a key wanted by two of them is computed by one while the
        other waits for it. Every batch ``fn`` yields is committed at once, so an
        interrupted run keeps its finished batches and a rerun resumes.

        Parameters
        ----------
        namespace : str
            The backbone fingerprint the keys belong to.
        keys : sequence of str
            Row keys wanted (duplicates are handled once).
        fn : callable
            ``fn(missing_keys)`` returns an array of shape ``(len(missing_keys),
            dim)``, or yields ``(keys, vectors)`` pairs that together cover
            ``missing_keys`` (each pair is committed as it comes).
        dim : int, default=None
            Expected vector length, checked on every vector read (see
            ``get_many``).
        lease : float, default=300.0
            Seconds a claim binds others without a committed batch: a caller
            that hangs longer (or whose machine died) has its keys taken over.
            On one machine a claim of a process that is gone is taken over at
            once.

        Returns
        -------
        dict of str to ndarray
            ``{key: float32 1-D vector}`` for every distinct key.

        Examples
        --------
        >>> import numpy as np
        >>> from hybridml import EmbeddingCache
        >>> cache = EmbeddingCache()
        >>> fn = lambda keys: np.ones((len(keys), 2))
        >>> sorted(cache.get_or_compute("ns", ["a", "b"], fn, dim=2))
        ['a', 'b']
        >>> cache.hits, cache.misses, len(cache)
        (0, 2, 2)
        >>> len(cache.get_or_compute("ns", ["a", "c"], fn)), cache.misses
        (2, 3)
        """
        distinct = check_keys(namespace, keys)
        if not callable(fn):
            raise TypeError(
                f"fn: got {fn!r}. Expected a callable taking the missing keys. "
                "Pass e.g. lambda keys: model(keys)."
            )
        if (
            isinstance(lease, bool)
            or not isinstance(lease, (int, float))
            or not (lease > 0)
        ):
            raise ValueError(
                f"lease: got {lease!r}. Expected a positive number of seconds. "
                "Pass e.g. lease=300."
            )
        return claims.run(
            self, namespace, distinct, fn, dim=dim, lease=float(lease), poll=0.02
        )

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
        check_keys(namespace, keys)
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
            added = insert_new(conn, namespace, rows, written=len(keys))
            claimant = self._store.claimants.get(threading.get_ident())
            claims.settle(conn, namespace, list(seen), claimant)
            if self.max_size_bytes is not None:
                evict(conn, self.max_size_bytes)
            return added

        return self._write(insert)

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
            check_keys(namespace, [])

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

    def _read(
        self, namespace: str, keys: list[str], dim: int | None
    ) -> dict[str, np.ndarray]:
        """Stored vectors of ``keys`` (distinct), checked against ``dim``."""
        store = self._store
        found: dict[str, np.ndarray] = {}
        with store.mutex:
            conn = store.connect()
            rows = select_in(conn, "key, vector", "embeddings", namespace, keys)
            for key, blob in rows:
                found[key] = np.frombuffer(blob, dtype=_DTYPE).astype(np.float32)
                if dim is not None and len(found[key]) != dim:
                    self._wrong_dim(namespace, key, len(found[key]), dim)
            now = time.time()
            store.pending.update(((namespace, key), now) for key in found)
            if len(store.pending) >= _FLUSH_EVERY:
                self._write(lambda conn: None)
        return found

    def _count(self, hits: int = 0, misses: int = 0) -> None:
        with self._store.mutex:
            self._store.hits += hits
            self._store.misses += misses

    def _wrong_dim(self, namespace: str, key: str, got: int, dim: int) -> None:
        raise ValueError(
            f"EmbeddingCache {str(self.path)!r}: got a stored vector of length {got} "
            f"for key {key!r} in namespace {namespace[:16]!r}... Expected length "
            f"{dim}, the embedding dimension. The file holds another model's "
            f"vectors under this namespace: empty it with .clear({namespace!r}) "
            "or pass another cache path."
        )


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

"""SQLite storage of EmbeddingCache: schema, connection, transactions, locks.

One ``Store`` per cache object and process holds the connection (opened lazily,
reopened after a fork, shared by threads behind a lock), the buffered access
times and hit/miss counts, and the ``-lock`` file behind ``EmbeddingCache.lock``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:  # POSIX advisory locks; elsewhere ``lock()`` only excludes threads.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    nbytes INTEGER NOT NULL,
    atime REAL NOT NULL,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX IF NOT EXISTS embeddings_atime ON embeddings (atime);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_COUNTERS = ("bytes", "written", "hits", "misses", "evicted")
_WAL_LIMIT = 8 * 1024**2  # the WAL file is truncated to this after a checkpoint
_THREAD_LOCKS: dict[tuple[str, int], threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


class Store:
    """One file's per-process state: connection, counters, buffered atimes."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path, self.timeout = path, timeout
        self.mutex = threading.RLock()
        self.pid = os.getpid()
        self.conn: sqlite3.Connection | None = None
        self.lock_file: Any = None
        self.reset()

    def reset(self) -> None:
        self.hits = self.misses = self.hits_saved = self.misses_saved = 0
        self.pending: dict[tuple[str, str], float] = {}
        self.rechecking: set[tuple[int, str]] = set()  # (thread, namespace)

    def connect(self) -> sqlite3.Connection:
        if self.pid != os.getpid():  # forked: never use the parent's connection
            _ABANDONED.append((self.conn, self.lock_file))
            self.conn, self.lock_file, self.pid = None, None, os.getpid()
            self.reset()
        if self.conn is None:
            self.conn = open_db(self.path, self.timeout)
        return self.conn

    @contextlib.contextmanager
    def locked(self, offset: int) -> Iterator[None]:
        """Hold byte ``offset`` of the ``-lock`` file: threads, then processes."""
        with _THREAD_LOCKS_GUARD:
            key = (str(self.path), offset)
            thread_lock = _THREAD_LOCKS.setdefault(key, threading.Lock())
        with thread_lock:
            if fcntl is None:  # pragma: no cover - Windows: threads only
                yield
                return
            with self.mutex:
                self.connect()
                if self.lock_file is None:
                    self.lock_file = open(sidecar(self.path, "-lock"), "a+b")
                fd = self.lock_file.fileno()
            fcntl.lockf(fd, fcntl.LOCK_EX, 1, offset)  # released if we die
            try:
                yield
            finally:
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)

    def write(self, body: Any) -> Any:
        """Run ``body(conn)`` in one IMMEDIATE transaction, with buffered stats."""
        with self.mutex:
            conn = self.connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                if self.pending:
                    conn.executemany(
                        "UPDATE embeddings SET atime = MAX(atime, ?) "
                        "WHERE namespace = ? AND key = ?",
                        [(t, ns, k) for (ns, k), t in self.pending.items()],
                    )
                hits = self.hits - self.hits_saved
                misses = self.misses - self.misses_saved
                bump(conn, hits=hits, misses=misses)
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self.pending.clear()
            self.hits_saved += hits
            self.misses_saved += misses
        return result

    def close(self) -> None:
        with self.mutex:
            if self.conn is not None and self.pid == os.getpid():
                with contextlib.suppress(sqlite3.Error):
                    self.write(lambda conn: None)
                self.conn.close()
                if self.lock_file is not None:
                    self.lock_file.close()
            self.conn, self.lock_file = None, None


_ABANDONED: list = []  # a forked child's copies of its parent's handles, never closed


def open_db(path: Path, timeout: float) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        str(path), timeout=timeout, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only acts on a new file
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {_WAL_LIMIT}")
        (tables,) = conn.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' "
            "AND name IN ('embeddings', 'counters')"
        ).fetchone()
        if tables < 2:  # a new file: create the schema (a write, so only once)
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                "INSERT OR IGNORE INTO counters VALUES (?, 0)",
                [(c,) for c in _COUNTERS],
            )
            conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ValueError(
            f"EmbeddingCache path: got {str(path)!r}, which is not a usable "
            f"embedding cache ({exc}). Expected a new file or one written by "
            "EmbeddingCache. Pass another path, or delete this file."
        ) from exc
    return conn


def bump(conn: sqlite3.Connection, **deltas: int) -> None:
    conn.executemany(
        "UPDATE counters SET value = value + ? WHERE name = ?",
        [(v, k) for k, v in deltas.items() if v],
    )


def evict(conn: sqlite3.Connection, limit: int) -> None:
    """Delete least recently used rows until the stored data fits ``limit``."""
    (total,) = conn.execute(
        "SELECT value FROM counters WHERE name = 'bytes'"
    ).fetchone()
    if total <= limit:
        return
    victims, freed = [], 0
    for rowid, nbytes in conn.execute(
        "SELECT rowid, nbytes FROM embeddings ORDER BY atime, rowid"
    ):
        victims.append((rowid,))
        freed += nbytes
        if total - freed <= limit:
            break
    conn.executemany("DELETE FROM embeddings WHERE rowid = ?", victims)
    bump(conn, bytes=-freed, evicted=len(victims))
    conn.execute("PRAGMA incremental_vacuum")


def sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)

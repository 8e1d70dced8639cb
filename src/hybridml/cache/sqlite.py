"""SQLite storage of EmbeddingCache: schema, stamp, connection, transactions.

One ``Store`` per cache object and process holds the connection (opened lazily,
reopened after a fork, shared by threads behind a lock), the buffered access
times and hit/miss counts, and the claims each thread is computing
(``get_or_compute``). Our files carry ``PRAGMA application_id`` and
``user_version``; any other non-empty database is refused before anything is
written to it. Nothing is written beside the database but SQLite's own
journal files (``-wal``, ``-shm``), which SQLite keeps crash-safe.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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
CREATE TABLE IF NOT EXISTS claims (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (namespace, key)
);
"""
_COUNTERS = ("bytes", "written", "hits", "misses", "evicted")
CHUNK = 500  # keys per ``IN (...)``: far below SQLite's variable limit (999+)
_WAL_LIMIT = 8 * 1024**2  # the WAL file is truncated to this after a checkpoint


class Store:
    """One file's per-process state: connection, counters, buffered atimes."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path, self.timeout = path, timeout
        self.mutex = threading.RLock()
        self.pid = os.getpid()
        self.conn: sqlite3.Connection | None = None
        self.reset()

    def reset(self) -> None:
        self.hits = self.misses = self.hits_saved = self.misses_saved = 0
        self.pending: dict[tuple[str, str], float] = {}
        self.claimants: dict[int, tuple[str, float]] = {}  # thread: (owner, lease)

    def connect(self) -> sqlite3.Connection:
        if self.pid != os.getpid():  # forked: never use the parent's connection
            _ABANDONED.append(self.conn)
            self.conn, self.pid = None, os.getpid()
            self.reset()
        if self.conn is None:
            self.conn = open_db(self.path, self.timeout)
        return self.conn

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
            self.conn = None


_ABANDONED: list = []  # a forked child's copies of its parent's connection

APPLICATION_ID = 0x686D6C63  # "hmlc": PRAGMA application_id of our files
SCHEMA_VERSION = 2  # PRAGMA user_version: 1 = embeddings + counters, 2 = + claims
_COLUMNS = {
    "embeddings": ("namespace", "key", "dim", "vector", "nbytes", "atime"),
    "counters": ("name", "value"),
    "claims": ("namespace", "key", "owner", "expires"),
}


def open_db(path: Path, timeout: float) -> sqlite3.Connection:
    """Open (creating if new) the cache at ``path``; refuse any other database.

    A file that is not ours is never written to: the checks only read, and the
    WAL switch and the schema come after them. SQLite answers "locked" at once
    (no busy wait) when several processes switch a new file to WAL together:
    that is retried until ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _open_db(path, timeout)
        except ValueError as exc:
            cause = exc.__cause__
            busy = isinstance(cause, sqlite3.OperationalError) and (
                "locked" in str(cause) or "busy" in str(cause)
            )
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _open_db(path: Path, timeout: float) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(path), timeout=timeout, isolation_level=None, check_same_thread=False
        )
    except (OSError, sqlite3.Error) as exc:
        raise ValueError(
            f"EmbeddingCache path: got {str(path)!r}, which cannot be opened "
            f"({exc}). Expected a writable file path. Pass a path in a folder you "
            "can write to."
        ) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        kind = _classify(conn, path)
        if kind == "new":
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # before any table
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {_WAL_LIMIT}")
        if kind != "current":  # new, or ours from an older hybridml: one write
            conn.execute("BEGIN IMMEDIATE")
            try:
                _create_schema(conn, _classify(conn, path))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ValueError(
            f"EmbeddingCache path: got {str(path)!r}, which is not a usable "
            f"embedding cache ({exc}). Expected a new file or one written by "
            "EmbeddingCache. Pass another path (this file was left unchanged)."
        ) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _classify(conn: sqlite3.Connection, path: Path) -> str:
    """Tell ``new``, ``current`` or ``older`` (ours); raise for anything else."""
    app_id, version, tables = _header_and_tables(conn)
    if app_id == 0 and not tables:
        return "new"
    # our files: stamped, or unstamped ones of hybridml before stamping
    legacy = app_id == 0 and set(tables) == {"embeddings", "counters"}
    if app_id != APPLICATION_ID and not legacy:
        found = ", ".join(sorted(tables)) or "no tables"
        raise ValueError(
            f"EmbeddingCache path: got {str(path)!r}, an SQLite database that "
            f"hybridml did not create (application_id {app_id}, tables: {found}). "
            "Expected a new file or one written by EmbeddingCache. Pass another "
            "path; this file was left unchanged."
        )
    for name, columns in tables.items():
        if name in _COLUMNS and columns != _COLUMNS[name]:
            raise ValueError(
                f"EmbeddingCache path: got {str(path)!r}, whose table {name!r} has "
                f"columns {list(columns)}. Expected {list(_COLUMNS[name])}. Pass "
                "another path; this file was left unchanged."
            )
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"EmbeddingCache path: got {str(path)!r}, written by a newer hybridml "
            f"(cache format {version}). Expected format {SCHEMA_VERSION} or older. "
            "Upgrade hybridml or pass another path."
        )
    return "current" if version == SCHEMA_VERSION and len(tables) == 3 else "older"


def _header_and_tables(conn: sqlite3.Connection) -> tuple[int, int, dict]:
    """The stamp, the format and the tables, read from one snapshot.

    In autocommit mode each statement reads its own snapshot: another process
    creating the schema in between would show tables without their stamp (a
    file that looks foreign). One read transaction makes the three reads agree.
    """
    outer = conn.in_transaction
    if not outer:
        conn.execute("BEGIN")
    try:
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        tables = {
            name: tuple(c[1] for c in conn.execute(f"PRAGMA table_info('{name}')"))
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
        }
    finally:
        if not outer:
            conn.execute("COMMIT")
    return app_id, version, tables


def _create_schema(conn: sqlite3.Connection, kind: str) -> None:
    if kind == "current":  # another process created it while we waited
        return
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.executemany(
        "INSERT OR IGNORE INTO counters VALUES (?, 0)", [(c,) for c in _COUNTERS]
    )
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def select_in(
    conn: sqlite3.Connection, columns: str, table: str, namespace: str, keys: list
) -> Iterator[tuple]:
    """Rows of ``table`` in ``namespace`` whose key is in ``keys``, chunked."""
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        yield from conn.execute(
            f"SELECT {columns} FROM {table} WHERE namespace = ? AND key IN ({marks})",
            (namespace, *chunk),
        )


def insert_new(
    conn: sqlite3.Connection, namespace: str, rows: list[tuple], *, written: int
) -> int:
    """Insert the ``rows`` whose key is not stored yet (first writer wins)."""
    keys = [r[1] for r in rows]
    present = {k for (k,) in select_in(conn, "key", "embeddings", namespace, keys)}
    new = [r for r in rows if r[1] not in present]
    conn.executemany(
        "INSERT INTO embeddings (namespace, key, dim, vector, nbytes, atime) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        new,
    )
    bump(conn, bytes=sum(r[4] for r in new), written=written)
    return len(new)


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


def check_keys(namespace: Any, keys: Sequence[Any]) -> list[str]:
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


SIDECARS = ("-wal", "-shm", "-lock")  # SQLite's journals and our lock file


def remove_database(path: Path) -> None:
    """Delete a cache database and its side files (the one list of them)."""
    for file in (path, *(sidecar(path, s) for s in SIDECARS)):
        with contextlib.suppress(OSError):
            if file.is_file():
                file.unlink()


def close_and_remove(store: Store, owned: tuple[Path, ...]) -> None:
    store.close()
    for path in owned:
        remove_database(path)

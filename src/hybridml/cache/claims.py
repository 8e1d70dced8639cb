"""Compute-once across processes: claim the missing keys, compute, commit.

:meth:`EmbeddingCache.get_or_compute` runs here. In one short write transaction
(SQLite's own cross-process write lock) a caller claims the keys that are
neither stored nor claimed by a live caller, then computes them with no lock
held, so callers with different keys compute in parallel. Each finished batch is
committed with ``put_many``, which also drops those keys' claims and renews the
lease on the caller's other claims. Keys claimed by someone else are waited for;
a claim whose owner died (same machine: its process is gone) or whose lease
expired is taken over. An interrupted caller releases its claims on the way
out; a killed one leaves them to be taken over.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .sqlite import CHUNK, select_in

_HOST = socket.gethostname()
_ACTIVE: set[str] = set()  # owners of the calls running in this process
_ACTIVE_LOCK = threading.Lock()


def new_owner() -> str:
    """A claim owner: ``host:pid:token``, registered as running in this process."""
    owner = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex}"
    with _ACTIVE_LOCK:
        _ACTIVE.add(owner)
    return owner


def retire_owner(owner: str) -> None:
    with _ACTIVE_LOCK:
        _ACTIVE.discard(owner)


def owner_alive(owner: str, expires: float, now: float) -> bool:
    """Tell whether a claim still binds: lease running and owner not known dead."""
    if expires < now:
        return False
    host, pid_text, _ = owner.rsplit(":", 2)
    if host != _HOST:
        return True  # another machine: only the lease tells
    pid = int(pid_text)
    if pid == os.getpid():
        with _ACTIVE_LOCK:
            return owner in _ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(
    conn: sqlite3.Connection,
    namespace: str,
    keys: list[str],
    owner: str,
    lease: float,
) -> tuple[list[str], list[str]]:
    """Inside a write transaction: claim what is free among ``keys``.

    Returns ``(mine, others)``: the keys now claimed by ``owner``, and those
    claimed by another live owner. Keys already stored are in neither.
    """
    present = {k for (k,) in select_in(conn, "key", "embeddings", namespace, keys)}
    held = {
        k: (o, e)
        for k, o, e in select_in(conn, "key, owner, expires", "claims", namespace, keys)
    }
    now = time.time()
    mine, others = [], []
    for key in keys:
        if key in present:
            continue
        claimant = held.get(key)
        if claimant is None or claimant[0] == owner or not owner_alive(*claimant, now):
            mine.append(key)
        else:
            others.append(key)
    conn.executemany(
        "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)",
        [(namespace, k, owner, now + lease) for k in mine],
    )
    return mine, others


def settle(
    conn: sqlite3.Connection, namespace: str, keys: list[str], claimant: Any
) -> None:
    """Inside ``put_many``'s transaction: drop the written keys' claims, renew ours."""
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        conn.execute(
            f"DELETE FROM claims WHERE namespace = ? AND key IN ({marks})",
            (namespace, *chunk),
        )
    if claimant is not None:
        owner, lease = claimant
        conn.execute(
            "UPDATE claims SET expires = ? WHERE owner = ?",
            (time.time() + lease, owner),
        )


def release(conn: sqlite3.Connection, owner: str) -> None:
    conn.execute("DELETE FROM claims WHERE owner = ?", (owner,))


def batches(result: Any, keys: list[str]) -> Iterable[tuple[list[str], Any]]:
    """``fn``'s result as ``(keys, vectors)`` pairs: one array, or an iterable."""
    if isinstance(result, np.ndarray) or hasattr(result, "__array__"):
        return [(keys, result)]
    return result


def run(
    cache: Any,
    namespace: str,
    keys: list[str],
    fn: Callable[[list[str]], Any],
    *,
    dim: int | None,
    lease: float,
    poll: float,
) -> dict[str, np.ndarray]:
    """The body of ``get_or_compute``: read, claim, compute, wait, repeat."""
    store = cache._store
    found = cache._read(namespace, keys, dim)
    cache._count(hits=len(found))
    missing = [k for k in keys if k not in found]
    owner = new_owner()
    thread = threading.get_ident()
    wait = poll
    try:
        with store.mutex:
            store.claimants[thread] = (owner, lease)
        while missing:
            mine, others = cache._write(
                lambda conn, todo=missing: claim(conn, namespace, todo, owner, lease)
            )
            if mine:
                _compute(cache, namespace, mine, fn, found)
                wait = poll
            rest = [k for k in missing if k not in found]
            if others and not mine:
                time.sleep(wait)
                wait = min(2 * wait, 0.5)
            got = cache._read(namespace, rest, dim)
            cache._count(hits=len(got))
            found.update(got)
            missing = [k for k in rest if k not in found]
    finally:
        with store.mutex:
            store.claimants.pop(thread, None)
        retire_owner(owner)
        cache._write(lambda conn: release(conn, owner))
    return found


def _compute(cache, namespace, mine, fn, found) -> None:
    """Run ``fn`` on our claimed keys; commit and keep each batch it yields."""
    wanted = set(mine)
    for batch_keys, vectors in batches(fn(list(mine)), mine):
        batch_keys = list(batch_keys)
        vectors = np.asarray(vectors)
        extra = [k for k in batch_keys if k not in wanted]
        if extra:
            raise ValueError(
                f"get_or_compute fn: returned key {extra[0]!r}, which was not asked "
                "for. Expected only keys from the list it was given. Yield "
                "(keys, vectors) pairs over that list."
            )
        cache.put_many(namespace, batch_keys, vectors)
        cache._count(misses=len(set(batch_keys) & wanted))
        for key, row in zip(batch_keys, vectors, strict=True):
            if key in wanted:
                found[key] = np.asarray(row, dtype="<f4").astype(np.float32)
                wanted.discard(key)
    if wanted:
        raise ValueError(
            f"get_or_compute fn: returned no vector for {len(wanted)} of the "
            f"{len(mine)} keys it was given (e.g. {next(iter(wanted))!r}). Expected "
            "one vector per key. Return an array of shape (len(keys), dim) or "
            "yield (keys, vectors) pairs covering every key."
        )

"""Dynamic batching: the rows of concurrent requests, one model call per batch.

Pure threading, no HTTP and no pandas: :class:`Batcher` owns one worker
thread, the only thread that calls the model. :meth:`Batcher.submit` queues one
request's rows (a list) and returns a :class:`concurrent.futures.Future` (an
asyncio caller awaits it with :func:`asyncio.wrap_future`). The worker takes
the oldest request, waits up to ``max_wait_ms`` from its arrival (or, for a
request that came in while the last batch ran, from that batch's end) for
more, stops early once ``max_batch`` rows are gathered, runs the model once on the
requests' rows and hands each request exactly its own results back, by
position. It waits only while requests keep company: when no two requests
were in the server at once in the last second (one client at a time), a
request runs at once, as with batching off.

A batch whose call raises ``ValueError`` (rows the model cannot read) is
sorted out without running the model per request: ``check`` runs on each
request's rows, the requests it refuses get their own error, and the others
run again as one batch (with no ``check``, or when it finds no culprit, each
request runs alone). So one bad request never fails the good ones gathered
with it. Any other exception fails every request of that batch, each with the
same error id (logged with its traceback), and the worker goes on.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("hybridml.serve")

_STOP = object()


class BatchError(RuntimeError):
    """A batch failed for a reason that is not the request's rows (HTTP 500)."""

    def __init__(self, error_id: str, cause: BaseException) -> None:
        super().__init__(
            f"predict: got an internal error ({type(cause).__name__}, id "
            f"{error_id}). Expected a prediction. The server log has the "
            "traceback under that id; retry, or report it."
        )
        self.error_id = error_id


@dataclass(eq=False)
class Job:
    """One request's rows waiting for the model."""

    items: list
    proba: bool = False
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)

    @property
    def rows(self) -> int:
        return len(self.items)


class Batcher:
    """Gather concurrent requests into batches run by one worker thread.

    Parameters
    ----------
    predict : callable
        ``predict(groups, proba)``: ``groups`` holds each request's rows (a
        list per request, in order); returns one result per row, all requests'
        rows in order (a list). ``proba`` is True when a request of the batch
        asked for probabilities.
    max_batch : int, default=64
        The most rows a batch gathers (a request is never split: one larger
        request runs alone). 1 turns batching off.
    max_wait_ms : float, default=5.0
        How long the oldest request waits for others before its batch runs,
        counted from its arrival or from the end of the batch that ran while
        it arrived, whichever is later. Under a steady load the clients of one
        batch come back while the next waits, so batches fill up instead of
        two half-full groups taking turns (32 clients, MiniLM: 27 instead of
        16 rows per call). No wait when no two requests were in the server at
        once in the last ``company_s`` seconds: a lone client's request runs
        at once.
    on_batch : callable or None
        Called with ``(rows, requests, seconds)`` after every model call.
    check : callable or None
        ``check(rows)`` raises ``ValueError`` for one request's rows the model
        cannot read; used only after a batch's call raised ``ValueError``.
    company_s : float, default=1.0
        How long one moment of two requests in flight at once (submitted, not
        yet answered) keeps the batcher waiting for company; ``inf`` always
        waits.

    Examples
    --------
    >>> from hybridml.serve.batching import Batcher
    >>> double = lambda groups, proba: [2 * x for rows in groups for x in rows]
    >>> batcher = Batcher(double, max_wait_ms=50)
    >>> first, second = batcher.submit([1, 2]), batcher.submit([3])
    >>> calls = []
    >>> batcher.on_batch = lambda rows, requests, seconds: calls.append(rows)
    >>> batcher = batcher.start()
    >>> first.result(timeout=10), second.result(timeout=10)
    ([2, 4], [6])
    >>> calls  # one model call for both requests
    [3]
    >>> batcher.stop()
    """

    def __init__(
        self,
        predict: Callable[[list[list], bool], Sequence],
        *,
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[int, int, float], None] | None = None,
        check: Callable[[list], Any] | None = None,
        company_s: float = 1.0,
    ) -> None:
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self.company_s = company_s
        self._in_flight = 0  # submitted, not yet answered
        self._company = -float("inf")  # when two were last in flight at once
        self.on_batch = on_batch
        self.check = check
        self._queue: queue.Queue = queue.Queue()
        self._held: Job | None = None  # taken from the queue, next batch's first
        self._freed = 0.0  # when the last batch's results were handed back
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # no request slips in behind the stop mark

    def start(self) -> Batcher:
        """Start the worker thread; return self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="hybridml-batcher", daemon=True
            )
            self._thread.start()
        return self

    def submit(self, items: Sequence, *, proba: bool = False) -> Future:
        """Queue one request's rows; the future resolves to its own results."""
        job = Job(list(items), proba)
        with self._lock:
            if self._stopping.is_set():
                raise RuntimeError(
                    "batcher: got a request after stop(). Expected requests only "
                    "while the server runs. Retry on a running server."
                )
            self._in_flight += 1
            if self._in_flight > 1:
                self._company = job.enqueued
            self._queue.put(job)
        job.future.add_done_callback(self._answered)
        return job.future

    def _answered(self, _future: Future) -> None:
        with self._lock:
            self._in_flight -= 1

    def stop(self, timeout: float | None = None) -> None:
        """Run every queued request, then end the worker thread."""
        with self._lock:
            self._stopping.set()
            self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)

    # ---------------------------------------------------------------- worker
    def _loop(self) -> None:
        while True:
            batch = self._gather()
            if batch is None:
                return
            self._run(batch)
            self._freed = time.perf_counter()

    def _gather(self) -> list[Job] | None:
        """The next batch: the oldest job plus what arrives in time and fits."""
        first = self._held or self._queue.get()
        self._held = None
        if first is _STOP:
            return None
        batch, rows = [first], first.rows
        # wait for company from the oldest arrival, or from the end of the last
        # batch when the oldest came in while it ran (its clients come back)
        deadline = max(first.enqueued, self._freed) + self.max_wait_ms / 1000.0
        if time.perf_counter() - self._company > self.company_s:
            deadline = 0.0  # one client at a time: nobody to wait for
        while rows < self.max_batch:
            wait = deadline - time.perf_counter()
            try:
                if self._stopping.is_set() or wait <= 0:
                    job = self._queue.get_nowait()  # drain without waiting
                else:
                    job = self._queue.get(timeout=wait)
            except queue.Empty:
                break
            if job is _STOP or rows + job.rows > self.max_batch:
                self._held = job  # starts the next batch (or ends the loop)
                break
            batch.append(job)
            rows += job.rows
        return [job for job in batch if job.future.set_running_or_notify_cancel()]

    def _run(self, batch: list[Job]) -> None:
        if not batch:
            return
        start = time.perf_counter()
        rows = sum(job.rows for job in batch)
        try:
            result = self.predict(
                [job.items for job in batch], any(job.proba for job in batch)
            )
            if len(result) != rows:
                raise RuntimeError(
                    f"predict: got {len(result)} results for {rows} rows. "
                    "Expected one per row. This is a bug: report it."
                )
        except ValueError as exc:
            self._isolate(batch, exc)
            return
        except Exception as exc:
            error_id = uuid.uuid4().hex[:12]
            log.exception(
                "batch of %d requests (%d rows) failed, id %s",
                len(batch),
                rows,
                error_id,
            )
            for job in batch:
                job.future.set_exception(BatchError(error_id, exc))
            return
        if self.on_batch is not None:
            self.on_batch(rows, len(batch), time.perf_counter() - start)
        bounds = list(itertools.accumulate([job.rows for job in batch], initial=0))
        for job, lo, hi in zip(batch, bounds, bounds[1:], strict=False):
            job.future.set_result(list(result[lo:hi]))

    def _isolate(self, batch: list[Job], exc: ValueError) -> None:
        """A batch's rows were refused: answer the culprits, run the others."""
        if len(batch) == 1:
            batch[0].future.set_exception(exc)
            return
        good = batch
        if self.check is not None:
            good = []
            for job in batch:
                try:
                    self.check(job.items)
                except ValueError as own:
                    job.future.set_exception(own)
                else:
                    good.append(job)
        if len(good) < len(batch):
            self._run(good)  # culprits found: the others as one batch
        else:
            for job in batch:  # none found: each request alone
                self._run([job])

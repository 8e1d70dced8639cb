"""Dynamic batching: the rows of concurrent requests, one model call per batch.

Pure threading, no HTTP: :class:`Batcher` owns one worker thread, the only
thread that calls the model. :meth:`Batcher.submit` queues one request's frame
and returns a :class:`concurrent.futures.Future` (an asyncio caller awaits it
with :func:`asyncio.wrap_future`). The worker takes the oldest request, waits
up to ``max_wait_ms`` from its arrival for more, stops early once
``max_batch`` rows are gathered, runs the model once on the concatenated frame
and hands each request exactly its own rows back, by position.

A batch whose call raises ``ValueError`` (a check on the rows, which the server
runs per request before batching, but which may still catch something) is run
again request by request, so one bad request never fails the good ones
gathered with it. Any other exception fails every request of that batch, each
with the same error id (logged with its traceback), and the worker goes on.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import pandas as pd

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

    frame: pd.DataFrame
    proba: bool = False
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)

    @property
    def rows(self) -> int:
        return len(self.frame)


class Batcher:
    """Gather concurrent requests into batches run by one worker thread.

    Parameters
    ----------
    predict : callable
        ``predict(frame, proba)`` returns a DataFrame with one row per row of
        ``frame``, in order; ``proba`` is True when a request of the batch asked
        for probabilities.
    max_batch : int, default=64
        The most rows a batch gathers (a request is never split: one larger
        request runs alone). 1 turns batching off.
    max_wait_ms : float, default=5.0
        How long the oldest request waits for others before its batch runs.
    on_batch : callable or None
        Called with ``(rows, requests, seconds)`` after every model call.

    Examples
    --------
    >>> import pandas as pd
    >>> from hybridml.serve.batching import Batcher
    >>> batcher = Batcher(lambda frame, proba: frame * 2, max_wait_ms=50)
    >>> first = batcher.submit(pd.DataFrame({"x": [1, 2]}))
    >>> second = batcher.submit(pd.DataFrame({"x": [3]}))
    >>> calls = []
    >>> batcher.on_batch = lambda rows, requests, seconds: calls.append(rows)
    >>> batcher = batcher.start()
    >>> first.result(timeout=10)["x"].tolist(), second.result(timeout=10)["x"].tolist()
    ([2, 4], [6])
    >>> calls  # one model call for both requests
    [3]
    >>> batcher.stop()
    """

    def __init__(
        self,
        predict: Callable[[pd.DataFrame, bool], pd.DataFrame],
        *,
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self.on_batch = on_batch
        self._queue: queue.Queue = queue.Queue()
        self._held: Job | None = None  # taken from the queue, next batch's first
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

    def submit(self, frame: pd.DataFrame, *, proba: bool = False) -> Future:
        """Queue one request's rows; the future resolves to its own result rows."""
        job = Job(frame.reset_index(drop=True), proba)
        with self._lock:
            if self._stopping.is_set():
                raise RuntimeError(
                    "batcher: got a request after stop(). Expected requests only "
                    "while the server runs. Retry on a running server."
                )
            self._queue.put(job)
        return job.future

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

    def _gather(self) -> list[Job] | None:
        """The next batch: the oldest job plus what arrives in time and fits."""
        first = self._held or self._queue.get()
        self._held = None
        if first is _STOP:
            return None
        batch, rows = [first], first.rows
        deadline = first.enqueued + self.max_wait_ms / 1000.0
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
        frame = pd.concat([job.frame for job in batch], ignore_index=True)
        try:
            result = self.predict(frame, any(job.proba for job in batch))
            if len(result) != len(frame):
                raise RuntimeError(
                    f"predict: got {len(result)} result rows for {len(frame)} "
                    "rows. Expected one per row. This is a bug: report it."
                )
        except ValueError as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
            else:  # find the bad request: each one alone
                for job in batch:
                    self._run([job])
            return
        except Exception as exc:
            error_id = uuid.uuid4().hex[:12]
            log.exception(
                "batch of %d requests (%d rows) failed, id %s",
                len(batch),
                len(frame),
                error_id,
            )
            for job in batch:
                job.future.set_exception(BatchError(error_id, exc))
            return
        if self.on_batch is not None:
            self.on_batch(len(frame), len(batch), time.perf_counter() - start)
        bounds = list(itertools.accumulate([job.rows for job in batch], initial=0))
        for job, lo, hi in zip(batch, bounds, bounds[1:], strict=False):
            job.future.set_result(result.iloc[lo:hi].reset_index(drop=True))

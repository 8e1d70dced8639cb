"""The server's counters, rendered in the Prometheus text format (version 0.0.4).

Counters for requests (by status code), rows and batches; a histogram of batch
sizes in rows; request latency as a summary whose quantiles are taken over the
last ``window`` requests (exact, not estimated from buckets).
"""

from __future__ import annotations

import threading
from collections import Counter, deque

import numpy as np

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
QUANTILES = (0.5, 0.9, 0.99)
PREFIX = "hybridml_serve"


class Metrics:
    """Thread-safe counters for ``GET /metrics``.

    Parameters
    ----------
    window : int, default=2048
        How many of the latest requests the latency quantiles describe.
    """

    def __init__(self, *, window: int = 2048) -> None:
        self._lock = threading.Lock()
        self.requests: Counter = Counter()
        self.rows = 0
        self.batches = 0
        self.batch_rows = 0
        self.buckets = [0] * len(BATCH_BUCKETS)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.latencies: deque = deque(maxlen=window)

    def request(self, status: int, seconds: float, rows: int = 0) -> None:
        """Count one answered ``POST /predict`` request."""
        with self._lock:
            self.requests[status] += 1
            self.rows += rows
            self.latency_sum += seconds
            self.latency_count += 1
            self.latencies.append(seconds)

    def batch(self, rows: int, requests: int, seconds: float) -> None:
        """Count one model call over ``rows`` rows (the batcher's ``on_batch``)."""
        with self._lock:
            self.batches += 1
            self.batch_rows += rows
            for i, bound in enumerate(BATCH_BUCKETS):
                if rows <= bound:
                    self.buckets[i] += 1

    def render(self) -> str:
        """The Prometheus text exposition of every counter."""
        with self._lock:
            requests = dict(self.requests)
            latencies = np.asarray(self.latencies, dtype=float)
            lines = [
                *_head("requests_total", "counter", "POST /predict requests answered"),
                *(
                    f'{PREFIX}_requests_total{{code="{code}"}} {n}'
                    for code, n in sorted(requests.items())
                ),
                *_head("rows_total", "counter", "rows predicted"),
                f"{PREFIX}_rows_total {self.rows}",
                *_head("batch_rows", "histogram", "rows per model call"),
            ]
            for bound, n in zip(BATCH_BUCKETS, self.buckets, strict=True):
                lines.append(f'{PREFIX}_batch_rows_bucket{{le="{bound}"}} {n}')
            lines += [
                f'{PREFIX}_batch_rows_bucket{{le="+Inf"}} {self.batches}',
                f"{PREFIX}_batch_rows_sum {self.batch_rows}",
                f"{PREFIX}_batch_rows_count {self.batches}",
                *_head(
                    "request_latency_seconds",
                    "summary",
                    f"POST /predict latency; quantiles over the last "
                    f"{self.latencies.maxlen} requests",
                ),
            ]
            for q in QUANTILES:
                value = float(np.quantile(latencies, q)) if latencies.size else "NaN"
                lines.append(
                    f'{PREFIX}_request_latency_seconds{{quantile="{q}"}} {value}'
                )
            lines += [
                f"{PREFIX}_request_latency_seconds_sum {self.latency_sum}",
                f"{PREFIX}_request_latency_seconds_count {self.latency_count}",
            ]
        return "\n".join(lines) + "\n"


def _head(name: str, kind: str, text: str) -> list[str]:
    return [f"# HELP {PREFIX}_{name} {text}.", f"# TYPE {PREFIX}_{name} {kind}"]

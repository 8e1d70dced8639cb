"""Batch shapes for compiled forwards: compile a shape only where it pays.

XLA (TensorFlow's ``jit_compile``, every ``jax.jit``) compiles once per input
shape. Compiling MiniLM for one new (rows, tokens) shape costs 3.3 CPU-s on
TensorFlow and 1.9 on JAX on this project's 2-core CPU, as much as running
about 6,900 and 3,900 tokens through the compiled model. Rows sorted by length
give one batch at each of the longest lengths, so a call on new texts used to
spend almost half its CPU compiling shapes it ran once
(``benchmarks/bench_embedding.py``: 20.8 of 45.5 CPU-s).

:func:`plan_batches` picks, for each batch, the cheapest of: a shape already
compiled (padding the batch up to it), a new compiled shape, or (TensorFlow)
the un-compiled graph (about 1.35x the compiled cost per token, traced once
for all shapes). Costs are counted in tokens (rows x length), so the plan
depends only on the lengths and what was compiled before, never on timing:
the same call gives the same shapes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import NamedTuple

__all__ = [
    "CALL_TOKENS",
    "COMPILE_TOKENS",
    "GRAPH_OVERHEAD",
    "Batch",
    "plan_batches",
    "split_sorted",
]

# Tokens of compiled forward that cost as much CPU as compiling one new shape
# on TensorFlow (MiniLM, 2 cores: 3.3 CPU-s at about 480 us per token; JAX's
# 1.9 CPU-s would be about 3,900, but JAX does not use the plan).
COMPILE_TOKENS = 6000
# Extra CPU per token of TF's plain graph over its XLA compile: 1.25-1.47x per
# MiniLM batch of 8-64 tokens on the benchmark's texts.
GRAPH_OVERHEAD = 0.35
# The fixed cost of one un-compiled forward call, in tokens: MiniLM on TF's
# graph in bfloat16, 2 cores, about 13 CPU-ms a call at 0.19 CPU-ms a token.
CALL_TOKENS = 64
# Never pad a batch to more than this many times its own tokens.
MAX_PAD = 2.0


class Batch(NamedTuple):
    """Rows ``start:stop`` run as a (rows, length) batch, compiled or not."""

    start: int
    stop: int
    rows: int
    length: int
    compiled: bool


def plan_batches(
    lengths: Sequence[int],
    batch_size: int,
    pad: Callable[[int], int],
    known: set[tuple[int, int]],
    *,
    compile_tokens: float,
    graph: bool,
    call_tokens: float = 0,
) -> list[Batch]:
    """Split rows (sorted longest first) into batches and choose their shapes.

    Parameters
    ----------
    lengths : sequence of int
        Token count of each row, in the order the rows are run.
    batch_size : int
        Rows per batch; the last batch may have fewer.
    pad : callable
        Longest row of a batch -> its natural padded length.
    known : set of (rows, length)
        Shapes compiled before; each shape the plan compiles is added.
    compile_tokens : float
        Cost of compiling a shape, in tokens of compiled forward.
    graph : bool
        Whether an un-compiled path exists (TensorFlow's graph).
    call_tokens : float, default=0
        The fixed cost of one forward call, in tokens. Above 0 the rows are
        split where that saves padding (:func:`split_sorted`, for forwards
        that are not compiled per shape); 0 cuts every ``batch_size`` rows.

    Returns
    -------
    list of Batch

    Examples
    --------
    Two full batches of 40 tokens compile that shape; the last 20 rows of 30
    tokens are padded up to it (640 more tokens, cheaper than a compile).

    >>> known = set()
    >>> plan = plan_batches([40] * 64 + [30] * 20, 32, lambda n: -(-n // 8) * 8,
    ...                     known, compile_tokens=4000, graph=False)
    >>> [(b.rows, b.length, b.compiled) for b in plan]
    [(32, 40, True), (32, 40, True), (32, 40, True)]
    >>> sorted(known)
    [(32, 40)]
    """
    spans = (
        split_sorted(lengths, batch_size, call_tokens)
        if call_tokens > 0
        else [
            (s, min(s + batch_size, len(lengths)))
            for s in range(0, len(lengths), batch_size)
        ]
    )
    natural = [(stop - start, pad(max(lengths[start:stop]))) for start, stop in spans]
    count = Counter(natural)
    choice: dict[tuple[int, int], tuple[int, int, bool]] = {}
    for shape in sorted(count, key=lambda s: (s[1], s[0]), reverse=True):
        n, length = shape
        k = count[shape]
        if shape in known:
            choice[shape] = (n, length, True)
            continue
        best, best_cost = None, float("inf")
        for rows, longer in known:
            if rows >= n and longer >= length and rows * longer <= MAX_PAD * n * length:
                cost = k * (rows * longer - n * length)
                if cost < best_cost:
                    best, best_cost = (rows, longer, True), cost
        graph_cost = GRAPH_OVERHEAD * k * n * length if graph else float("inf")
        if best is not None and best_cost <= min(compile_tokens, graph_cost):
            choice[shape] = best
        elif graph_cost < compile_tokens:
            choice[shape] = (n, length, False)
        else:
            known.add(shape)
            choice[shape] = (n, length, True)
    return [
        Batch(start, stop, *choice[shape])
        for (start, stop), shape in zip(spans, natural, strict=True)
    ]


def split_sorted(
    lengths: Sequence[int], batch_size: int, call_tokens: float
) -> list[tuple[int, int]]:
    """Cut rows sorted longest first into batches of least padded cost.

    A batch of rows ``i:j`` costs ``call_tokens + (j - i) * lengths[i]`` (its
    rows padded to its first, longest row); the cuts minimise the sum, with at
    most ``batch_size`` rows a batch (dynamic programming, ``O(n * batch_size)``).
    Sixteen rows of mixed lengths in one call pad the short ones to the
    longest; cut in two, each half pads to its own.

    Examples
    --------
    >>> split_sorted([60, 58, 12, 11, 10, 9], 32, call_tokens=64)
    [(0, 2), (2, 6)]
    >>> split_sorted([30, 29, 28, 27], 32, call_tokens=64)  # nothing to save
    [(0, 4)]
    >>> split_sorted([5] * 5, 2, call_tokens=64)
    [(0, 2), (2, 4), (4, 5)]
    """
    n = len(lengths)
    best = [0.0] + [float("inf")] * n  # best[j]: rows :j
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j - 1, max(0, j - batch_size) - 1, -1):  # ties: full first
            cost = best[i] + call_tokens + (j - i) * lengths[i]
            if cost < best[j]:
                best[j], cut[j] = cost, i
    spans, j = [], n
    while j > 0:
        spans.append((cut[j], j))
        j = cut[j]
    return spans[::-1]

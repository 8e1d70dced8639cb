"""The batch-shape plan: compile a shape only where it pays (embed/shapes.py)."""

from __future__ import annotations

import numpy as np

from hybridml.embed.shapes import GRAPH_OVERHEAD, plan_batches


def round8(n: int) -> int:
    return -(-n // 8) * 8


def shapes(plan):
    return [(b.rows, b.length, b.compiled) for b in plan]


def test_batches_cover_the_rows_in_order():
    lengths = sorted(np.random.default_rng(0).integers(3, 200, 101), reverse=True)
    plan = plan_batches(lengths, 16, round8, set(), compile_tokens=6000, graph=True)
    assert [(b.start, b.stop) for b in plan] == [
        (s, min(s + 16, 101)) for s in range(0, 101, 16)
    ]
    for b in plan:  # every row fits its batch; no batch shrinks
        assert b.length >= max(lengths[b.start : b.stop])
        assert b.rows >= b.stop - b.start


def test_a_shape_run_once_is_not_compiled_where_a_graph_exists():
    plan = plan_batches(
        [200] * 4, 4, round8, known := set(), compile_tokens=6000, graph=True
    )
    # 4 x 200 tokens: the graph's extra 0.35 x 800 is far below a compile
    assert shapes(plan) == [(4, 200, False)] and known == set()


def test_a_shape_run_often_is_compiled_and_remembered():
    n = int(6000 / GRAPH_OVERHEAD / (32 * 40)) + 1  # batches to pay a compile
    known: set = set()
    plan = plan_batches(
        [40] * 32 * n, 32, round8, known, compile_tokens=6000, graph=True
    )
    assert {s for s in shapes(plan)} == {(32, 40, True)} and known == {(32, 40)}
    # next call: one batch of that shape runs compiled, no new compile
    again = plan_batches([40] * 32, 32, round8, known, compile_tokens=6000, graph=True)
    assert shapes(again) == [(32, 40, True)] and known == {(32, 40)}


def test_without_a_graph_a_rare_batch_pads_up_to_a_compiled_shape():
    known = {(32, 256)}
    plan = plan_batches(
        [180] * 32 + [120] * 32 + [20] * 5,
        32,
        round8,
        known,
        compile_tokens=4000,
        graph=False,
    )
    assert shapes(plan) == [
        (32, 256, True),  # 184 -> 256 costs 32 x 72 tokens, less than a compile
        (32, 120, True),  # 120 -> 256 would more than double it: compiled
        (5, 24, True),  # 5 x 24 -> 32 x 120 is far past 2x: compiled
    ]
    assert known == {(32, 256), (32, 120), (5, 24)}


def test_a_partial_batch_pads_rows_to_a_compiled_shape():
    known = {(32, 24)}
    plan = plan_batches([20] * 40, 32, round8, known, compile_tokens=4000, graph=False)
    # the last 8 rows: 32 x 24 is more than twice 8 x 24, so their own shape
    assert shapes(plan) == [(32, 24, True), (8, 24, True)]
    plan = plan_batches(
        [20] * 50, 32, round8, {(32, 24)}, compile_tokens=4000, graph=False
    )
    assert shapes(plan) == [(32, 24, True), (32, 24, True)]  # 18 rows -> 32


def test_the_plan_depends_on_the_lengths_only():
    """Through their rounding: lengths that round alike give the same plan, and
    each batch is as long as its longest row, rounded (no shape is known yet)."""
    lengths = sorted(np.random.default_rng(1).integers(3, 300, 500), reverse=True)
    alike = [max(round8(n) - 7, 3) for n in lengths]  # other lengths, same rounding
    assert alike != lengths and [round8(n) for n in alike] == [
        round8(n) for n in lengths
    ]

    def plan(rows):
        batches = plan_batches(rows, 32, round8, set(), compile_tokens=6000, graph=True)
        return [(b.start, b.stop, b.rows, b.length, b.compiled) for b in batches]

    assert plan(alike) == plan(lengths)
    for start, stop, _, length, _ in plan(lengths):
        assert length == round8(max(lengths[start:stop]))
    shorter = [max(n - 100, 3) for n in lengths]
    assert plan(shorter) != plan(lengths)  # the comparison can fail

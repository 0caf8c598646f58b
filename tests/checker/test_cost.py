"""The proof-length tally: each primitive counts FLOPs by the paper's rules (elementwise = size,
matrix product = size(out)(2k - 1), reduction over n = n - 1 per output) and its own operations
(an interval operation works on two endpoints; a product of intervals on four end products)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from compact_proofs.checker import cost
from compact_proofs.checker.errors import CheckError
from compact_proofs.checker.exact import Dyadic
from compact_proofs.checker.interval import Interval


def tally(operation) -> tuple[int, int]:
    with cost.counting() as t:
        operation()
    return t.flops, t.ops


A = Dyadic.from_floats(np.arange(12.0).reshape(3, 4))
B = Dyadic.from_floats(np.ones((4, 5)))
X = Interval(np.zeros(6), np.ones(6))


@pytest.mark.parametrize("operation, expected", [
    (lambda: A @ B, (3 * 5 * 7, 3 * 5 * 7)),
    (lambda: A + A, (12, 12)),
    (lambda: A - A, (12, 12)),
    (lambda: A.max(axis=1), (3 * 3, 3 * 3)),
    (lambda: A.spread(), (3 * 3 * 2 + 3, 3 * 3 * 2 + 3)),
    (lambda: X + X, (6, 12)),
    (lambda: X - 1.0, (6, 12)),
    (lambda: X * X, (6, 24)),
    (lambda: X.exp(), (6, 12)),
    (lambda: (X + 1.0).reciprocal(), (12, 24)),
    (lambda: -X, (0, 0)),
])
def test_each_primitive_counts_its_flops_and_operations(operation, expected):
    assert tally(operation) == expected


def test_nothing_is_counted_outside_a_check():
    A @ B  # no active tally: no error, nothing recorded
    with cost.counting() as t:
        pass
    assert (t.flops, t.ops) == (0, 0)


def test_the_deadline_stops_work_at_the_next_counted_step():
    with cost.counting(max_seconds=0.0) as t:
        time.sleep(0.01)
        with pytest.raises(CheckError, match="time limit"):
            cost.add(1)
    assert t.deadline is not None
    with cost.counting(max_seconds=60.0):
        cost.add(1)  # well within the limit

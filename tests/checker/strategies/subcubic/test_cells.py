"""Cells and their input counts, against enumeration of every input of small models."""

from __future__ import annotations

import itertools

import pytest

from checker.strategies.subcubic import cell_inputs, valid_cells


def cell_of(x: tuple[int, ...]) -> tuple[int, int, int]:
    q, m = x[-1], max(x)
    return q, m, sum(t != m for t in x)  # non-max tokens, the query included


@pytest.mark.parametrize("V, N", [(1, 3), (3, 2), (4, 3), (5, 4)])
def test_cell_inputs_counts_exactly_the_inputs_of_a_cell_within_its_gap(V, N):
    inputs = list(itertools.product(range(V), repeat=N))
    valid = valid_cells(V, N)
    occupied = {cell_of(x) for x in inputs}
    assert occupied == {tuple(int(i) for i in cell) for cell in zip(*valid.nonzero())}
    for q, m, c in occupied:
        for g in range(1, max(m, 1) + 1):
            expected = sum(1 for x in inputs if cell_of(x) == (q, m, c) and all(t <= m - g for t in x if t != m))
            assert cell_inputs(q, m, c, g, N) == expected, (q, m, c, g)

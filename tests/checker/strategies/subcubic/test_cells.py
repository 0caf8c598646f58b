"""Cells and their input counts, against enumeration of every input of small models."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from compact_proofs.checker.strategies.subcubic import cell_inputs, valid_cells


def cell_of(x: tuple[int, ...]) -> tuple[int, int, int]:
    q, m = x[-1], max(x)
    return q, m, sum(t != m for t in x)  # non-max tokens, the query included


@pytest.mark.parametrize("V, N", [(1, 3), (3, 2), (4, 3), (5, 4)])
def test_cell_inputs_counts_exactly_the_inputs_of_a_cell_within_its_gap(V, N):
    inputs = list(itertools.product(range(V), repeat=N))
    valid = valid_cells(V, N)
    occupied = {cell_of(x) for x in inputs}
    assert occupied == {tuple(int(i) for i in cell) for cell in zip(*valid.nonzero())}
    covered = lambda q, m, c, g: sum(1 for x in inputs if cell_of(x) == (q, m, c) and all(t <= m - g for t in x if t != m))  # noqa: E731
    for q, m, c in occupied:
        for g in range(1, max(m, 1) + 1):
            assert cell_inputs([q], [m], [c], [g], N) == covered(q, m, c, g), (q, m, c, g)
    # many cells at once, each with its own gap (repeated (count, range) pairs included)
    rng = np.random.default_rng(V * 10 + N)
    cells = sorted(occupied)
    gaps = [int(rng.integers(1, max(m, 1) + 1)) for _, m, _ in cells]
    q, m, c = (np.array(axis) for axis in zip(*cells))
    assert cell_inputs(q, m, c, gaps, N) == sum(covered(*cell, g) for cell, g in zip(cells, gaps))
    assert cell_inputs(q[:0], m[:0], c[:0], [], N) == 0

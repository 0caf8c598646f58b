"""The subcubic search's helpers, against their plain definitions."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from compact_proofs.generator.proving.strategies.subcubic import CHORD_QUANTILES, group_quantiles

values = st.floats(0, 1) | st.sampled_from([0.0, 0.25, 1.0])  # repeats: ties within a group


@given(st.integers(1, 6), st.lists(st.tuples(st.integers(0, 5), values), max_size=40))
def test_group_quantiles_are_numpy_quantiles_of_each_group_value_for_value(groups, samples):
    group = np.array([g % groups for g, _ in samples], dtype=np.int64)
    vals = np.array([v for _, v in samples], dtype=np.float64)
    got = group_quantiles(group, vals, groups, CHORD_QUANTILES)
    for k in range(groups):
        members = vals[group == k]
        want = np.quantile(members if len(members) else np.array([0.5]), CHORD_QUANTILES)
        assert got[k].tolist() == want.tolist(), k

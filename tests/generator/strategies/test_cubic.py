"""The cubic search's rounding of claims."""

from __future__ import annotations

import mpmath
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from generator.strategies.cubic import mp_round_up_f32


@given(st.floats(-2.0**100, 2.0**100, width=32), st.sampled_from([-1, 0, 1]), st.integers(60, 190))
def test_a_200_bit_value_rounds_up_to_the_smallest_float32_at_or_above_it(f32, direction, bits):
    """Values a hair above a float32 (closer than half a float64 ulp, where float() rounds down:
    the K=10 seed 8745 rejection) round to the next one; the float32 itself stays."""
    mpmath.mp.prec = 200
    base = mpmath.mpf(float(f32))
    value = base + direction * (abs(base) + 1) * mpmath.mpf(2) ** -bits
    got = mp_round_up_f32(value)
    assert mpmath.mpf(float(got)) >= value
    assert mpmath.mpf(float(np.nextafter(got, np.float32(-np.inf)))) < value

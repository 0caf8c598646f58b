"""Lemma 2 of checker/float_filter.py, tested: the float sum stays within K W~ + A of the exact sum."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from checker.float_filter import Threshold, coefficient_bound, round_up

unit = st.floats(0, 1) | st.sampled_from([0.0, 1.0, 5e-324, 2.2250738585072014e-308, 1e-300])
coeff = st.floats(-1e8, 1e8, allow_nan=False) | st.sampled_from([1e8, -1e8, 5e-324, -5e-324])


@given(st.lists(st.tuples(unit, coeff), min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_float_sum_error_within_lemma_2(pairs, rnd):
    w = np.array([p[0] for p in pairs])
    c = np.array([p[1] for p in pairs])
    bound = coefficient_bound(float(np.abs(c).max()))
    threshold = Threshold.for_sums(len(pairs), bound)
    order = list(range(len(pairs)))
    rnd.shuffle(order)
    products = w * c
    total = weight = 0.0
    for j in order:  # an arbitrary summation order
        total += products[j]
        weight += w[j]
    exact = sum(Fraction(float(a)) * Fraction(float(b)) for a, b in zip(w, c))
    tolerance = (Fraction(weight) * Fraction(threshold.slope) + Fraction(threshold.floor)) / 2  # >= K W~ + A
    assert abs(Fraction(total) - exact) <= tolerance
    positive, negative = threshold.classify(np.array([total]), np.array([weight]))
    assert not (positive[0] and exact <= 0)
    assert not (negative[0] and exact >= 0)


def test_nan_is_never_decided():
    threshold = Threshold.for_sums(4, 1.0)
    positive, negative = threshold.classify(np.array([np.nan, 1.0]), np.array([1.0, np.nan]))
    assert not positive.any() and not negative.any()


@given(st.fractions(min_value=Fraction(-10**30), max_value=Fraction(10**30)))
def test_round_up_is_the_least_upper_float(value):
    up = round_up(value)
    assert Fraction(up) >= value
    assert Fraction(float(np.nextafter(up, -np.inf))) < value


@pytest.mark.parametrize("summands", [1, 2, 3, 64, 1024])
def test_product_weights_are_lemma_3s_constants(summands):
    """Lemma 3 (float_filter's docstring): (a) eps = 2^-50, eta = 2^-1070 for one factor;
    (b) eps = (r + 5) 2^-53, eta = (r + 1) 2^-1072 for a sum of r >= 2 exps."""
    from fractions import Fraction

    from checker.float_filter import EPS_W, Threshold

    expected = (EPS_W, Fraction(1, 2**1070)) if summands == 1 else (Fraction(summands + 5, 2**53), Fraction(summands + 1, 2**1072))
    assert EPS_W == Fraction(1, 2**50)
    assert Threshold.product_weights(summands) == expected

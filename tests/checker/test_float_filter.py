"""Lemma 2 of checker/float_filter.py, tested: the float sum stays within K W~ + A of the exact sum."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compact_proofs.checker.float_filter import Threshold, coefficient_bound, round_up

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
    from compact_proofs.checker.float_filter import EPS_W, Threshold

    expected = (EPS_W, Fraction(1, 2**1070)) if summands == 1 else (Fraction(summands + 5, 2**53), Fraction(summands + 1, 2**1072))
    assert EPS_W == Fraction(1, 2**50)
    assert Threshold.product_weights(summands) == expected


@given(st.integers(1, 2**20), st.fractions(0, 2**40), st.integers(0, 2**10), st.integers(0, 2**10))
def test_threshold_meets_lemma_2_and_the_decision_rule(terms, bound, eps_units, eta_units):
    """K2 >= 2 K (1 + 2^-50) and A2 >= 2 A + 2^-1073 with K, A of Lemma 2, each at most one
    rounding above (so the filter is no looser than the lemma allows either)."""
    from compact_proofs.checker.float_filter import Threshold

    eps, eta = Fraction(eps_units, 2**50), Fraction(eta_units, 2**1070)
    c = Fraction(float(bound))
    k = (c * (eps + Fraction(1, 2**49) + Fraction(terms, 2**52)) + Fraction(1, 2**1069)) * (1 + Fraction(1, 2**30))
    a = 2 * terms * (c + 1) * (eta + Fraction(1, 2**1072))
    t = Threshold.for_sums(terms, float(bound), eps, eta)
    for got, least in ((t.slope, 2 * k * (1 + Fraction(1, 2**50))), (t.floor, 2 * a + Fraction(1, 2**1073))):
        assert Fraction(got) >= least and Fraction(float(np.nextafter(got, -np.inf))) < least


@pytest.mark.parametrize("terms, bound, eps, eta", [
    (2**20 + 1, 1.0, 0, 0), (0, 1.0, 0, 0), (1, -1.0, 0, 0), (1, float(2**800) * 2, 0, 0),
    (1, 1.0, Fraction(1, 2**40) + Fraction(1, 2**90), 0), (1, 1.0, -Fraction(1, 2**60), 0),
    (1, 1.0, 0, Fraction(1, 2**1060) + Fraction(1, 2**1100)), (1, 1.0, 0, -Fraction(1, 2**1100)),
])
def test_threshold_refuses_parameters_outside_lemma_2(terms, bound, eps, eta):
    from compact_proofs.checker.float_filter import Threshold

    with pytest.raises(ValueError, match="^float filter outside its proven range$"):
        Threshold.for_sums(terms, bound, eps, eta)


def test_threshold_accepts_lemma_2s_extreme_parameters():
    from compact_proofs.checker.float_filter import MAX_MAGNITUDE, Threshold

    for terms, bound, eps, eta in [(2**20, float(MAX_MAGNITUDE), Fraction(1, 2**40), Fraction(1, 2**1060)), (1, 0.0, 0, 0)]:
        Threshold.for_sums(terms, bound, eps, eta)


@given(st.lists(st.floats(0, 1e300), min_size=1, max_size=3))
def test_coefficient_bound_is_lemma_1s_c_rounded_up(max_abs):
    from compact_proofs.checker.float_filter import EPS_W, coefficient_bound

    c = sum(map(Fraction, max_abs)) * (1 + EPS_W)
    got = coefficient_bound(*max_abs)
    assert Fraction(got) >= c and Fraction(float(np.nextafter(got, -np.inf))) < c

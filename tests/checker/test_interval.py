"""Outward-rounded float intervals: every operation contains the exact result (checked with
Fractions), stays within a few ulps of it, and exp encloses a 300-bit mpmath reference."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest
from flint import arb
from hypothesis import given
from hypothesis import strategies as st

from compact_proofs.checker.enclosure import precision
from compact_proofs.checker.exact import Dyadic
from compact_proofs.checker.interval import (EXP_MAX, EXP_MIN, Interval, _ceil_float, _floor_float, build_exp_tables, exp_lower,
                              exp_upper, upper_max_affine, upper_nonnegative_products)

finite = st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False)
positive = st.floats(1e-12, 1e12)


def up(x: float) -> float:
    return float(np.nextafter(x, np.inf))


def down(x: float) -> float:
    return float(np.nextafter(x, -np.inf))


def F(value) -> Fraction:
    return Fraction(float(value))


anything = st.floats() | st.sampled_from([0.0, -0.0, np.inf, -np.inf, 5e-324, -5e-324])


@given(st.data(), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4))
def test_upper_max_affine_bounds_the_largest_affine_value_and_rounds_once_after_the_max(data, R, J, O):
    c = np.array(data.draw(st.lists(anything, min_size=R * O, max_size=R * O))).reshape(R, O)
    s = np.array(data.draw(st.lists(anything, min_size=R * O, max_size=R * O))).reshape(R, O)
    a = np.array(data.draw(st.lists(st.floats(0, 1) | st.just(0.0), min_size=R * J, max_size=R * J))).reshape(R, J)
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=R * O, max_size=R * O))).reshape(R, O)
    mask[:, 0] = True
    got = upper_max_affine(c, s, a, mask)
    with np.errstate(all="ignore"):  # the definition: every term rounded up, then the max
        terms = np.nextafter(c[:, None, :] + np.nextafter(a[:, :, None] * s[:, None, :], np.inf), np.inf)
        want = np.where(mask[:, None, :], terms, -np.inf).max(axis=2)
    assert np.array_equal(got, want, equal_nan=True)
    for r in range(R):
        for j in range(J):
            exact = [F(c[r, o]) + F(a[r, j]) * F(s[r, o]) for o in range(O) if mask[r, o] and np.isfinite([c[r, o], s[r, o]]).all()]
            if exact and np.isfinite(got[r, j]):
                assert F(got[r, j]) >= max(exact)


@given(st.data(), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4))
def test_upper_max_affine_takes_one_intercept_row_per_level(data, R, L, J, O):
    """Intercepts [R, L, O]: level by level the same floats as the two-dimensional form."""
    c = np.array(data.draw(st.lists(anything, min_size=R * L * O, max_size=R * L * O))).reshape(R, L, O)
    s = np.array(data.draw(st.lists(anything, min_size=R * O, max_size=R * O))).reshape(R, O)
    a = np.array(data.draw(st.lists(st.floats(0, 1), min_size=R * J, max_size=R * J))).reshape(R, J)
    mask = np.ones((R, O), bool)
    got = upper_max_affine(c, s, a, mask)
    assert got.shape == (R, L, J)
    for level in range(L):
        assert np.array_equal(got[:, level], upper_max_affine(c[:, level], s, a, mask), equal_nan=True)


nonnegative = st.floats(0, 1e300) | st.sampled_from([0.0, 5e-324, 2.0**-1022, 1e-310, 1.0, 2.0**1000])


@given(st.data(), st.integers(1, 2), st.integers(1, 3), st.integers(1, 9), st.integers(1, 3))
def test_upper_nonnegative_products_bound_the_exact_sums(data, R, L, T, O):
    """sum_t x[r, l, t] y[r, t, o] for floats >= 0 (subnormals and huge values included): the result
    is at least the exact sum (Fractions), and close to it."""
    x = np.array(data.draw(st.lists(nonnegative, min_size=R * L * T, max_size=R * L * T))).reshape(R, L, T)
    y = np.array(data.draw(st.lists(nonnegative, min_size=R * T * O, max_size=R * T * O))).reshape(R, T, O)
    got = upper_nonnegative_products(x, y)
    assert got.shape == (R, L, O)
    for r in range(R):
        for level in range(L):
            for o in range(O):
                exact = sum((F(x[r, level, t]) * F(y[r, t, o]) for t in range(T)), Fraction(0))
                if np.isfinite(got[r, level, o]):
                    assert F(got[r, level, o]) >= exact
                    assert F(got[r, level, o]) <= exact * (1 + Fraction(1, 2**39)) + Fraction(1, 2**1060)
                else:  # only an overflow gives no information
                    assert exact * (1 + Fraction(1, 2**39)) > F(np.finfo(np.float64).max) / 2


@given(finite, finite, finite, finite)
def test_add_sub_mul_contain_the_exact_result(a, b, c, d):
    x, y = Interval(min(a, b), max(a, b)), Interval(min(c, d), max(c, d))
    total = x + y
    assert F(total.lo) <= F(x.lo) + F(y.lo) and F(x.hi) + F(y.hi) <= F(total.hi)
    assert float(total.lo) >= down(float(x.lo + y.lo)) and float(total.hi) <= up(float(x.hi + y.hi))
    diff = x - y
    assert F(diff.lo) <= F(x.lo) - F(y.hi) and F(x.hi) - F(y.lo) <= F(diff.hi)
    assert float(diff.lo) >= down(float(x.lo - y.hi)) and float(diff.hi) <= up(float(x.hi - y.lo))
    product = x * y
    ends = [F(p) * F(q) for p in (x.lo, x.hi) for q in (y.lo, y.hi)]
    assert F(product.lo) <= min(ends) and max(ends) <= F(product.hi)
    assert float(product.lo) >= down(float(min(ends))) and float(product.hi) <= up(float(max(ends)))


@given(finite, finite)
def test_reflected_operators_and_negation(a, b):
    x = Interval(min(a, b), max(a, b))
    assert (float((-x).lo), float((-x).hi)) == (-float(x.hi), -float(x.lo))
    right, left = 3.0 - x, Interval(3.0) - x
    assert (float(right.lo), float(right.hi)) == (float(left.lo), float(left.hi))
    scaled, scaled_left = 3.0 * x, x * 3.0
    assert (float(scaled.lo), float(scaled.hi)) == (float(scaled_left.lo), float(scaled_left.hi))
    assert Fraction(float((1.5 + x).lo)) <= Fraction(1.5) + Fraction(float(x.lo))


@given(positive, positive)
def test_reciprocal_contains_the_exact_result(a, b):
    x = Interval(min(a, b), max(a, b))
    r = x.reciprocal()
    assert F(r.lo) <= 1 / F(x.hi) and 1 / F(x.lo) <= F(r.hi)
    assert float(r.lo) >= down(float(1 / F(x.hi))) and float(r.hi) <= up(float(1 / F(x.lo)))


def test_minimum_getitem_and_nonnegative():
    x = Interval(np.array([1.0, -2.0, np.nan]), np.array([3.0, 5.0, np.nan]))
    y = Interval(np.array([0.5, -1.0, 0.0]), np.array([4.0, 2.0, 1.0]))
    m = x.minimum(y)
    assert m.lo[:2].tolist() == [0.5, -2.0] and m.hi[:2].tolist() == [3.0, 2.0]
    clamped = x.nonnegative()
    assert clamped.lo.tolist() == [1.0, 0.0, 0.0] and clamped.hi.tolist()[:2] == [3.0, 5.0] and clamped.hi[2] == np.inf
    assert x[1].lo == -2.0 and x[1].hi == 5.0


@given(st.integers(-(2**80), 2**80), st.integers(-1200, 1000))
def test_of_encloses_an_exact_dyadic_within_an_ulp(value, exp):
    exact = Fraction(value) * Fraction(2) ** exp
    box = Interval.of(Dyadic(np.array([value], dtype=object), exp))
    lo, hi = float(box.lo[0]), float(box.hi[0])
    assert Fraction(lo) <= exact if lo != -np.inf else True
    assert exact <= Fraction(hi) if hi != np.inf else True
    if abs(exact) < Fraction(2) ** 1023:
        assert lo >= down(float(exact)) and hi <= up(float(exact))
    else:  # saturated: the unbounded side is infinite
        assert (hi == np.inf) if exact > 0 else (lo == -np.inf)


def test_floor_and_ceil_of_exact_floats_are_the_floats_themselves():
    for v in (1.0, 0.0, -3.5, 2.0**-1074, 1e300):
        assert _floor_float(arb(v)) == v and _ceil_float(arb(v)) == v
    with precision(128):
        between = arb(1) + arb(2) ** -60  # exact at 128 bits, strictly between 1 and the next float
        assert _floor_float(between) == 1.0 and _ceil_float(between) == up(1.0)
        assert _floor_float(-between) == -up(1.0) and _ceil_float(-between) == -1.0


@pytest.mark.parametrize("bits", [128, 12])
def test_exp_tables_enclose_exp_at_any_working_precision(bits):
    """The table ends are certified at any arb precision (12 bits: wide balls, still enclosing)."""
    mpmath.mp.prec = 300
    ints, coarse, fine, tail = build_exp_tables(bits)
    assert len(ints[0]) == EXP_MAX - EXP_MIN + 1 and len(coarse[0]) >= 256 and len(fine[0]) >= 256
    checks = [(ints, lambda i: mpmath.mpf(EXP_MIN + i)), (coarse, lambda i: mpmath.mpf(i) / 256),
              (fine, lambda i: mpmath.mpf(i) / 65536), (tail, lambda i: mpmath.mpf(1) / 65536)]
    for (lo, hi), point in checks:
        for i in list(range(0, len(lo), 7)) + [len(lo) - 1]:
            true = mpmath.exp(point(i))
            assert mpmath.mpf(lo[i]) <= true <= mpmath.mpf(hi[i])
            if bits == 128:  # tight: the two floats around e^x (equal when e^x is a float)
                assert hi[i] == lo[i] == 1.0 if true == 1 else (up(lo[i]) == hi[i] or true < 1e-300)


EDGES = [EXP_MIN - 0.5, EXP_MIN, EXP_MIN + 2**-20, -745.2, -708.5, -1e-300, 0.0, 2**-17, 1.0, 700.25,
         EXP_MAX - 2**-16, EXP_MAX - 0.5, float(EXP_MAX), EXP_MAX + 0.5]


@pytest.mark.parametrize("x", EDGES)
def test_exp_encloses_exp_at_the_edges_of_its_tables(x):
    mpmath.mp.prec = 300
    true = mpmath.exp(mpmath.mpf(x))
    lo, hi = float(exp_lower(np.array([x]))[0]), float(exp_upper(np.array([x]))[0])
    assert mpmath.mpf(lo) <= true <= mpmath.mpf(hi)
    if -700 < x < EXP_MAX:  # and tight: a few ulps plus the 2^-16 grid step
        assert mpmath.mpf(hi) - mpmath.mpf(lo) <= true * mpmath.mpf(2) ** -15


def test_exp_of_non_finite_inputs_is_the_trivial_enclosure():
    x = np.array([np.nan, np.inf, -np.inf])
    top = build_exp_tables()[0][0][-1]  # the certified lower end of e^EXP_MAX
    assert exp_lower(x).tolist() == [0.0, top, 0.0]
    assert exp_upper(x).tolist()[:2] == [np.inf, np.inf] and 0 <= exp_upper(x)[2] <= 2.0**-1074 * 2


@given(st.floats(-1200, 800))
def test_interval_exp_encloses_exp_at_random_points(x):
    mpmath.mp.prec = 300
    true = mpmath.exp(mpmath.mpf(x))
    box = Interval(x).exp()
    assert mpmath.mpf(float(box.lo)) <= true <= mpmath.mpf(float(box.hi))
    if -700 < x < EXP_MAX:
        assert mpmath.mpf(float(box.hi)) - mpmath.mpf(float(box.lo)) <= true * mpmath.mpf(2) ** -15


def test_next_up_and_next_down_are_nextafter_on_every_kind_of_float():
    from compact_proofs.checker.interval import next_down, next_up

    rng = np.random.default_rng(0)
    powers = np.ldexp(1.0, np.arange(-1074, 1024))
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 2.0**-969, 2.0**-970, np.finfo(float).max, np.finfo(float).tiny]
    for _ in range(20):
        bits = rng.integers(0, 2**64, 200_000, dtype=np.uint64).view(np.float64)  # every exponent, NaNs included
        x = np.concatenate([bits, powers, np.nextafter(powers, 0), np.nextafter(powers, np.inf), special])
        x = np.concatenate([x, -x])
        with np.errstate(all="ignore"):
            assert np.array_equal(next_up(x), np.nextafter(x, np.inf), equal_nan=True)
            assert np.array_equal(next_down(x), np.nextafter(x, -np.inf), equal_nan=True)
    assert next_up(np.float64(1.0)) == np.nextafter(1.0, 2.0) and next_down(1.0) == np.nextafter(1.0, 0.0)

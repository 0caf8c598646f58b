"""Float64 balls: every operation contains the exact result (Fractions; mpmath for exp), for any
point of its input balls, with a radius within a few ulps; non-finite balls decide nothing."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compact_proofs.checker.ball import Ball, contract

F = lambda x: Fraction(float(x))  # noqa: E731
values = st.floats(-1e6, 1e6) | st.sampled_from([0.0, -0.0, 5e-324, 1e-300, 2.0**-1022])
radii = st.floats(0, 1e-3) | st.just(0.0)


def points(ball: Ball, pick: list[int]) -> np.ndarray:
    """An extreme point of each entry: mid - rad, mid or mid + rad, as Fractions."""
    flat_mid, flat_rad = ball.mid.ravel(), ball.rad.ravel()
    return np.array([F(m) + (p - 1) * F(r) for m, r, p in zip(flat_mid, flat_rad, pick)], dtype=object).reshape(ball.shape)


def inside(ball: Ball, exact: np.ndarray) -> bool:
    return all(F(lo) <= e <= F(hi) for lo, hi, e in zip(ball.lower().ravel(), ball.upper().ravel(), exact.ravel()))


@given(st.data(), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3))
def test_contract_contains_every_product_of_points(data, n, k, m):
    a = Ball(np.array(data.draw(st.lists(values, min_size=n * k, max_size=n * k))).reshape(n, k),
             np.array(data.draw(st.lists(radii, min_size=n * k, max_size=n * k))).reshape(n, k))
    b = Ball(np.array(data.draw(st.lists(values, min_size=k * m, max_size=k * m))).reshape(k, m),
             np.array(data.draw(st.lists(radii, min_size=k * m, max_size=k * m))).reshape(k, m))
    out = contract(a, b, "ik,kj->ij")
    for _ in range(3):
        x = points(a, data.draw(st.lists(st.integers(0, 2), min_size=n * k, max_size=n * k)))
        y = points(b, data.draw(st.lists(st.integers(0, 2), min_size=k * m, max_size=k * m)))
        assert inside(out, x.dot(y))
    assert np.all(out.rad <= 2 * (np.abs(a.mid) @ b.rad + a.rad @ (np.abs(b.mid) + b.rad)) + 1e-12 * (np.abs(a.mid) @ np.abs(b.mid)) + 1e-300)


@given(values, radii, values, radii)
def test_add_and_subtract_contain_the_exact_result(m1, r1, m2, r2):
    a, b = Ball(np.array([m1]), np.array([r1])), Ball(np.array([m2]), np.array([r2]))
    for s in (-1, 0, 1):
        for t in (-1, 0, 1):
            x, y = F(m1) + s * F(r1), F(m2) + t * F(r2)
            assert inside(a + b, np.array([x + y], dtype=object)) and inside(a - b, np.array([x - y], dtype=object))


@given(st.floats(-700, 700), st.floats(0, 1e-2))
def test_exp_contains_exp_of_every_point_and_is_tight(m, r):
    ball = Ball(np.array([m]), np.array([r])).exp()
    mpmath.mp.prec = 200
    for x in (F(m) - F(r), F(m), F(m) + F(r)):
        e = mpmath.exp(mpmath.mpf(x.numerator) / x.denominator)
        assert mpmath.mpf(float(ball.lower()[0])) <= e <= mpmath.mpf(float(ball.upper()[0]))
    if r == 0:
        assert ball.rad[0] <= 1e-15 * (4 + 2 * abs(m)) * ball.mid[0]  # the ends step one ulp outward: |m| 2^-52 relative


@given(st.floats(1e-300, 1e300), st.floats(0, 1))
def test_reciprocal_of_positive_balls(m, fraction):
    r = m * fraction * 0.99
    ball = Ball(np.array([m]), np.array([r])).reciprocal()
    for x in (F(m) - F(r), F(m), F(m) + F(r)):
        if x > 0:
            assert F(ball.lower()[0]) <= 1 / x <= F(ball.upper()[0])


def test_non_finite_balls_decide_nothing():
    ball = Ball(np.array([np.inf, np.nan, 1.0, 1.0]), np.array([0.0, 0.0, np.inf, np.nan]))
    assert (ball.lower() == -np.inf).all() and (ball.upper() == np.inf).all()
    assert np.isinf(Ball(np.array([0.0]), np.array([1.0])).reciprocal().rad).all()  # reaches zero


def test_contract_rejects_bad_subscripts():
    with pytest.raises(ValueError):
        contract(Ball(np.zeros((2, 2))), np.zeros((2, 2)), "ij,jk")

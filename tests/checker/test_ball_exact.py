"""ball.contract_exact (a ball times an exact array, one radius product): it contains the exact
product for every point of the ball (Fractions), and its radius is at most contract's plus a
rounding or two."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from compact_proofs.checker.ball import Ball, contract, contract_exact
from tests.checker.test_ball import F, inside, points, radii, values


@given(st.data(), st.integers(1, 3), st.integers(1, 5), st.integers(1, 3))
def test_contract_exact_contains_every_product_of_points(data, n, k, m):
    a = Ball(np.array(data.draw(st.lists(values, min_size=n * k, max_size=n * k))).reshape(n, k),
             np.array(data.draw(st.lists(radii, min_size=n * k, max_size=n * k))).reshape(n, k))
    b = np.array(data.draw(st.lists(values, min_size=k * m, max_size=k * m))).reshape(k, m)
    out = contract_exact(a, b, "ik,kj->ij")
    for _ in range(3):
        x = points(a, data.draw(st.lists(st.integers(0, 2), min_size=n * k, max_size=n * k)))
        exact = np.array([[sum((x[i, t] * F(b[t, j]) for t in range(k)), Fraction(0)) for j in range(m)] for i in range(n)],
                         dtype=object)
        assert inside(out, exact)
    reference = contract(a, Ball(b), "ik,kj->ij")
    assert np.array_equal(out.mid, reference.mid)
    assert np.all(out.rad <= reference.rad * (1 + 2.0**-40) + 2.0**-1000)


def test_contract_exact_with_cancellation_and_subnormals():
    a = Ball(np.array([[1e16, 1.0, -1e16, 5e-324]]), np.array([[0.0, 1e-300, 0.0, 0.0]]))
    b = np.array([[1.0], [1.0], [1.0], [0.5]])
    out = contract_exact(a, b, "ik,kj->ij")
    exact = Fraction(10**16) + 1 - Fraction(10**16) + Fraction(5e-324) / 2
    assert F(out.lower()[0, 0]) <= exact - Fraction(1e-300) and exact + Fraction(1e-300) <= F(out.upper()[0, 0])


@given(st.lists(values, min_size=1, max_size=8), st.lists(radii, min_size=8, max_size=8), st.lists(st.integers(0, 2), min_size=8, max_size=8))
def test_relu_contains_relu_of_every_point(mids, rads, pick):
    from compact_proofs.checker.v3.numerics import relu

    ball = Ball(np.array(mids), np.array(rads[: len(mids)]))
    x = points(ball, pick[: len(mids)])
    out = relu(ball)
    assert inside(out, np.array([max(v, Fraction(0)) for v in x], dtype=object))

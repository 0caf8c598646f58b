"""Exact dyadic arithmetic against Fractions."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from compact_proofs.checker.exact import Dyadic
from tests.helpers import fractions

finite64 = st.floats(allow_nan=False, allow_infinity=False, width=64)
finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)



@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=5), elements=finite64))
def test_from_floats_is_exact(array):
    exact = fractions(Dyadic.from_floats(array))
    assert all(exact.ravel()[i] == Fraction(float(x)) for i, x in enumerate(array.ravel()))


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.data())
def test_matmul_add_sub_match_fractions(r, k, c, data):
    a = data.draw(hnp.arrays(np.float32, (r, k), elements=finite32))
    b = data.draw(hnp.arrays(np.float32, (k, c), elements=finite32))
    e = data.draw(hnp.arrays(np.float64, (r, c), elements=finite64))
    A, B, E = (Dyadic.from_floats(x) for x in (a, b, e))
    fa, fb, fe = (np.vectorize(Fraction, otypes=[object])(x.astype(np.float64)) for x in (a, b, e))
    assert (fractions(A @ B) == fa.dot(fb)).all()
    assert (fractions(A @ B + E) == fa.dot(fb) + fe).all()
    assert (fractions(E - A @ B) == fe - fa.dot(fb)).all()


@given(st.integers(-(2**200), 2**200), st.integers(-1200, 100))
def test_to_float_is_correctly_rounded(value, exp):
    d = Dyadic(np.array([value], dtype=object), exp)
    exact = Fraction(value) * Fraction(2) ** exp
    if abs(exact) >= 2**1023:
        return
    assert d.to_float()[0] == float(exact)  # Fraction -> float rounds to nearest


@given(st.lists(st.integers(-(2**120), 2**120), min_size=1, max_size=6), st.integers(-1200, 100))
def test_to_float_of_mixed_magnitudes_is_correctly_rounded(values, exp):
    """Arrays whose entries all scale to normal floats take a vectorised path; the rest one by one."""
    d = Dyadic(np.array(values, dtype=object), exp)
    exact = [Fraction(v) * Fraction(2) ** exp for v in values]
    if any(abs(e) >= 2**1023 for e in exact):
        return
    assert d.to_float().tolist() == [float(e) for e in exact]


def test_to_float_saturates_each_sign_or_raises():
    import pytest

    huge = Dyadic(np.array([[1, -1, 3]], dtype=object), 1100)
    assert huge.to_float(saturate=True).tolist() == [[np.inf, -np.inf, np.inf]]
    with pytest.raises(OverflowError):
        huge.to_float()


def test_matmul_with_an_empty_dimension_and_mismatched_shapes():
    import pytest

    a, b = Dyadic.from_floats(np.ones((2, 0))), Dyadic.from_floats(np.ones((0, 3)))
    product = a @ b
    assert product.shape == (2, 3) and (fractions(product) == 0).all()
    assert (Dyadic.from_floats(np.ones((0, 2))) @ Dyadic.from_floats(np.ones((2, 3)))).shape == (0, 3)
    with pytest.raises(ValueError, match="^shape mismatch in matmul$"):
        Dyadic.from_floats(np.ones((2, 3))) @ Dyadic.from_floats(np.ones((2, 3)))


def test_reductions_stay_exact_python_integers():
    d = Dyadic(np.array([[5, -(2**70)], [3, 1]], dtype=object), -2)
    for reduced in (d.max(), d.min(), d.max(axis=1), d.min(axis=0)):
        assert reduced.ints.dtype == object
    assert int(d.max().at_exp(-102)) == 5 << 100 and fractions(d.min(axis=1)).tolist() == [Fraction(-(2**68)), Fraction(1, 4)]

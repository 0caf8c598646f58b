"""Rigorous exp and exact signs, against an independent rational implementation."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest
from flint import arb, fmpq
from hypothesis import given
from hypothesis import strategies as st

from compact_proofs.checker.enclosure import dyadic_ball, exp_sum_sign, exp_table, precision
from compact_proofs.checker.exact import Dyadic
from tests.reference.evaluator import exp_sum_sign as reference_sign
from tests.reference.rational_exp import exp_enclosure, scaled_exp_enclosure


def exact(ball: arb) -> Fraction:
    man, exp = ball.mid().man_exp()
    return Fraction(int(man)) * Fraction(2) ** int(exp)


def ball_contains_interval(ball: arb, lo: Fraction, hi: Fraction) -> bool:
    return exact(ball.lower()) <= lo and hi <= exact(ball.upper())


@pytest.mark.parametrize("x", [float.fromhex("-0x1.c979f14be0b8cp+2"), -30.0, -1e-300, 0.0, 1e-3, 20.5, 700.0])
def test_arb_exp_contains_the_true_value_including_mpmath_issue_1181(x):
    lo, hi = exp_enclosure(Fraction(x), 300)
    with precision(128):
        assert ball_contains_interval(arb(x).exp(), lo, hi)


@given(st.integers(-(2**40), 2**40), st.integers(-60, -30), st.integers(1, 64))  # |score| <= 2^10
def test_two_exp_implementations_overlap(value, exp, d_head):
    lo, hi = scaled_exp_enclosure(Fraction(value) * Fraction(2) ** exp, d_head, 96)
    with precision(96):
        ball = (dyadic_ball(value, exp) * arb(d_head).rsqrt()).exp()
        rational = arb(fmpq(lo.numerator, lo.denominator)).union(arb(fmpq(hi.numerator, hi.denominator)))
        assert ball.overlaps(rational)


@given(st.lists(st.integers(-(2**30), 2**30), min_size=1, max_size=6), st.integers(-40, 0), st.integers(1, 16), st.data())
def test_exp_table_meets_its_error_bound(row, exp, d_head, data):
    scores = Dyadic(np.array([row], dtype=object), exp)
    table = exp_table(scores, d_head)
    mpmath.mp.prec = 400
    top = max(row)
    for j, s in enumerate(row):
        true = mpmath.exp(mpmath.mpf(s - top) * mpmath.mpf(2) ** exp / mpmath.sqrt(d_head))
        approx = mpmath.mpf(table[0, j])
        assert abs(approx - true) <= true * mpmath.mpf(2) ** -52 + mpmath.mpf(2) ** -1074
        assert 0 <= table[0, j] <= 1


small = st.integers(-8, 8)


@given(st.lists(st.tuples(small, st.integers(-(2**60), 2**60) | small), min_size=1, max_size=6),
       st.integers(-6, 2), st.integers(1, 9))
def test_exp_sum_sign_matches_independent_reference(terms, exp, d_head):
    scaled = [(Fraction(s) * Fraction(2) ** exp, Fraction(c)) for s, c in terms]
    assert exp_sum_sign(terms, exp, d_head) == reference_sign(scaled, d_head)


def test_exact_zero_from_cancelling_groups():
    # 3 e^{a} - 3 e^{a} + 0 e^{b}: merged coefficients all vanish -> exactly zero
    assert exp_sum_sign([(5, 3), (1, 0), (5, -3)], -2, 4) == 0


def test_near_cancellation_needs_more_precision():
    # e^{1/2} * 2^70 vs the integer just below/above it: settled only at high precision
    with precision(300):
        man, exp = ((arb(1) / 2).exp() * 2**70).floor().mid().man_exp()
    floor = int(man) << int(exp)
    assert exp_sum_sign([(1, 2**70), (0, -floor)], -1, 1) == 1
    assert exp_sum_sign([(1, 2**70), (0, -(floor + 1))], -1, 1) == -1


@pytest.mark.parametrize("terms, sign", [([(3, 1)], 1), ([(3, -1)], -1), ([(3, 2), (3, -2), (5, 1)], 1), ([(0, 0)], 0)])
def test_exp_sum_sign_of_a_single_merged_term_is_its_coefficients_sign(terms, sign):
    assert exp_sum_sign(terms, -2, 4) == sign


def test_a_sum_unsettled_at_the_first_precision_is_settled_later_not_guessed():
    # 2^62 e^{-2/16} - floor(2^62 e^{-2/16}): positive, below the 64-bit ball's radius and below 1
    assert exp_sum_sign([(0, 2**62), (2, -4069798626954855183)], -4, 1) == 1
    assert exp_sum_sign([(0, -(2**62)), (2, 4069798626954855183)], -4, 1) == -1


def test_exp_table_shifts_each_row_by_its_own_maximum():
    scores = Dyadic(np.array([[0, 5, 3], [40, 10, 40]], dtype=object), -3)
    table = exp_table(scores, 2)
    assert table.max(axis=1).tolist() == [1.0, 1.0] and table[1, 0] == table[1, 2] == 1.0


def test_exp_table_entries_it_cannot_certify_are_nan_not_guessed(monkeypatch):
    """At a working precision too low to certify 2^-52, entries become NaN (undecided downstream);
    whatever is certified still meets the bound."""
    from compact_proofs.checker import enclosure

    monkeypatch.setattr(enclosure, "WORKING_PREC", 20)
    row = [0, -3, -17, -1000, 5]
    table = exp_table(Dyadic(np.array([row], dtype=object), -4), 3)
    assert np.isnan(table).any()
    mpmath.mp.prec = 300
    for s, w in zip(row, table[0]):
        if not np.isnan(w):
            true = mpmath.exp(mpmath.mpf(s - max(row)) / 16 / mpmath.sqrt(3))
            assert abs(mpmath.mpf(w) - true) <= true * mpmath.mpf(2) ** -52 + mpmath.mpf(2) ** -1074

"""The row-spread bounds of the QK error, each against an independent Fraction evaluation of the
same inequality, and against the true spread of the product it bounds."""

from __future__ import annotations

from fractions import Fraction
from math import isqrt

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from compact_proofs.checker.exact import Dyadic
from compact_proofs.checker.context import Evidence
from compact_proofs.checker.exact import mean_rows
from compact_proofs.checker.strategies.subcubic.attention_error import HANDLINGS, _root_up, qk_split, recursive_bound, split_bound, svd_bound
from compact_proofs.checker.weights import model_from_weights
from compact_proofs.generator.proving.strategies.subcubic import _hints
from tests.helpers import fractions, rounded_mean_row, row_spreads
from tests.models import build

entries = st.floats(-4, 4, allow_nan=False, width=32)



def chain(ms: list[np.ndarray]) -> np.ndarray:
    out = ms[0]
    for m in ms[1:]:
        out = out.dot(m)
    return out


@st.composite
def factor_lists(draw, min_factors=2, max_factors=4):
    n = draw(st.integers(min_factors, max_factors))
    dims = draw(st.lists(st.integers(1, 4), min_size=n + 1, max_size=n + 1))
    return [draw(hnp.arrays(np.float32, (dims[i], dims[i + 1]), elements=entries)) for i in range(n)]


def as_dyadic(factors):
    return [Dyadic.from_floats(f) for f in factors]


def as_fractions(factors):
    return [np.vectorize(lambda x: Fraction(float(x)), otypes=[object])(f) for f in factors]


@given(factor_lists(), st.integers(0, 4))
def test_recursive_bound_is_the_recursion_and_bounds_the_product(factors, levels):
    got = fractions(recursive_bound(as_dyadic(factors), levels)).ravel()
    fs = as_fractions(factors)
    expected = row_spreads(fs[-1])
    for level in range(len(fs) - 2, -1, -1):
        f = fs[level]
        if level < levels:
            mu = rounded_mean_row(f)
            expected = abs(f - mu[None, :]).dot(expected) + row_spreads(chain([mu[None, :]] + fs[level + 1 :]))[0]
        else:
            expected = abs(f).dot(expected)
    assert list(got) == list(expected)
    assert all(g >= s for g, s in zip(got, row_spreads(chain(fs))))


@given(factor_lists(), st.booleans())
def test_split_bound_is_the_best_split_and_bounds_the_product(factors, centred):
    got = fractions(split_bound(as_dyadic(factors), centred)).ravel()
    fs = as_fractions(factors)
    candidates = []
    for j in range(1, len(fs)):
        left, right = chain(fs[:j]), chain(fs[j:])
        if centred:
            mu = rounded_mean_row(left)
            candidates.append(abs(left - mu[None, :]).dot(row_spreads(right)) + row_spreads(mu[None, :].dot(right))[0])
        else:
            candidates.append(abs(left).dot(row_spreads(right)))
    assert list(got) == [min(c[q] for c in candidates) for q in range(len(got))]
    assert all(g >= s for g, s in zip(got, row_spreads(chain(fs))))


@given(st.integers(0, 2**200), st.integers(-300, 300), st.sampled_from([2, 4]))
def test_root_up_is_the_smallest_root_at_its_exponent(value, exp, degree):
    root, e = _root_up(value, exp, degree)
    x = Fraction(value) * Fraction(2) ** exp
    assert (Fraction(root) * Fraction(2) ** e) ** degree >= x  # an upper bound of x^(1/degree)
    assert root == 0 or (Fraction(root - 1) * Fraction(2) ** e) ** degree < x  # the least one at exponent e
    assert e * degree <= exp  # at least the input's resolution: about 64 bits accurate


@pytest.mark.parametrize("value, exp, degree, root", [(16, 0, 4, 2), (81 * 2**8, -4, 4, 6), (9, 2, 2, 6)])
def test_root_up_of_exact_powers_is_exact(value, exp, degree, root):
    r, e = _root_up(value, exp, degree)
    assert Fraction(r) * Fraction(2) ** e == root


@given(factor_lists(2, 2).filter(lambda fs: fs[0].shape[0] >= 1))
def test_svd_bound_is_the_gram_norm_root_and_bounds_every_row_spread(factors):
    left, right = as_dyadic(factors)
    got = fractions(svd_bound(left, right)).ravel()
    assert len(got) == factors[0].shape[0] and len(set(got)) == 1
    L, R = as_fractions(factors)
    gram = L.T.dot(L).dot(R.dot(R.T))
    g4 = chain([gram] * 4)
    norm = max(sum(abs(v) for v in row) for row in g4)  # |G^4|_inf >= sigma_1(LR)^8
    bound = got[0]
    assert bound**8 >= 16 * norm  # bound >= sqrt(2) |G^4|^(1/8) >= sqrt(2) sigma_1
    assert norm == 0 or bound**8 <= 16 * norm * (1 + Fraction(1, 2**40))  # and no looser than rounding
    product = L.dot(R)
    assert all(bound >= s for s in row_spreads(product))


def test_isqrt_floor_of_floor_is_the_fourth_root_floor():
    """The identity _root_up relies on: floor(sqrt(floor(sqrt(x)))) = floor(x^(1/4))."""
    for x in [0, 1, 15, 16, 17, 2**64 - 1, 2**64, 3**40 + 5]:
        r = isqrt(isqrt(x))
        assert r**4 <= x < (r + 1) ** 4


def _fixed_models():
    return [build("gaussian", 4, V=5, N=3, D=4, H=3, scale=1.0, biases=True, dtype=np.float32),
            build("coarse", 9, V=4, N=4, D=3, H=2, scale=1.0, biases=True, dtype=np.float64)]


@pytest.mark.parametrize("handling", HANDLINGS)
def test_qk_split_is_the_true_token_scores_plus_an_error_within_its_spread(handling):
    """approx + err = EQKE'[q, k] = (Ebar[q] W_Q + b_Q).((W_E[k] + c) W_K + b_K), the key centre c
    being the mean position row, computed here in Fractions; every row of err ranges within spread[q]."""
    for weights in _fixed_models():
        model = model_from_weights(weights)
        V, N = model.d_vocab, model.n_ctx
        W = {k: fractions(getattr(model, k)) for k in ("W_E", "W_pos", "W_Q", "W_K", "b_Q", "b_K")}
        centre = fractions(mean_rows(model.W_pos))[0]
        e_bar = W["W_E"] + W["W_pos"][N - 1][None, :]
        left = e_bar.dot(W["W_Q"]) + W["b_Q"]
        right = ((W["W_E"] + centre[None, :]).dot(W["W_K"]) + W["b_K"]).T
        true = left.dot(right)
        variant = f"subcubic/max_diff/mean_query+diff/{handling}"
        hints = _hints(model, variant)
        e_bar_d = model.W_E + Dyadic(np.repeat(model.W_pos.ints[N - 1 :], V, axis=0), model.W_pos.exp)
        split = qk_split(handling, model, e_bar_d, mean_rows(model.W_pos), Evidence(hints))
        err = true - fractions(split.approx)
        spread = fractions(split.spread)[:, 0]
        assert len(spread) == V and all(max(err[q]) - min(err[q]) <= spread[q] for q in range(V))
        if handling in ("max_diff_exact", "exact_EQKE+max_diff_exact"):  # exact row ranges
            assert all(max(err[q]) - min(err[q]) == spread[q] for q in range(V))
        if handling == "exact_EQKE+max_diff_exact":
            assert (err == 0).all()
        if handling in ("max_diff", "mean+max_diff", "svd"):  # the residual of the rank-two hint, bounded as documented
            u = np.array([Fraction(float(x)) for x in hints["eqke_u"]], dtype=object)[:, None]
            v = np.array([Fraction(float(x)) for x in hints["eqke_v"]], dtype=object)[:, None]
            err_left, err_right = left - u.dot(u.T.dot(left)), right - right.dot(v).dot(v.T)
            assert (err == err_left.dot(err_right)).all()
            if handling == "max_diff":
                assert list(spread) == list(abs(err_left).dot(row_spreads(err_right)))
            elif handling == "mean+max_diff":
                mu = rounded_mean_row(err_left)
                centred = abs(err_left - mu[None, :]).dot(row_spreads(err_right)) + row_spreads(mu[None, :].dot(err_right))[0]
                assert list(spread) == list(centred)

"""The score tiers (query_slot+ov_tiers+levels) against the model itself: every tier value bounds
every allowed token's value, every tier attention bound bounds the attention of every input of
the cell (exact scores, rational exp enclosures), and every cell bound, for any levels, anchors
and smallest gaps, bounds every input's largest wrong-logit margin exactly (tests/reference)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from compact_proofs.checker.context import Evidence
from compact_proofs.checker.exact import Dyadic
from compact_proofs.checker.interval import Interval
from compact_proofs.checker.strategies import subcubic
from compact_proofs.checker.strategies.subcubic import tiers
from compact_proofs.checker.weights import model_from_weights
from compact_proofs.generator.proving.strategies.subcubic import _hints
from tests.models import tiny_models
from tests.reference.evaluator import ReferenceModel, exp_sum_sign

TIERED = [n for n in subcubic.NAMES if subcubic.axes(n)[1] == subcubic.TIERED]


def test_the_widths_are_the_powers_of_two_up_to_the_root():
    assert tiers.widths(1) == [1] and tiers.widths(4) == [1, 2] and tiers.widths(12) == [1, 2, 4]
    assert tiers.widths(64) == [1, 2, 4, 8] and tiers.widths(512) == [1, 2, 4, 8, 16] and tiers.widths(2048) == [1, 2, 4, 8, 16, 32]


@given(st.integers(1, 20), st.integers(0, 2**32 - 1))
def test_tier_values_bound_every_token_of_their_tiers_and_do_not_decrease(V, seed):
    """U_j encloses max over tiers 1..j of EVOU[k, o] - EVOU[k, m] (exact integers) for the near
    tiers, and bounds it for the last; U_1 <= ... <= U_{R+1} (lower ends too)."""
    rng = np.random.default_rng(seed)
    ints = rng.integers(-50, 50, size=(V, V)).astype(object)
    ints[np.arange(V), np.arange(V)] += rng.integers(0, 200, size=V)  # a copying diagonal
    evou = Dyadic(ints, -3)
    blocks = subcubic.OVBlocks(evou)
    spread = np.maximum.accumulate((ints.max(axis=1) - ints.min(axis=1)).astype(np.int64)) / 8
    table = tiers.OVTiers(evou, blocks, Interval(spread, spread))
    widths = tiers.widths(V)
    m, top = np.repeat(np.arange(V), V), np.tile(np.arange(V), V)
    enclosed = table.enclose(m, top)
    assert enclosed.shape == (len(m), len(widths) + 1, V)
    assert (np.diff(enclosed.lo, axis=1) >= 0).all() and (np.diff(enclosed.hi, axis=1) >= 0).all()
    for r in range(len(m)):
        diff = lambda k: (ints[k].astype(np.int64) - int(ints[k, m[r]])) / 8  # noqa: E731
        previous = 0
        for j, w in enumerate(widths):
            tokens = [k for k in range(top[r] - w + 1, top[r] + 1) if k >= 0]
            exact = np.max([diff(k) for k in tokens], axis=0)
            assert (enclosed.lo[r, j] <= exact).all() and (exact <= enclosed.hi[r, j]).all()
            previous = w
        every = np.max([diff(k) for k in range(top[r] + 1)], axis=0)
        assert (every <= enclosed.hi[r, -1]).all()
        if top[r] - previous < 0:  # no far tier: the last is the near tiers' exactly
            assert (enclosed.lo[r, -1] <= every).all()


def _inputs_by_cell(V: int, N: int):
    """Every input with its cell (q, m, c) and own gap (m - its largest non-max token; none: V + 1)."""
    for x in itertools.product(range(V), repeat=N):
        q, m = x[-1], max(x)
        nonmax = [t for t in x if t != m]
        c = len(nonmax)
        if c:
            yield x, q, m, c, m - max(nonmax)


@settings(max_examples=40, deadline=None)
@given(weights=tiny_models(max_inputs=128), variant=st.sampled_from(TIERED))
def test_tier_attention_bounds_the_attention_of_every_input(weights, variant):
    """For every input of a cell at gap g (g <= its own gap) and every row top top_row >= m - g, the
    attention on the slots whose tokens are <= top_row - w_{j-1} is at most the checker's A_j (exact
    scores; the attention's lower end from rational exp enclosures must not exceed the bound)."""
    model = model_from_weights(weights)
    bounds = subcubic.Bounds(model, variant, Evidence(_hints(model, variant)))
    ref = ReferenceModel(weights)
    V, N = model.d_vocab, model.n_ctx
    cases = [(x, q, m, c, g, top_row) for x, q, m, c, own in _inputs_by_cell(V, N)
             for g in range(1, own + 1) for top_row in range(m - g, m) if q == m or q <= m - g]
    if not cases:
        return
    q, m, c, g, top_row = (np.array([case[i] for case in cases], dtype=np.int64) for i in range(1, 6))
    got = bounds.tier_attention(q, m, c, g, top_row)
    for i, (x, qq, mm, _, _, tr) in enumerate(cases):
        scores = [ref._score(qq, t, p) for p, t in enumerate(x)]
        top = max(scores)
        enclosures = [ref._exp(s - top, 128) for s in scores]
        for j, w in enumerate(bounds.tier_widths):
            inside = [p for p, t in enumerate(x) if t != mm and t <= tr - w]
            low = sum((enclosures[p][0] for p in inside), Fraction(0))
            rest = sum((enclosures[p][1] for p in range(N) if p not in inside), Fraction(0))
            assert Fraction(float(got[i, j])) >= low / (low + rest), (x, g, tr, j)


def _largest_margin_at_most(ref: ReferenceModel, x, bound: float) -> bool:
    """logits[o] - logits[m] <= bound for every o != m, decided exactly: with
    logits[m] - logits[o] = sum_i a_i c_i, the sum of e^{u_i} (c_i + bound) must not be negative."""
    scores, coeffs = ref.margin_terms(tuple(x))
    m, b = max(x), Fraction(bound)
    return all(exp_sum_sign(list(zip(scores, [ci + b for ci in coeffs[o]])), ref.H, ref._exp) >= 0 for o in range(ref.V) if o != m)


@settings(max_examples=60, deadline=None)
@given(weights=tiny_models(max_inputs=81, kinds=("gaussian", "coarse", "uniform-attention", "tie", "near-tie")),
       variant=st.sampled_from(TIERED), data=st.data())
def test_every_cell_bound_bounds_every_input_whatever_the_hints(weights, variant, data):
    """For random smallest gaps, anchors and levels (anything a certificate may hold), every cell
    bound at every gap is at least the largest wrong-logit margin of every input in the cell."""
    model = model_from_weights(weights)
    V, N = model.d_vocab, model.n_ctx
    if V < 2:
        return
    bounds = subcubic.Bounds(model, variant, Evidence(_hints(model, variant)))
    ref = ReferenceModel(weights)
    T = len(bounds.tier_widths)
    g_star = np.array([[data.draw(st.integers(1, max(mm, 1))) for _ in range(N)] for mm in range(V)], dtype=np.int64)
    J, L = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    unit = st.floats(0, 1)
    anchors = np.array(data.draw(st.lists(st.lists(unit, min_size=J, max_size=J, unique=True).map(sorted), min_size=V * N, max_size=V * N))).reshape(V, N, J)
    levels = np.sort(np.array(data.draw(st.lists(unit, min_size=V * N * L * T, max_size=V * N * L * T))).reshape(V, N, L, T), axis=2)
    if data.draw(st.booleans()):  # every level zero: every tier's attention is an excess (A_j - 0) step_max_j
        levels[:] = 0.0
    tables = bounds.chi_tables(g_star, anchors, levels)
    cases = [(x, q, m, c, g) for x, q, m, c, own in _inputs_by_cell(V, N) for g in range(g_star[m, c], own + 1) if q == m or q <= m - g]
    if not cases:
        return
    q, m, c, g = (np.array([case[i] for case in cases], dtype=np.int64) for i in range(1, 5))
    got = bounds.cell_bounds(q, m, c, g, tables, anchors)
    for i, (x, *_ ) in enumerate(cases):
        if np.isfinite(got[i]):
            assert _largest_margin_at_most(ref, x, float(got[i])), (x, cases[i][1:], got[i])

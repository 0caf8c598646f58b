"""The subcubic cell bounds against a second, independent evaluation of the formulas in
checker/strategies/subcubic/__init__.py and eupu.py: exact Fractions for every linear quantity,
300-bit mpmath for exp. The checker's outward-rounded float intervals must contain the oracle's
value (soundness) and stay within a relative 1e-9 of it (2^-13 where exp enters: interval.py's exp is exact to
2^-16), so a changed formula cannot hide in slack."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compact_proofs.checker.context import Evidence
from compact_proofs.checker.exact import Dyadic
from compact_proofs.checker.strategies import subcubic
from compact_proofs.checker.strategies.subcubic import attention_error, eupu
from compact_proofs.checker.weights import model_from_weights
from compact_proofs.generator.proving.strategies.subcubic import _hints
from tests.helpers import fractions, rounded_mean_row, row_spreads
from tests.models import build, tiny_models

TOL = 1e-9
EXP_TOL = 2.0**-13
ULP = 2.0**-50  # a few ulps of 1: the divisions near 1 round to the float grid



def mpf(x: Fraction) -> mpmath.mpf:
    return mpmath.mpf(x.numerator) / x.denominator


def close_above(got: float, true, scale) -> bool:
    """got >= true, and not by more than TOL relative to `scale` (the size of the terms summed)."""
    return mpmath.mpf(got) >= true and mpmath.mpf(got) - true <= TOL * scale


class Oracle:
    """The quantities of the subcubic bound, recomputed from the weights."""

    def __init__(self, weights: dict, variant: str):
        mpmath.mp.prec = 300
        self.model = model = model_from_weights(weights)
        self.eupu_handling, self.handling, self.error_handling = subcubic.axes(variant)
        self.evidence = _hints(model, variant)
        V, N = self.V, self.N = model.d_vocab, model.n_ctx
        W = {name: fractions(getattr(model, name)) for name in ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_U",
                                                         "b_Q", "b_K", "b_V", "b_O", "b_U")}
        self.W = W
        self.e_bar = W["W_E"] + W["W_pos"][N - 1][None, :]
        centre = rounded_mean_row(W["W_pos"])
        query = self.e_bar.dot(W["W_Q"]) + W["b_Q"]
        pos = query.dot((W["W_pos"] - centre[None, :]).dot(W["W_K"]).T)  # [q, i]
        s = 1 / mpmath.sqrt(model.d_head)
        self.s = s
        self.low_sums, self.high_sums, self.pos_exponent = [], [], []
        for q in range(V):
            weights_q = sorted(mpmath.exp(mpf(pos[q, i] - pos[q, N - 1]) * s) for i in range(N - 1))
            self.pos_exponent.append(max((abs(mpf(pos[q, i] - pos[q, N - 1])) * s for i in range(N - 1)), default=0))
            self.low_sums.append([sum(weights_q[:j], mpmath.mpf(0)) for j in range(N)])
            self.high_sums.append([sum(weights_q[N - 1 - j :], mpmath.mpf(0)) for j in range(N)])
        split = attention_error.qk_split(self.error_handling, model, model.W_E + Dyadic(
            np.repeat(model.W_pos.ints[N - 1 :], V, axis=0), model.W_pos.exp), Dyadic.from_floats(centre.astype(float)[None, :]),
            Evidence(self.evidence))
        self.approx, self.spread = fractions(split.approx), fractions(split.spread)[:, 0]
        self.evou = (W["W_E"].dot(W["W_V"]) + W["b_V"]).dot(W["W_O"]).dot(W["W_U"])
        pvou = W["W_pos"].dot(W["W_V"]).dot(W["W_O"]).dot(W["W_U"])
        self.ev = self.evou - np.diag(self.evou)[:, None]
        self.pv_pess = np.array([[max(pvou[p, o] - pvou[p, m] for p in range(N)) for o in range(V)] for m in range(V)],
                                dtype=object)
        self.eupu = (self.e_bar + W["b_O"]).dot(W["W_U"]) + W["b_U"]  # [q, o]
        self.mean, self.err = self.direct()
        self.base = self.mean[None, :] - self.mean[:, None] + self.pv_pess
        # the magnitude of the terms the logit-side quantities add up (rounding is relative to it)
        self.scale = 1 + max(abs(x) for table in (self.evou, self.base, self.err) for x in np.ravel(table))

    def direct(self):
        """eupu.py: EUPU[q, o] - EUPU[q, m] <= mean[o] - mean[m] + err[q]."""
        W, V, h = self.W, self.V, self.eupu_handling
        full = self.eupu
        if h in ("max_diff_exact_per_max", "mean_query+max_diff_exact_per_max"):  # per (q, m): the largest other entry
            mean = np.zeros(V, dtype=object) + Fraction(0)
            if h == "mean_query+max_diff_exact_per_max":  # of the row centred on the mean query's direct path
                mean = ((rounded_mean_row(self.e_bar)[None, :] + W["b_O"]).dot(W["W_U"]) + W["b_U"])[0]
            centred = full - mean[None, :]
            err = np.array([[max((centred[q, o] for o in range(V) if o != m), default=centred[q, m]) - centred[q, m]
                             for m in range(V)] for q in range(V)], dtype=object)
            return mean, err
        if h in ("max_diff_exact", "global_max_diff_exact"):
            spread = row_spreads(full)
            if h == "global_max_diff_exact":
                spread = np.full(V, max(full.ravel()) - min(full.ravel()), dtype=object)
            return np.zeros(V, dtype=object) + Fraction(0), spread
        if h == "mean_query+max_diff":
            w = rounded_mean_row(self.e_bar)
        elif h == "svd_query+max_diff":
            w = np.array([Fraction(float(x)) for x in self.evidence["eupu_direction"]], dtype=object)
        else:
            w = np.zeros(self.e_bar.shape[1], dtype=object) + Fraction(0)
        rho = row_spreads(W["W_U"])
        err = abs(self.e_bar - w[None, :]).dot(rho)
        mean = (w[None, :] + W["b_O"]).dot(W["W_U"]) + W["b_U"]
        return mean[0], err

    def err_at(self, q, m):
        return self.err[q, m] if self.err.ndim == 2 else self.err[q]

    def attention(self, q, m, c, g):
        """(a_min, a_max): every non-max score at its extreme, the max copies on the lowest (highest)
        positions; query_slot+ov_blocks+chords, when q != m: the tighter of that and the bounds
        with the query's own slot at its score approx[q, q] (within spread[q])."""
        top = m - g
        lo = self.approx[q, m] - max(self.approx[q, : top + 1]) - self.spread[q]
        hi = self.approx[q, m] - min(self.approx[q, : top + 1]) + self.spread[q]
        is_m = 1 if q == m else 0
        free = c if q == m else c - 1
        copies = self.N - 1 - free
        a_lo = mpmath.exp(mpf(lo) * self.s) * (self.low_sums[q][copies] + is_m)
        b_hi = self.high_sums[q][free] + (1 - is_m)
        a_hi = mpmath.exp(mpf(hi) * self.s) * (self.high_sums[q][copies] + is_m)
        b_lo = self.low_sums[q][free] + (1 - is_m)
        exponent = max(abs(mpf(lo)), abs(mpf(hi))) * self.s + self.pos_exponent[q]  # the largest |exp argument|
        a_min, a_max = a_lo / (a_lo + b_hi), a_hi / (a_hi + b_lo)
        if self.handling in ("query_slot+ov_blocks+chords", "query_slot+ov_tiers+levels") and q != m:
            own = self.approx[q, m] - self.approx[q, q]
            copies_lo, copies_hi = self.low_sums[q][copies], self.high_sums[q][copies]
            rest_hi = mpmath.exp(-mpf(own - self.spread[q]) * self.s) + mpmath.exp(-mpf(lo) * self.s) * self.high_sums[q][free]
            rest_lo = mpmath.exp(-mpf(own + self.spread[q]) * self.s) + mpmath.exp(-mpf(hi) * self.s) * self.low_sums[q][free]
            a_min = max(a_min, copies_lo / (copies_lo + rest_hi))
            a_max = min(a_max, copies_hi / (copies_hi + rest_lo))
            exponent = max(exponent, abs(mpf(own)) * self.s + abs(mpf(self.spread[q])) * self.s + self.pos_exponent[q])
        return a_min, a_max, exponent

    def blocks(self, m, top):
        """The OV-block bound over the tokens <= top, capped by W: blocks of ceil(sqrt(V)) tokens, the
        diagonal exact."""
        rows = self.evou[: top + 1]
        size = next(s for s in range(1, self.V + 1) if s * s >= self.V)
        out = []
        for o in range(self.V):
            terms = [rows[o, o] - rows[o, m]] if o <= top else []
            for start in range(0, top + 1, size):
                block = range(start, min(start + size, top + 1))
                off = [rows[k, o] for k in block if k != o]
                if off:
                    terms.append(max(off) - min(rows[k, m] for k in block))
            out.append(min(max(row_spreads(rows)), max(terms)))
        return out

    def tier_widths(self):
        s = next(s for s in range(1, self.V + 1) if s * s >= self.V)
        return [w for w in (1 << j for j in range(self.V.bit_length() + 1)) if w <= s]

    def values(self, m, g_star):
        """The value tables: [N] (N[o], the largest value a non-max slot adds to output o relative
        to m), or for the tiers [U_1, ..., U_{R+1}] (tiers.py)."""
        top = max(m - g_star, 0)
        rows = self.evou[: top + 1]
        w = max(row_spreads(rows))
        if self.handling == "per_output+chords":
            return [[min(w, max(rows[:, o]) - min(rows[:, m])) for o in range(self.V)]]
        if self.handling == "query_slot+ov_blocks+chords":
            return [self.blocks(m, top)]
        if self.handling == "query_slot+ov_tiers+levels":  # tier j: top - w_j < k <= top - w_{j-1}
            tables, running, previous = [], [None] * self.V, 0
            for width in self.tier_widths():
                for k in range(max(top - width + 1, 0), top - previous + 1):
                    running = [d if r is None else max(r, d) for r, d in zip(running, self.evou[k] - self.evou[k, m])]
                tables.append(running)
                previous = width
            far = top - previous
            last = tables[-1] if far < 0 else [max(u, b) for u, b in zip(tables[-1], self.blocks(m, far))]
            return tables + [last]
        return [[w] * self.V]

    def tier_attention(self, q, m, c, g, top_row):
        """A_j (j >= 2): B / (B + C), tier_attention's inequality, in mpmath."""
        is_m = 1 if q == m else 0
        free = c if q == m else c - 1
        copies = self.N - 1 - free
        top = min(m - g, top_row)
        out = []
        for width in self.tier_widths():
            limit = min(top, top_row - width)
            b = mpmath.mpf(0)
            if limit >= 0 and free > 0:
                b += mpmath.exp(mpf(max(self.approx[q, : limit + 1]) - self.approx[q, m] + self.spread[q]) * self.s) * self.high_sums[q][free]
            if limit >= 0 and not is_m and q <= limit:
                b += mpmath.exp(mpf(self.approx[q, q] - self.approx[q, m] + self.spread[q]) * self.s)
            out.append(b / (b + self.low_sums[q][copies] + is_m) if b > 0 else mpmath.mpf(0))
        return out

    def chi(self, m, g_star, a: Fraction, level=(), merged=False):
        """max_o (base + a EV + (1 - a) U_1 + sum_j level_j (U_{j+1} - U_j)); merged: U_{R+1} for U_1."""
        tables = self.values(m, g_star)
        first = tables[-1] if merged else tables[0]
        steps = [] if merged else [[u - v for u, v in zip(tables[j + 1], tables[j])] for j in range(len(level))]
        return max(self.base[m, o] + self.ev[m, o] * a + first[o] * (1 - a) + sum(lam * st[o] for lam, st in zip(level, steps))
                   for o in range(self.V) if o != m)

    def slopes(self, m, g_star, merged=False):
        tables = self.values(m, g_star)
        first = tables[-1] if merged else tables[0]
        values = [self.ev[m, o] - first[o] for o in range(self.V) if o != m]
        return min(values), max(values)

    def step_max(self, m, g_star):
        tables = self.values(m, g_star)
        return [max(tables[j + 1][o] - tables[j][o] for o in range(self.V) if o != m) for j in range(len(tables) - 1)]

    def all_m(self, m):
        full = self.eupu
        return max(full[m, o] - full[m, m] + self.ev[m, o] + self.pv_pess[m, o] for o in range(self.V) if o != m)


VARIANTS = [f"subcubic/{e}/{a}/{r}" for (eupus, attentions, errors), count in zip(subcubic.FAMILIES, (10, 4, 2))
            for e, a, r in zip(eupus * 5, attentions * 5, errors[:count])]  # every handling of each family


def check_against_oracle(weights, variant, data):
    oracle = Oracle(weights, variant)
    V, N = oracle.V, oracle.N
    bounds = subcubic.Bounds(oracle.model, variant, Evidence(oracle.evidence))
    # direct path
    for qq in range(V):
        for mm in range(V):
            err, true = bounds.direct_error(np.array([qq]), np.array([mm])), oracle.err_at(qq, mm)
            assert close_above(float(err.hi[0]), mpf(true), 1 + abs(true)) and mpmath.mpf(float(err.lo[0])) <= mpf(true)
    # attention on the max copies, every cell and gap
    valid = subcubic.valid_cells(V, N)
    cells = [(q, m, c, g) for q, m, c in zip(*valid.nonzero()) for g in range(1, max(m, 1) + 1)
             if (q == m and c > 0) or q <= m - g]  # (q = m, c = 0): every token m, bounded by all_m
    q, m, c, g = (np.array(axis, dtype=np.int64) for axis in zip(*cells)) if cells else [np.zeros(0, np.int64)] * 4
    lower, upper = bounds.attention(q, m, c, g)
    for i, cell in enumerate(cells):
        a_min, a_max, exponent = oracle.attention(*(int(x) for x in cell))
        assert mpmath.mpf(lower[i]) <= a_min and a_max <= mpmath.mpf(upper[i]), cell
        if exponent < 600:  # beyond, float exp may saturate and the checker fall back to [0, 1]
            # interval exp is exact to its 2^-16 grid step: each weight is within 2^-15 relative
            assert a_min - mpmath.mpf(lower[i]) <= EXP_TOL * a_min + ULP
            assert mpmath.mpf(upper[i]) - a_max <= EXP_TOL * (1 - a_max) + ULP, cell
    # chi at levels and anchors, its slopes and tier steps, for random smallest gaps, anchors and levels
    if V < 2:
        return
    g_star = np.array([[data.draw(st.integers(1, max(mm, 1))) for _ in range(N)] for mm in range(V)], dtype=np.int64)
    J = data.draw(st.integers(1, 3))
    anchors = np.sort(np.array(data.draw(st.lists(st.floats(0, 1), min_size=V * N * J, max_size=V * N * J))).reshape(V, N, J), axis=2)
    T = len(bounds.tier_widths)
    assert T == (len(oracle.tier_widths()) if oracle.handling == "query_slot+ov_tiers+levels" else 0)
    L = data.draw(st.integers(1, 3)) if T else 1
    levels = np.sort(np.array(data.draw(st.lists(st.floats(0, 1), min_size=V * N * L * T, max_size=V * N * L * T))).reshape(V, N, L, T), axis=2)
    tables = bounds.chi_tables(g_star, anchors, levels)
    # any subset of rows, on its own, gives the same floats (the generator updates rows in place)
    m_rows, c_rows = np.nonzero(np.array(data.draw(st.lists(st.booleans(), min_size=V * N, max_size=V * N))).reshape(V, N))
    rows = bounds.chi_rows(m_rows, np.maximum(m_rows - g_star[m_rows, c_rows], 0), anchors[m_rows, c_rows], levels[m_rows, c_rows])
    for table, row in zip((tables.values, tables.slope_min, tables.slope_max, tables.step_max), rows):
        assert np.array_equal(table[m_rows, c_rows], row, equal_nan=True)
    for mm in range(V):
        for cc in range(N):
            gs = int(g_star[mm, cc])
            # the L levels, then (with tiers) the merged table
            for t, (level, merged) in enumerate([(levels[mm, cc, l], False) for l in range(L)] + ([((), True)] if T else [])):
                lo_slope, hi_slope = oracle.slopes(mm, gs, merged)
                assert mpmath.mpf(tables.slope_min[mm, cc, t]) <= mpf(lo_slope) and mpmath.mpf(tables.slope_max[mm, cc, t]) >= mpf(hi_slope)
                assert mpf(lo_slope) - mpmath.mpf(tables.slope_min[mm, cc, t]) <= TOL * oracle.scale
                assert mpmath.mpf(tables.slope_max[mm, cc, t]) - mpf(hi_slope) <= TOL * oracle.scale
                for j in range(J):
                    true = oracle.chi(mm, gs, Fraction(float(anchors[mm, cc, j])), [Fraction(float(x)) for x in level], merged)
                    assert close_above(tables.values[mm, cc, t, j], mpf(true), oracle.scale), (mm, cc, t, j)
            for j, true in enumerate(oracle.step_max(mm, gs)):
                assert close_above(tables.step_max[mm, cc, j], mpf(true), oracle.scale), (mm, cc, j)
    for mm in range(V):
        true = oracle.all_m(mm)
        assert close_above(float(bounds.all_m.hi[mm]), mpf(true), oracle.scale)
    # the tiers' attention, every cell and gap, against the oracle's B / (B + C)
    top_rows = np.maximum(m - g_star[m, c], 0)
    attention = bounds.tier_attention(q, m, c, g, top_rows)
    assert attention.shape == (len(cells), T)
    for i, cell in enumerate(cells):
        if not T:
            break
        for j, true in enumerate(oracle.tier_attention(*(int(x) for x in cell), int(top_rows[i]))):
            assert mpmath.mpf(attention[i, j]) >= true, (cell, j)
            if true == 0:
                assert attention[i, j] == 0
            elif oracle.attention(*(int(x) for x in cell))[2] < 600 and true > 1e-200:
                assert mpmath.mpf(attention[i, j]) - true <= 4 * EXP_TOL * true + ULP, (cell, j)
    # the cell bound: err[q] + the largest of F at a_min, a_max and chi at the anchors between
    # (F from the tables checked above), at the cell's level plus its excess or merged (tiers);
    # every token m: the exact all-m bound
    cells += [(mm, mm, 0, 1) for mm in range(V)]
    q, m, c, g = (np.array(axis, dtype=np.int64) for axis in zip(*cells))
    got = bounds.cell_bounds(q, m, c, g, tables, anchors)
    lower, upper = bounds.attention(q, m, c, g)
    attention = bounds.tier_attention(q, m, c, g, np.maximum(m - g_star[m, c], 0))
    for i, (qq, mm, cc, _) in enumerate(cells):
        if qq == mm and cc == 0:
            assert got[i] == bounds.all_m.hi[mm]
            continue
        A = [Fraction(float(x)) for x in anchors[mm, cc]]

        def largest(t):
            chi = [Fraction(float(x)) for x in tables.values[mm, cc, t]]
            F = lambda a: chord_or_line(Fraction(float(a)), A, chi, Fraction(float(tables.slope_min[mm, cc, t])),  # noqa: E731
                                        Fraction(float(tables.slope_max[mm, cc, t])))
            return max([F(lower[i]), F(upper[i])] + [chi[j] for j in range(len(A)) if lower[i] <= A[j] <= upper[i]])

        if T:
            level = min(max(sum(levels[mm, cc, l, j] < attention[i, j] for l in range(L)) for j in range(T)), L - 1)
            excess = sum(max(Fraction(float(attention[i, j])) - Fraction(float(levels[mm, cc, level, j])), Fraction(0))
                         * Fraction(float(tables.step_max[mm, cc, j])) for j in range(T))
            value = min(largest(level) + excess, largest(L))
        else:
            value = largest(0)
        true = Fraction(float(bounds.direct_error(np.array([qq]), np.array([mm])).hi[0])) + value
        assert close_above(got[i], mpf(true), oracle.scale), (qq, mm, cc)


FIXED = [
    build("gaussian", 4, V=5, N=3, D=4, H=3, scale=1.0, biases=True, dtype=np.float32),
    build("coarse", 9, V=4, N=4, D=3, H=2, scale=1.0, biases=False, dtype=np.float64),
    build("gaussian", 6, V=6, N=2, D=5, H=4, scale=2.0, biases=True, dtype=np.float64),
]


@pytest.mark.parametrize("variant", VARIANTS)
@settings(max_examples=5)  # the models are fixed: only the gaps and anchors vary
@given(data=st.data())
def test_bounds_match_the_oracle_on_fixed_models(variant, data):
    for weights in FIXED:
        check_against_oracle(weights, variant, data)


@given(weights=tiny_models(max_inputs=300), variant=st.sampled_from(subcubic.NAMES), data=st.data())
def test_bounds_match_the_oracle_on_random_models(weights, variant, data):
    check_against_oracle(weights, variant, data)


@given(weights=tiny_models(max_inputs=300), variant=st.sampled_from([n for n in subcubic.NAMES if subcubic.axes(n)[1] == subcubic.ATTENTION[3]]),
       data=st.data())
def test_the_refined_family_matches_the_oracle_on_random_models(weights, variant, data):
    check_against_oracle(weights, variant, data)


@given(weights=tiny_models(max_inputs=300), variant=st.sampled_from([n for n in subcubic.NAMES if subcubic.axes(n)[1] == subcubic.TIERED]),
       data=st.data())
def test_the_tiered_family_matches_the_oracle_on_random_models(weights, variant, data):
    check_against_oracle(weights, variant, data)


def chord_or_line(a: Fraction, anchors: list[Fraction], chi: list[Fraction], slope_min: Fraction, slope_max: Fraction):
    """F(a): the chord between the anchors around a; outside them, the line with the extreme slope."""
    if a <= anchors[0]:
        return chi[0] + (a - anchors[0]) * slope_min
    if a >= anchors[-1]:
        return chi[-1] + (a - anchors[-1]) * slope_max
    j = max(i for i in range(len(anchors) - 1) if anchors[i] <= a)
    share = (a - anchors[j]) / (anchors[j + 1] - anchors[j])
    return chi[j] + share * (chi[j + 1] - chi[j])


lines = st.lists(st.tuples(st.integers(-1000, 1000), st.integers(-1000, 1000)), min_size=1, max_size=5)


@given(lines, st.lists(st.integers(0, 64), min_size=1, max_size=4, unique=True), st.lists(st.integers(0, 64), min_size=1, max_size=6))
def test_piecewise_upper_is_the_chord_bound_of_a_convex_function(lines, anchor_points, points):
    """chi(a) = max_o (b_o + s_o a) is convex: F >= chi everywhere, and F is the chord / line formula."""
    anchors = sorted(Fraction(p, 64) for p in anchor_points)
    chi = lambda a: max(Fraction(b, 8) + Fraction(s, 8) * a for b, s in lines)  # noqa: E731
    slope_min, slope_max = min(Fraction(s, 8) for _, s in lines), max(Fraction(s, 8) for _, s in lines)
    values = [chi(a) for a in anchors]  # dyadic: exact in float64
    a = np.array([float(Fraction(p, 64)) for p in points])
    got = subcubic.piecewise_upper(a, np.array([[float(x) for x in anchors]] * len(a)), np.array([[float(v) for v in values]] * len(a)),
                                   np.full(len(a), float(slope_min)), np.full(len(a), float(slope_max)))
    for x, upper in zip(a, got):
        exact = chord_or_line(Fraction(x), anchors, values, slope_min, slope_max)
        assert Fraction(upper) >= exact >= chi(Fraction(x))
        assert Fraction(upper) - exact <= Fraction(1, 2**40) * (1 + abs(exact))

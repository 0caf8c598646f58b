"""The subcubic proofs: 5 x 2 x 10 variants, named subcubic/<eupu>/<attention>/<attention-error>.

Cells (q, m, c): query token q <= m = max token, c = number of non-max tokens including the query
when q != m (so c >= 1 then), with a gap g: the cell covers the inputs whose non-max tokens (the
query included) are all <= m - g. It covers C(n-1, c') (m - g + 1)^c' inputs, c' the non-max count
among the non-query positions (c - 1 if q != m, else c), and none if q != m and q > m - g.

For an input x of a cell and an output o != m, with a_M the attention on the copies of m,
    logits[o] - logits[m] = EUPU_c[q,o] + a_M EV[o] + sum_{non-max i} a_i (EVOU[x_i,o] - EVOU[x_i,m])
                            + sum_i a_i PVc[i,o]
                         <= err[q] + base[o] + a_M EV[o] + (1 - a_M) W(m, g)
with EV[o] = EVOU[m,o] - EVOU[m,m], base[o] = mean[o] - mean[m] + max_p PVc[p,o] (eupu.py for
mean, err), W(m, g) = max over tokens k <= m - g of (max_x EVOU[k,x] - min_x EVOU[k,x]). So the
largest wrong logit is at most err[q] + phi(a_M), phi(a) = max_o (base[o] + a EV[o]) + (1 - a) W.

1. Attention on the max copies. Scores split exactly as EQKE'[q, x_i] + pos[q, i]
   (attention_error.py for EQKE'; pos[q, i] = (Ebar[q] W_Q + b_Q).((W_pos[i] - c) W_K), c the key
   centre). For every non-max token k <= m - g, EQKE'[q,m] - EQKE'[q,k] lies in
   [lo, hi] = [approx[q,m] - max_{k<=m-g} approx[q,k] - spread[q], approx[q,m] - min_{k<=m-g} approx[q,k] + spread[q]],
   and a_M = A / (A + B) with A = e^{EQKE'[q,m]} (sum of e^{pos} over the max slots) and B the same
   over the non-max slots, is increasing in the first and decreasing in each non-max score. So
   a_M >= the value with every non-max score at EQKE'[q,m] - lo and the copies of m on the lowest
   positional terms (a_min), and a_M <= the value at EQKE'[q,m] - hi with the copies on the highest
   (a_max); the query's slot is fixed (a copy of m when q = m, non-max otherwise).
2. From attention to logits. For every (m, c) with g* = the smallest gap among its counted cells,
   the non-max slots' value at output o is at most N[o]: N[o] = W(m, g*) for the paper's two
   attention handlings, and N[o] = min(W(m, g*), max_{k<=m-g*} EVOU[k,o] - min_{k<=m-g*} EVOU[k,m])
   for `per_output+chords` (new). Then the largest wrong logit is at most err[q] + chi(a_M) with
       chi(a) = max_o (base[o] + a EV[o] + (1 - a) N[o]),
   convex in a with slopes in [min_o (EV - N), max_o (EV - N)]. With anchors A_1 < ... < A_J in
   [0, 1] (the certificate's `anchors`; drop_average_... fixes the single anchor 0; mean_query+diff
   takes one), chi lies below its chords between anchors and below the lines through the extreme
   anchors with the extreme slopes outside them: call that piecewise-linear function F. (With one
   anchor this is the paper's mean_query+diff step, fixed: below the anchor it must use the
   smallest slope, not the largest.) A piecewise-linear function's maximum over [a_min, a_max] is
   at an end or a breakpoint, so the cell's bound is
       err[q] + max(F(a_min), F(a_max), chi(A_j) for the anchors in between).
   The case q = m, c = 0 (every token m) is bounded exactly:
   max_o (EUPU[m,o] - EUPU[m,m] + EV[o] + max_p PVc[p,o]).
3. Claims. A cell with a negative claim counts its inputs, and its claim must be at least the
   checker's bound (computed in exact integers and outward-rounded float intervals, interval.py,
   so the generator reproduces it exactly). A claim >= 0 asserts nothing and is not checked.

The refined family (max_diff_exact_per_max with query_slot+ov_blocks+chords) changes three terms,
each to a smaller valid bound: err[q] becomes err[q, m] (eupu.py); in step 1 the query's slot
(q != m) carries its own score EQKE'[q, q] instead of the extreme non-max score (Bounds.attention);
and in step 2 N[o] is the smaller of W(m, g*) and the OV-block bound (OVBlocks), which pairs each
token's two EVOU entries within blocks of ceil(sqrt(d_vocab)) tokens and takes the diagonal k = o
exactly.

The tiered family (query_slot+ov_tiers+levels, with max_diff_exact_per_max or
mean_query+max_diff_exact_per_max) bounds the attention and the values of a cell together: the
non-max tokens fall into score tiers below the row's top (tiers.py), the w_R <= ceil(sqrt(d_vocab))
nearest paired with the outputs exactly, and a token far below the top, which could carry a large
value, can only get the little attention its tier's score allows. For each cell, besides a_M in
[a_min, a_max], upper bounds A_j of the attention on the tiers >= j (Bounds.tier_attention), and
    largest wrong logit <= err + chi(a_M, A),
    chi(a, A) = max_o (base[o] + a EV[o] + (1 - a) U_1[o] + sum_{j >= 2} A_j (U_j[o] - U_{j-1}[o])),
convex in a and non-decreasing in every A_j (tiers.py). The certificate's `levels` (per (m, c),
L vectors non-decreasing along L) stand for A: chi(a, A) <= chi(a, level) + sum_j (A_j - level_j)^+
max_o (U_j - U_{j-1}), the first level at least A in every tier taken (the excess is then 0); chi
at each level is tabulated at the anchors and bounded between them by chords as above. The
merged table, chi with U_{R+1} in place of U_1 and no steps, is also valid for every cell; the
cell's bound is the smaller of the two. (This is the vertex principle of a softmax over a box of
scores, applied per class of slots: each class's attention is taken at an end of its score
interval, jointly with the value that class can carry; the exact vertex optimum per output and
cell would cost d_vocab^3.)

Cost: no d_vocab^3 term and no enumeration of inputs: everything is O(d_vocab^2 n_ctx) per-cell
work plus the handlings' own costs (eupu.py, attention_error.py) and EVOU (d_vocab^2 d_model); the
tiers add d_vocab^2 n_ctx sqrt(d_vocab) for their values and O(L (J + T) d_vocab) per (m, c).
"""

from __future__ import annotations

from math import isqrt

import numpy as np

from compact_proofs.checker import cost, memo
from compact_proofs.checker.context import Context, Evidence, Outcome
from compact_proofs.checker.counting import inputs_covered
from compact_proofs.checker.errors import CheckError, InvalidCertificate, ResourceLimit
from compact_proofs.checker.exact import Dyadic, mean_rows
from compact_proofs.checker.interval import Interval, exp_upper, next_down, next_up, rsqrt, upper_max_affine, upper_nonnegative_products
from compact_proofs.checker.strategies.subcubic import attention_error, eupu, tiers
from compact_proofs.checker.weights import Model

ATTENTION = ("mean_query+diff", "drop_average_query_per_output_logit_reasoning", "per_output+chords", "query_slot+ov_blocks+chords",
             "query_slot+ov_tiers+levels")
REFERENCE_ATTENTION = ATTENTION[:2]
QUERY_SLOT = ATTENTION[3:]  # the query's own slot at its own score
TIERED = ATTENTION[4]  # score tiers and attention levels
MAX_ANCHORS = 16
MAX_LEVELS = 16
MAX_CELLS = 1 << 23
# (EUPU handlings, attention handlings, attention-error handlings): the paper's 100 and
# per_output+chords (5 x 3 x 10); the refined family, its direct path per (q, m) with the query
# slot and OV blocks (1 x 1 x 10); the tiered family, with the direct path per (q, m) or centred on
# the mean query, crossed with the two exact EQKE handlings (the only ones that ever won in the
# refined family; 2 x 1 x 2)
FAMILIES = ((eupu.HANDLINGS[:5], ATTENTION[:3], attention_error.HANDLINGS), (eupu.HANDLINGS[5:6], ATTENTION[3:4], attention_error.HANDLINGS),
            (eupu.HANDLINGS[5:7], ATTENTION[4:5], ("exact_EQKE+max_diff_exact", "max_diff_exact")))
NAMES = [f"subcubic/{e}/{a}/{r}" for eupus, attentions, errors in FAMILIES for e in eupus for a in attentions for r in errors]


def axes(name: str) -> tuple[str, str, str]:
    _, e, a, r = name.split("/", 3)
    return e, a, r


def _rows(row: Dyadic, count: int) -> Dyadic:
    return Dyadic(np.repeat(row.ints, count, axis=0), row.exp)


def valid_cells(d_vocab: int, n_ctx: int) -> np.ndarray:
    """valid[q, m, c]: the cells that can hold inputs (non-max tokens need m >= 1)."""
    q, m, c = np.meshgrid(np.arange(d_vocab), np.arange(d_vocab), np.arange(n_ctx), indexing="ij")
    return ((q == m) & ((c == 0) | (m >= 1))) | ((q < m) & (c >= 1))


def cell_inputs(q: np.ndarray, m: np.ndarray, c: np.ndarray, g: np.ndarray, n_ctx: int) -> int:
    """The inputs of the cells (q[i], m[i], c[i]) whose non-max tokens (query included) are all
    <= m[i] - g[i], summed exactly over i (a cell with q != m and q > m - g holds none). Cells with
    the same non-max count and token range hold equally many, so each distinct pair is counted once."""
    q, m, c, g = (np.asarray(a, dtype=np.int64).ravel() for a in (q, m, c, g))
    holds = (q == m) | (q <= m - g)
    free, tokens = np.where(q == m, c, c - 1)[holds], (m - g + 1)[holds]
    span = int(tokens.max(initial=0)) + 1
    keys, repeats = np.unique(free * span + tokens, return_counts=True)  # key -> (free, tokens), one to one
    return sum(int(k) * inputs_covered(n_ctx, int(key) // span, int(key) % span) for key, k in zip(keys, repeats))


def _running(values: np.ndarray, op, axis: int = 1) -> np.ndarray:
    return op.accumulate(values, axis=axis)


class ModelTables:
    """The tables every variant of one model shares: positional attention sums, EV, the positional
    value pessimisation, the EVOU prefix tables and the all-m case, exact and then enclosed."""

    def __init__(self, model: Model):
        V, N = model.d_vocab, model.n_ctx
        self.e_bar = model.W_E + _rows(model.W_pos[N - 1 :], V)
        self.centre = mean_rows(model.W_pos)
        self.rsqrt = rsqrt(model.d_head)

        # positional part of the scores, relative to the query position
        query = self.e_bar @ model.W_Q + _rows(model.b_Q, V)
        pos = query @ ((model.W_pos - _rows(self.centre, N)) @ model.W_K).T  # [q, p]
        rel = Interval.of(pos - Dyadic(np.repeat(pos.ints[:, N - 1 :], N, axis=1), pos.exp))
        weights = (rel * self.rsqrt).exp()
        order = np.argsort(pos.ints[:, : N - 1], axis=1, kind="stable").astype(np.int64)
        ranked = Interval(np.take_along_axis(weights.lo[:, : N - 1], order, 1), np.take_along_axis(weights.hi[:, : N - 1], order, 1))
        self.low_sums = _partial_sums(ranked)  # [q, j]: the j lowest
        self.high_sums = _partial_sums(Interval(ranked.lo[:, ::-1], ranked.hi[:, ::-1]))

        # logit part (exact): EV[m, o], prefix tables over the non-max tokens
        p = model
        evou = (p.W_E @ p.W_V + _rows(p.b_V, V)) @ (p.W_O @ p.W_U)
        pvou = (p.W_pos @ p.W_V) @ (p.W_O @ p.W_U)
        diag = np.arange(V)
        self.off = ~np.eye(V, dtype=bool)
        self.key, self.evou = model.key, evou
        self.ev = evou - Dyadic(np.repeat(evou.ints[diag, diag][:, None], V, axis=1), evou.exp)  # EV[m, o]
        self.pv_pess = Dyadic(pvou.ints[:, None, :] - pvou.ints[:, :, None], pvou.exp).max(axis=0)  # [m, o]
        self.w_run_i = Interval.of(Dyadic(_running(evou.spread().ints, np.maximum, axis=0), evou.exp))  # W(m,g) = [m-g]
        self.col_max_i = Interval.of(Dyadic(_running(evou.ints, np.maximum, axis=0), evou.exp))  # [j, o]: max_{k<=j} EVOU[k,o]
        self.col_min_i = Interval.of(Dyadic(_running(evou.ints, np.minimum, axis=0), evou.exp))
        self.ev_i = Interval.of(self.ev)
        # the all-m case: exact direct path of the query m, every attention weight on m
        eupu_full = (self.e_bar + _rows(p.b_O, V)) @ p.W_U + _rows(p.b_U, V)
        all_m = Dyadic(eupu_full.ints - eupu_full.ints[diag, diag][:, None], eupu_full.exp) + self.ev + self.pv_pess
        self.all_m = Interval.of(Dyadic(np.where(self.off, all_m.ints, all_m.ints.min()).max(axis=1), all_m.exp))


def _partial_sums(ranked: Interval) -> Interval:
    zero = np.zeros((ranked.lo.shape[0], 1))
    lo, hi = [zero], [zero]
    for j in range(ranked.lo.shape[1]):
        step = Interval(lo[-1], hi[-1]) + ranked[:, j : j + 1]
        lo.append(step.lo)
        hi.append(step.hi)
    return Interval(np.concatenate(lo, axis=1), np.concatenate(hi, axis=1))


def model_tables(model: Model) -> ModelTables:
    """This model's ModelTables, computed once per process (memo.py)."""
    return memo.cached(("subcubic-tables", model.key), lambda: ModelTables(model))


class Bounds(ModelTables):
    """Everything a variant's cell bounds need: the model's tables plus the variant's direct-path
    and attention-error bounds."""

    def __init__(self, model: Model, variant: str, evidence: Evidence):
        vars(self).update(vars(model_tables(model)))
        self.V, self.N = model.d_vocab, model.n_ctx
        eupu_handling, self.handling, error_handling = axes(variant)
        self.tier_widths = tiers.widths(self.V) if self.handling == TIERED else []
        direct = eupu.direct_bound(eupu_handling, model, self.e_bar, evidence)
        split = attention_error.qk_split(error_handling, model, self.e_bar, self.centre, evidence)

        # token part: running max / min of the approximation over k
        approx = split.approx
        self.approx = Interval.of(approx)
        self.run_max = Interval.of(Dyadic(_running(approx.ints, np.maximum), approx.exp))
        self.run_min = Interval.of(Dyadic(_running(approx.ints, np.minimum), approx.exp))
        self.spread = Interval.of(split.spread)[:, 0]
        self.err = Interval.of(direct.err)  # [q, 1] or [q, m]
        mean = direct.mean.ints[0]
        self.base_i = Interval.of(Dyadic(mean[None, :] - mean[:, None], direct.mean.exp) + self.pv_pess)  # base[m, o]

    def attention(self, q, m, c, g) -> tuple[np.ndarray, np.ndarray]:
        """(a_min lower bound, a_max upper bound) per cell."""
        top = m - g
        lo = self.approx[q, m] - self.run_max[q, top] - self.spread[q]
        hi = self.approx[q, m] - self.run_min[q, top] + self.spread[q]
        is_m = (q == m).astype(np.float64)
        free_nonmax = np.where(q == m, c, c - 1)
        copies = (self.N - 1) - free_nonmax
        # a_M = A / (A + B) with A, B > 0: lower end from A's lower and B's upper bound, and back.
        # Outward rounding can leave a non-negative quantity's lower end below zero, and infinities
        # give NaN: both mean "no information" (a_M >= 0, a_M <= 1), never a finite value.
        # the query's slot (q != m) relative to the extreme non-max score: weight 1 (its own score
        # taken as the extreme), or for query_slot+ov_blocks+chords its own score, within spread[q]
        # of approx[q, q]: with D_q = EQKE'[q, m] - EQKE'[q, q] >= own - spread[q], the term
        # e^(-D_q r) times e^(lo r) is at most e^((approx[q, q] - run_max[q, top]) r) (the spread
        # cancels), and for the upper bound at least e^((approx[q, q] - run_min[q, top]) r)
        slot_for_lower = slot_for_upper = Interval(1 - is_m)
        if self.handling in QUERY_SLOT:
            own_low = ((self.approx[q, q] - self.run_max[q, top]) * self.rsqrt).exp()
            own_high = ((self.approx[q, q] - self.run_min[q, top]) * self.rsqrt).exp()
            slot_for_lower = Interval(np.where(q == m, 0.0, own_low.lo), np.where(q == m, 0.0, own_low.hi))
            slot_for_upper = Interval(np.where(q == m, 0.0, own_high.lo), np.where(q == m, 0.0, own_high.hi))
        a_low = ((lo * self.rsqrt).exp() * (self.low_sums[q, copies] + is_m)).nonnegative()
        b_low = (self.high_sums[q, free_nonmax] + slot_for_lower).nonnegative()
        a_high = ((hi * self.rsqrt).exp() * (self.high_sums[q, copies] + is_m)).nonnegative()
        b_high = (self.low_sums[q, free_nonmax] + slot_for_upper).nonnegative()
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio_hi = np.where(a_low.lo > 0, next_up(b_low.hi / a_low.lo), np.inf)  # >= B / A
            ratio_lo = np.fmax(next_down(b_high.lo / a_high.hi), 0.0)  # <= B / A (NaN: 0)
            lower = next_down(1 / next_up(1 + ratio_hi))
            upper = next_up(1 / next_down(1 + ratio_lo))
        cost.add(6 * len(lower), 12 * len(lower))  # pragma: no mutate (accounting)
        lower = np.where(np.isnan(lower), 0.0, np.clip(lower, 0.0, 1.0))
        upper = np.where(np.isnan(upper), 1.0, np.clip(upper, 0.0, 1.0))
        return lower, upper

    def tier_attention(self, q, m, c, g, top_row) -> np.ndarray:
        """[cells, T]: for query_slot+ov_tiers+levels, upper bounds of A_j (j = 2..R+1, tiers.py), the
        attention on the non-max slots whose tokens are <= top_row - w_{j-1} (the query's too, when
        q != m lies there); [cells, 0] for the other handlings. Scores relative to EQKE'[q, m]: a
        non-max token k <= L has EQKE'[q, k] - EQKE'[q, m] <= approx[q, L]^max - approx[q, m] + spread[q]
        (run_max), the query approx[q, q] - approx[q, m] + spread[q]; with positional weights
        relative to the query's position, the slots there weigh B <= e^(that r) (the c' highest
        positional weights) + the query's, the copies of m at least C = the copies' lowest + [q = m],
        and A_j <= B / (B + C) (increasing in B, decreasing in C)."""
        if self.handling != TIERED:
            return np.zeros((len(q), 0))
        is_m = q == m
        free_nonmax = np.where(is_m, c, c - 1)
        copies = (self.N - 1) - free_nonmax
        top = np.minimum(m - g, top_row)
        copies_low = (self.low_sums[q, copies] + is_m.astype(np.float64)).nonnegative().lo
        free_high = self.high_sums[q, free_nonmax].nonnegative().hi
        own = ((self.approx[q, q] - self.approx[q, m] + self.spread[q]) * self.rsqrt).exp().hi
        out = []
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            offset = next_up(self.spread.hi[q] - self.approx.lo[q, m])  # >= spread[q] - approx[q, m]
            for w in self.tier_widths:
                limit = np.minimum(top, top_row - w)
                inside = limit >= 0
                score = next_up(self.run_max.hi[q, np.maximum(limit, 0)] + offset)  # >= the tier's score - EQKE'[q, m]
                scaled = next_up(score * np.where(score >= 0, self.rsqrt.hi, self.rsqrt.lo))  # >= score / sqrt(d_head)
                shift = exp_upper(scaled)
                slots = np.where(inside & (free_nonmax > 0), next_up(shift * free_high), 0.0)
                slots = np.where(inside & ~is_m & (q <= limit), next_up(slots + own), slots)
                bound = next_up(slots / next_down(slots + copies_low))
                out.append(np.where(slots == 0, 0.0, np.where(np.isnan(bound), 1.0, np.clip(bound, 0.0, 1.0))))
        cost.add(7 * len(q) * len(out), 12 * len(q) * len(out))  # pragma: no mutate (accounting)
        return np.stack(out, axis=1) if out else np.zeros((len(q), 0))

    def chi_tables(self, g_star: np.ndarray, anchors: np.ndarray, levels: np.ndarray) -> "CellTables":
        """Per (m, c): upper bounds of chi at each level and anchor [V, N, L', J], lower / upper bounds
        of its smallest / largest slope in a [V, N, L'], and of each tier's largest value step [V, N, T],
        in interval arithmetic over the exact tables (L' = L, or L + 1 with tiers: chi_rows)."""
        V, N, J = anchors.shape
        m = np.repeat(np.arange(V), N)
        rows = self.chi_rows(m, np.maximum(m - g_star.ravel(), 0), anchors.reshape(V * N, J), levels.reshape(V * N, *levels.shape[2:]))
        return CellTables(*(table.reshape(V, N, *table.shape[1:]) for table in rows), levels=levels, g_star=g_star)

    def chi_rows(self, m: np.ndarray, top: np.ndarray, anchors: np.ndarray, levels: np.ndarray):
        """chi_tables for rows r with max token m[r], largest allowed non-max token top[r], anchors[r]
        ([R, J]) and levels[r] ([R, L, T]): each row is computed on its own, so any subset of rows
        gives the values the full tables hold. With tiers (T > 0) a last table follows the L levels:
        chi with every tier merged, U_{R+1} in place of U_1 and no steps (valid for every cell)."""
        values_table = self.nonmax_values(m, top)  # [r, T + 1, o]
        others = self.off[m]
        T = values_table.shape[1] - 1
        with np.errstate(invalid="ignore", over="ignore"):  # U_j - U_{j-1} >= 0: upper bounds (NaN: no information)
            steps = next_up(values_table.hi[:, 1:] - values_table.lo[:, :-1])
        steps = np.where(np.isnan(steps), np.inf, np.maximum(steps, 0.0))  # [r, T, o]
        # chi(a, A) = max_o (intercept[o] + a slope[o] + sum_j A_j steps_j[o]), intercept = base + U_1,
        # slope = EV - U_1 (the same value as base + a EV + (1 - a) U_1 + ...); anchors exact, >= 0
        tables = [(values_table[:, 0], levels)] + ([(values_table[:, T], np.zeros((len(m), 1, 0)))] if T else [])
        values, slope_min, slope_max = [], [], []
        for first, table_levels in tables:
            slopes, intercepts = self.ev_i[m] - first, self.base_i[m] + first  # [r, o]
            low, high = np.where(others, slopes.lo, np.inf).min(axis=1), np.where(others, slopes.hi, -np.inf).max(axis=1)
            lifted = intercepts.hi[:, None, :]  # [r, L, o]: + sum_j A_j steps_j at each level (all >= 0), rounded up
            if table_levels.shape[2]:
                with np.errstate(invalid="ignore", over="ignore"):  # inf and NaN propagate; no accept uses them
                    lifted = next_up(lifted + upper_nonnegative_products(table_levels, steps))
                cost.add(lifted.size, 2 * lifted.size)  # pragma: no mutate (accounting)
            values.append(upper_max_affine(lifted, slopes.hi, anchors, others))
            slope_min += [low] * table_levels.shape[1]
            slope_max += [high] * table_levels.shape[1]
        step_max = np.where(others[:, None, :], steps, 0.0).max(axis=2) if T else np.zeros((len(m), 0))
        return np.concatenate(values, axis=1), np.stack(slope_min, axis=1), np.stack(slope_max, axis=1), step_max

    def nonmax_values(self, m: np.ndarray, top: np.ndarray) -> Interval:
        """[r, T + 1, o]: enclosures of exact values >= EVOU[k, o] - EVOU[k, m[r]] for every non-max
        token k <= top[r] (T = 0): W(m, g), or for per_output+chords the smaller of W and
        max_k EVOU[k, o] - min_k EVOU[k, m], or the OV blocks'; for query_slot+ov_tiers+levels the
        tiers' U_1..U_{R+1} (tiers.py: for the tokens of tiers 1..j)."""
        R, V = len(m), self.V
        if self.handling == TIERED:
            return ov_tiers(self).enclose(m, top)
        w = self.w_run_i[top]
        nonmax = Interval(np.broadcast_to(w.lo[:, None], (R, V)), np.broadcast_to(w.hi[:, None], (R, V)))
        if self.handling == ATTENTION[2]:
            col_min = self.col_min_i[top, m]
            nonmax = nonmax.minimum(self.col_max_i[top] - Interval(col_min.lo[:, None], col_min.hi[:, None]))  # [r, o]
        elif self.handling == ATTENTION[3]:
            nonmax = nonmax.minimum(ov_blocks(self).upper(m, top))
        return Interval(nonmax.lo[:, None, :], nonmax.hi[:, None, :])

    def cell_bounds(self, q, m, c, g, tables: "CellTables", anchors: np.ndarray, sign_only: bool = False) -> np.ndarray:
        """Upper bounds of the largest wrong logit, per cell (q, m, c) with gap g. sign_only (for a
        search's sign tests): where the tiers' level already gives a negative bound, that bound,
        without the merged table's (the same sign: the bound is the smaller of the two)."""
        with np.errstate(all="ignore"):  # cells of the all-m case compute unused infinities
            return self._cell_bounds(q, m, c, g, tables, anchors, sign_only)

    def _cell_bounds(self, q, m, c, g, tables: "CellTables", anchors: np.ndarray, sign_only: bool = False) -> np.ndarray:
        a_min, a_max = self.attention(q, m, c, g)
        level, excess = tables.level_of(q, m, c, self.tier_attention(q, m, c, g, tables.top_row(m, c)))
        A = anchors[m, c]  # [cells, J]

        def largest(table: np.ndarray, i=slice(None)) -> np.ndarray:
            """The largest of F at a_min, a_max and chi at the anchors between, for table[i] per cell i."""
            mi, ci, Ai = m[i], c[i], A[i]
            chi = tables.values[mi, ci, table]
            slope_min, slope_max = tables.slope_min[mi, ci, table], tables.slope_max[mi, ci, table]
            upper_f = lambda a: piecewise_upper(a, Ai, chi, slope_min, slope_max)  # noqa: E731
            best = np.maximum(upper_f(a_min[i]), upper_f(a_max[i]))
            for j in range(Ai.shape[1]):
                between = (Ai[:, j] >= a_min[i]) & (Ai[:, j] <= a_max[i])
                best = np.where(between, np.maximum(best, chi[:, j]), best)
            return best

        err = self.direct_error(q, m)
        best = largest(level)
        if excess is not None:  # the level's bound plus its excess, or the merged tiers' (the last table)
            best = (Interval(best) + excess).hi
            rest = np.flatnonzero(~((Interval(best) + err).hi < 0)) if sign_only else slice(None)
            merged = tables.values.shape[2] - 1
            best[rest] = np.minimum(best[rest], largest(np.full(len(q), merged)[rest], rest))
        best = (Interval(best) + err).hi
        return np.where((q == m) & (c == 0), self.all_m.hi[m], best)

    def direct_error(self, q: np.ndarray, m: np.ndarray) -> Interval:
        """err >= EUPU[q, o] - EUPU[q, m] - (mean[o] - mean[m]) for every o != m (eupu.py): per q, or
        per (q, m)."""
        return self.err[q, 0] if self.err.shape[1] == 1 else self.err[q, m]


class CellTables:
    """The per-(m, c) tables of a variant (chi_tables) with the levels and smallest gaps they were
    computed for. levels[m, c] ([L, T]) is non-decreasing along L in every tier (checked at read)."""

    def __init__(self, values, slope_min, slope_max, step_max, levels: np.ndarray, g_star: np.ndarray):
        self.values, self.slope_min, self.slope_max, self.step_max = values, slope_min, slope_max, step_max
        self.levels, self.g_star = levels, g_star

    def top_row(self, m, c) -> np.ndarray:
        return np.maximum(m - self.g_star[m, c], 0)

    def level_of(self, q, m, c, attention: np.ndarray) -> tuple[np.ndarray, Interval | None]:
        """Per cell with tier attentions at most attention[i] ([cells, T]): the first level at least
        as large in every tier (the last if none is), and excess >= sum_j (A_j - level_j)^+ step_max_j,
        by which chi at A exceeds chi at that level (chi grows in A_j by at most step_max_j per unit:
        steps >= 0). With no tiers: level 0, excess None (nothing to add)."""
        L, T = self.levels.shape[2], self.levels.shape[3]  # (the tables hold L + 1 for T > 0: the last merges the tiers)
        if T == 0:
            return np.zeros(len(m), np.int64), None
        row = m * self.levels.shape[1] + c
        levels = self.levels.reshape(-1, L, T)
        level = np.zeros(len(m), np.int64)
        for j in range(T):  # levels below A_j: a prefix (non-decreasing along L)
            below = sum((levels[row, l, j] < attention[:, j]).astype(np.int64) for l in range(L))
            level = np.maximum(level, below)
        level = np.minimum(level, L - 1)
        excess = np.zeros(len(m))
        step_max = self.step_max.reshape(-1, T)
        with np.errstate(invalid="ignore", over="ignore"):
            for j in range(T):  # every factor >= 0, every product and sum rounded up
                over = np.maximum(next_up(attention[:, j] - levels[row, level, j]), 0.0)
                excess = next_up(excess + next_up(over * step_max[row, j]))
        cost.add(len(m) * T * (L + 4), len(m) * T * (L + 8))  # pragma: no mutate (accounting)
        return level, Interval(excess)

    def with_rows(self, m: np.ndarray, c: np.ndarray, rows, g_star: np.ndarray, levels: np.ndarray | None = None) -> "CellTables":
        """A copy with the rows (m[i], c[i]) replaced by rows (chi_rows' output) for smallest gaps
        g_star and levels (default: these tables' own)."""
        out = CellTables(*(table.copy() for table in (self.values, self.slope_min, self.slope_max, self.step_max)),
                         levels=self.levels if levels is None else levels, g_star=g_star)
        for table, new in zip((out.values, out.slope_min, out.slope_max, out.step_max), rows):
            table[m, c] = new
        return out


class OVBlocks:
    """For query_slot+ov_blocks+chords: an upper bound of EVOU[k, o] - EVOU[k, m] over the
    non-max tokens k <= top that pairs each k's two entries more closely than max_k - min_k. The
    tokens fall into blocks of s = ceil(sqrt(d_vocab)) consecutive ones. For k = o the term is
    exact (the diagonal); for k != o in a block wholly below top's block it is at most
    max_{k' in block, k' != o} EVOU[k', o] - min_{k' in block} EVOU[k', m], and in top's block the
    same over its tokens <= top. So N[o] = the largest of these terms (d_vocab^2 sqrt(d_vocab)
    per n_ctx rows: no d_vocab^3 term)."""

    def __init__(self, evou: Dyadic):
        ints = evou.ints
        V = ints.shape[0]
        self.size = isqrt(V - 1) + 1  # ceil(sqrt(V))
        spread = ints.max() - ints.min()
        off = ints.copy()
        off[np.arange(V), np.arange(V)] = ints.min() - spread - 1  # below every real term: never the largest
        starts = range(0, V, self.size)
        blocks = [slice(b, min(b + self.size, V)) for b in starts]
        as_interval = lambda table: Interval.of(Dyadic(np.array(table), evou.exp))  # noqa: E731
        self.full_off = as_interval([off[b].max(axis=0) for b in blocks])  # [block, o]
        self.full_min = as_interval([ints[b].min(axis=0) for b in blocks])  # [block, t]
        self.run_off = as_interval(np.concatenate([_running(off[b], np.maximum, axis=0) for b in blocks]))  # [top, o]
        self.run_min = as_interval(np.concatenate([_running(ints[b], np.minimum, axis=0) for b in blocks]))  # [top, t]
        self.diag = as_interval(ints.diagonal()[:, None] - ints)  # [o, m]: EVOU[o, o] - EVOU[o, m]
        cost.add(4 * V * V, 4 * V * V)  # pragma: no mutate (accounting)

    def upper(self, m: np.ndarray, top: np.ndarray) -> Interval:
        """[r, o]: an interval around the exact N, the largest of the terms. Each term's ends are
        computed differences of the tables' ends, rounded outward once after the maximum (the
        same floats as rounding each: next_up and next_down are non-decreasing)."""
        R, V = len(m), self.diag.shape[0]
        mine = np.arange(V)[None, :] <= top[:, None]
        diag = self.diag[np.arange(V)[None, :], m[:, None]]  # [r, o]
        with np.errstate(invalid="ignore", over="ignore"):
            low = np.maximum(np.where(mine, diag.lo, -np.inf), self.run_off.lo[top] - self.run_min.hi[top, m][:, None])
            high = np.maximum(np.where(mine, diag.hi, -np.inf), self.run_off.hi[top] - self.run_min.lo[top, m][:, None])
            for b in range(self.full_off.shape[0]):
                below = ((b + 1) * self.size <= top)[:, None]  # block b lies wholly below top's block
                if below.any():
                    low = np.where(below, np.maximum(low, self.full_off.lo[b][None, :] - self.full_min.hi[b, m][:, None]), low)
                    high = np.where(below, np.maximum(high, self.full_off.hi[b][None, :] - self.full_min.lo[b, m][:, None]), high)
        cost.add(2 * R * V * (self.full_off.shape[0] + 2), 6 * R * V * (self.full_off.shape[0] + 2))  # pragma: no mutate (accounting)
        return Interval(next_down(low), next_up(high))


def ov_blocks(tables: ModelTables) -> OVBlocks:
    return memo.cached(("subcubic-ov-blocks", tables.key), lambda: OVBlocks(tables.evou))


def ov_tiers(tables: ModelTables) -> tiers.OVTiers:
    return memo.cached(("subcubic-ov-tiers", tables.key), lambda: tiers.OVTiers(tables.evou, ov_blocks(tables), tables.w_run_i))


def piecewise_upper(a: np.ndarray, anchors: np.ndarray, chi: np.ndarray, slope_min: np.ndarray, slope_max: np.ndarray) -> np.ndarray:
    """F(a) >= chi(a) for a convex chi with chi(anchors[:, j]) <= chi[:, j] and slopes in
    [slope_min, slope_max]: the chord of the segment between anchors holding a, or beyond the
    first (last) anchor the line through it with the smallest (largest) slope. Rows are cells."""
    J = anchors.shape[1]
    first, last = anchors[:, 0], anchors[:, J - 1]
    left = Interval(chi[:, 0]) + (Interval(a) - Interval(first)) * Interval(slope_min)
    right = Interval(chi[:, J - 1]) + (Interval(a) - Interval(last)) * Interval(slope_max)
    out = np.where(a <= first, left.hi, right.hi)
    if J == 1:
        return out
    rows = np.arange(len(a))
    j = np.clip((anchors <= a[:, None]).sum(axis=1) - 1, 0, J - 2)
    lo_a, hi_a = anchors[rows, j], anchors[rows, j + 1]
    share = (Interval(a) - Interval(lo_a)) * (Interval(hi_a) - Interval(lo_a)).reciprocal()
    share = Interval(np.clip(share.lo, 0, 1), np.clip(share.hi, 0, 1))
    chord = Interval(chi[rows, j]) + share * (Interval(chi[rows, j + 1]) - Interval(chi[rows, j]))
    return np.where((a >= first) & (a <= last), chord.hi, out)


def _read(ctx: Context, variant: str):
    V, N = ctx.model.d_vocab, ctx.model.n_ctx
    if V * V * N > MAX_CELLS:
        raise ResourceLimit("subcubic", f"{cost.quantity(V * V * N)} cells exceed the subcubic limit {cost.quantity(MAX_CELLS)}")
    gaps = ctx.evidence.tensor("gaps", "<i8", (V, V, N))
    claims = ctx.evidence.tensor("claims", "<f4", (V, V, N)).astype(np.float64)
    handling = axes(variant)[1]
    if handling == ATTENTION[1]:
        anchors = np.zeros((V, N, 1))
    else:
        anchors = ctx.evidence.tensor("anchors", "<f8", (V, N, 1 if handling == ATTENTION[0] else None))
        if not (1 <= anchors.shape[2] <= MAX_ANCHORS and ((anchors >= 0) & (anchors <= 1)).all()
                and (np.diff(anchors, axis=2) > 0).all()):
            raise InvalidCertificate("evidence", f"anchors must be 1 to {MAX_ANCHORS} increasing values in [0, 1] per (m, c)")
    T = len(tiers.widths(V)) if handling == TIERED else 0
    if handling == TIERED:
        levels = ctx.evidence.tensor("levels", "<f8", (V, N, None, T))
        if not (1 <= levels.shape[2] <= MAX_LEVELS and ((levels >= 0) & (levels <= 1)).all() and (np.diff(levels, axis=2) >= 0).all()):
            raise InvalidCertificate("evidence", f"levels must be 1 to {MAX_LEVELS} values in [0, 1] per (m, c) and tier, "
                                     "non-decreasing along the levels")
    else:
        levels = np.zeros((V, N, 1, 0))
    valid = valid_cells(V, N)
    m_of = np.broadcast_to(np.arange(V)[None, :, None], valid.shape)
    if (gaps[~valid] != 0).any() or (claims[~valid] != 0).any():
        raise InvalidCertificate("evidence", "gaps and claims of cells that hold no inputs must be 0")
    if ((gaps[valid] < 1) | (gaps[valid] > np.maximum(m_of[valid], 1))).any():
        raise InvalidCertificate("evidence", "every gap must lie in [1, max(m, 1)]")
    return gaps, claims, anchors, levels, valid


def smallest_gaps(gaps: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """g*[m, c]: the smallest gap among the counted cells of (m, c) (1 if none)."""
    V, _, N = gaps.shape
    big = np.where(counted, gaps, V + 1).min(axis=0)
    return np.where(big > V, 1, big)


def verify(ctx: Context, variant: str) -> Outcome:
    V, N = ctx.model.d_vocab, ctx.model.n_ctx
    gaps, claims, anchors, levels, valid = _read(ctx, variant)
    counted = valid & (claims < 0)  # only these claims are used; a claim >= 0 asserts nothing
    q, m, c = (axis.astype(np.int64) for axis in np.nonzero(counted))
    g, claimed = gaps[q, m, c], claims[q, m, c]
    ctx.progress("subcubic", 0, 2)
    bounds = Bounds(ctx.model, variant, ctx.evidence)  # reads (and so validates) every hint
    ctx.progress("subcubic", 1, 2)
    if V > 1 and len(q):  # with one token there is no wrong output, and every claim holds
        tables = bounds.chi_tables(smallest_gaps(gaps, counted), anchors, levels)
        derived = bounds.cell_bounds(q, m, c, g, tables, anchors)
        bad = np.flatnonzero(~(claimed >= derived))
        if len(bad):
            i = bad[0]
            raise CheckError("subcubic", f"claim {float(claimed[i])!r} for cell (q={q[i]}, m={m[i]}, c={c[i]}, gap {g[i]}) "
                             f"is below the bound the checker derives ({float(derived[i])!r})")
        ctx.progress("subcubic", 2, 2)
    verified = cell_inputs(q, m, c, g, N)
    return Outcome(verified_correct=verified, notes={"cells": int(valid.sum()), "counted_cells": len(q)})

"""Score tiers (query_slot+ov_tiers+levels): the non-max tokens' values grouped by how far below the
row's largest allowed token they lie, so that a token that can only get little attention cannot
lend its large value to the tokens that get much.

A row (m, top) of the cell tables (top = m - g*, subcubic/__init__.py) splits the tokens k <= top
into tiers by the widths w_1 < ... < w_R, the powers of two up to s = ceil(sqrt(d_vocab)): tier j
(1 <= j <= R) holds top - w_j < k <= top - w_{j-1} (w_0 = 0), tier R + 1 every k <= top - w_R.
Tokens near the top get the most attention (the size direction of EQKE), so each tier's
attention is bounded per cell (Bounds.tier_attention) and each tier's value per output here:

    U_j[o] >= EVOU[k, o] - EVOU[k, m]   for every k in tiers 1..j,   U_1 <= U_2 <= ... <= U_{R+1},

U_j for j <= R the running maximum of the exact differences, so the w_R <= s nearest tokens are
paired with the outputs exactly; U_{R+1} also takes the tokens <= top - w_R through their OV-block
bound (OVBlocks), capped by W(m, g). Each U_j is an exact number, enclosed in an interval.

The inequality. For an input of a cell of the row, output o != m, attention a_M on the copies of
m and, for j >= 2, A_j on the non-max slots (the query's included when q != m) whose tokens lie in
tiers >= j (so A_1 = 1 - a_M), with t(i) the tier of slot i's token (Abel summation):

    sum_{non-max i} a_i (EVOU[x_i, o] - EVOU[x_i, m]) <= sum_i a_i U_{t(i)}[o]
        = (1 - a_M) U_1[o] + sum_{j=2}^{R+1} A_j (U_j[o] - U_{j-1}[o]),

and every U_j - U_{j-1} >= 0, so upper bounds of the A_j may stand in for them.

Cost: per row, R + 1 tables of d_vocab outputs from w_R <= s tokens and the OV blocks:
d_vocab^2 n_ctx sqrt(d_vocab) over the rows (no d_vocab^3 term).
"""

from __future__ import annotations

from math import isqrt

import numpy as np

from compact_proofs.checker import cost
from compact_proofs.checker.exact import Dyadic
from compact_proofs.checker.interval import Interval, next_down, next_up


def widths(d_vocab: int) -> list[int]:
    """w_1 < ... < w_R: 1, 2, 4, ... up to ceil(sqrt(d_vocab))."""
    s = isqrt(max(d_vocab, 1) - 1) + 1
    return [1 << j for j in range(s.bit_length()) if 1 << j <= s]


class OVTiers:
    """U_j[r, o] for rows (m[r], top[r]): the tiers' value tables."""

    def __init__(self, evou: Dyadic, blocks, w_run: Interval):
        self.evou = Interval.of(evou)
        self.blocks, self.w_run = blocks, w_run
        self.widths = widths(evou.shape[0])

    def enclose(self, m: np.ndarray, top: np.ndarray) -> Interval:
        """[r, R + 1, V]: enclosures of U_1..U_{R+1} (each end rounded outward once after the
        maxima: the same floats as rounding every difference, next_up and next_down being
        non-decreasing). A tier without tokens repeats the one before it."""
        V, R = self.evou.shape[1], len(self.widths)
        lo, hi = np.empty((len(m), R + 1, V)), np.empty((len(m), R + 1, V))
        run_lo, run_hi = np.full((len(m), V), -np.inf), np.full((len(m), V), -np.inf)
        step = 0
        with np.errstate(invalid="ignore", over="ignore"):
            for j, w in enumerate(self.widths):
                for i in range(step, w):  # the token top - i joins tier j + 1
                    k = top - i
                    here = (k >= 0)[:, None]
                    kk = np.maximum(k, 0)
                    run_lo = np.where(here, np.maximum(run_lo, self.evou.lo[kk] - self.evou.hi[kk, m][:, None]), run_lo)
                    run_hi = np.where(here, np.maximum(run_hi, self.evou.hi[kk] - self.evou.lo[kk, m][:, None]), run_hi)
                step = w
                lo[:, j], hi[:, j] = next_down(run_lo), next_up(run_hi)
            far = top - self.widths[-1]
            inside = (far >= 0)[:, None]
            bound = self.blocks.upper(m, np.maximum(far, 0)).minimum(self.w_run[np.maximum(far, 0)][:, None])
            lo[:, R] = np.where(inside, np.maximum(lo[:, R - 1], bound.lo), lo[:, R - 1])
            hi[:, R] = np.where(inside, np.maximum(hi[:, R - 1], bound.hi), hi[:, R - 1])
        cost.add(3 * len(m) * V * self.widths[-1] + 2 * len(m) * V, 6 * len(m) * V * self.widths[-1])  # pragma: no mutate (accounting)
        return Interval(lo, hi)

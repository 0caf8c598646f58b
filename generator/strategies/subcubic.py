"""The subcubic proofs' search: hints (low-rank directions), anchors, gaps, and claims.

The bound of a cell is defined by the checker (checker/strategies/subcubic): here the same
computation runs for every gap a cell can take, and each cell gets the smallest gap whose bound
is negative (the most inputs); its claim is that bound rounded up to float32, which the checker
reproduces exactly, so a claim one float32 ulp stronger is rejected.
"""

from __future__ import annotations

import numpy as np

from checker.context import Evidence, Progress
from checker.exact import Dyadic, mean_rows
from checker.strategies import subcubic as definition
from checker.strategies.subcubic import attention_error
from checker.weights import model_from_weights
from generator.strategies import Draft
from generator.strategies.cubic import round_up_f32


def _rank_one(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sigma u, v): the best rank-one approximation sigma u v^T."""
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    return u[:, 0] * s[0], vt[0]


def _hints(model, variant: str) -> dict[str, np.ndarray]:
    eupu_handling, _, error = definition.axes(variant)
    f = lambda d: d.to_float()  # noqa: E731
    V, N = model.d_vocab, model.n_ctx
    e_bar = f(model.W_E) + f(model.W_pos)[N - 1]
    hints: dict[str, np.ndarray] = {}
    if eupu_handling == "svd_query+max_diff":
        _, v = _rank_one(e_bar)
        hints["eupu_direction"] = (e_bar.mean(axis=0) @ v) * v  # the mean row's component along the top direction
    centre = f(mean_rows(model.W_pos))[0]
    keys_in = f(model.W_E) + centre
    left = e_bar @ f(model.W_Q) + f(model.b_Q)
    right = (keys_in @ f(model.W_K) + f(model.b_K)).T
    if error in attention_error.HANDLINGS[:4]:
        u, _, vt = np.linalg.svd(left @ right)
        hints["eqke_u"], hints["eqke_v"] = u[:, 0], vt[0]  # unit singular vectors: P = u u^T projects
    elif error != "exact_EQKE+max_diff_exact":
        ones = np.ones((V, 1))
        factors = [np.hstack([e_bar, ones]), np.vstack([f(model.W_Q), f(model.b_Q)]),
                   np.hstack([f(model.W_K).T, f(model.b_K).T]), np.vstack([keys_in.T, ones.T])]
        for i, factor in enumerate(factors, start=1):
            hints[f"peel{i}_left"], hints[f"peel{i}_right"] = _rank_one(factor)
    return hints


def prove(weights: dict[str, np.ndarray], progress: Progress, variant: str) -> Draft:
    model = model_from_weights(weights)
    V, N = model.d_vocab, model.n_ctx
    hints = _hints(model, variant)
    attention = definition.axes(variant)[1]
    valid = definition.valid_cells(V, N)
    gaps = np.where(valid, 1, 0).astype(np.int64)
    claims = np.zeros((V, V, N), dtype=np.float32)
    anchors = np.zeros((V, N))
    if V == 1:
        claims[0, 0, 0] = -1.0
        return Draft(evidence=_evidence(hints, gaps, claims, anchors, attention))
    progress("subcubic search", 0, 3)
    bounds = definition.Bounds(model, variant, Evidence(hints))
    q, m, c = (axis.astype(np.int64) for axis in np.nonzero(valid))
    if attention == definition.ATTENTION[0]:
        a_min, a_max = bounds.attention(q, m, c, np.ones_like(q))
        w = bounds.w_run[np.maximum(m - 1, 0)]
        chosen = np.where(bounds.ev_max.hi[m] < w.lo, a_min, a_max)  # the paper's choice of extreme
        total, count = np.zeros((V, N)), np.zeros((V, N))
        np.add.at(total, (m, c), chosen)
        np.add.at(count, (m, c), 1)
        anchors = np.clip(np.divide(total, count, out=np.zeros((V, N)), where=count > 0), 0, 1)
    progress("subcubic search", 1, 3)
    chi = bounds.chi(anchors)
    # every (cell, gap) pair a cell may use: gaps 1..max(m, 1)
    reps = np.maximum(m, 1)
    cell = np.repeat(np.arange(len(q)), reps)
    gap = np.concatenate([np.arange(1, r + 1) for r in reps])
    derived = bounds.cell_bounds(q[cell], m[cell], c[cell], gap, chi, anchors)
    usable = (derived < 0) & ((q[cell] == m[cell]) | (q[cell] <= m[cell] - gap))
    progress("subcubic search", 2, 3)
    best = np.full(len(q), -1)
    order = np.lexsort((gap, cell))  # by cell, then increasing gap
    first = order[usable[order]]
    cells_with, idx = np.unique(cell[first], return_index=True)
    best[cells_with] = first[idx]
    fallback = np.flatnonzero(best < 0)
    chosen_gap = np.where(best >= 0, gap[best], 1)
    value = np.where(best >= 0, derived[best], 0.0)
    # cells without a negative bound claim nothing (0 >= anything unverified)
    gaps[q, m, c] = chosen_gap
    claims[q, m, c] = np.where(best >= 0, round_up_f32(value), 0.0)
    progress("subcubic search", 3, 3)
    del fallback
    return Draft(evidence=_evidence(hints, gaps, claims, anchors, attention))


def _evidence(hints, gaps, claims, anchors, attention) -> dict:
    evidence = {"gaps": gaps, "claims": claims, **hints}
    if attention == definition.ATTENTION[0]:
        evidence["anchors"] = anchors
    return evidence

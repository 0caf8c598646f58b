"""The subcubic proofs' search: hints (low-rank directions), anchors, gaps, and claims.

The bound of a cell is defined by the checker (checker/strategies/subcubic): here the same
computation runs for every gap a cell can take, and each cell gets the smallest gap whose bound
is negative (the most inputs); its claim is that bound rounded up to float32, which the checker
reproduces exactly, so a claim one float32 ulp stronger is rejected.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import numpy as np

from compact_proofs.checker.context import Evidence, Progress
from compact_proofs.checker.exact import Dyadic, mean_rows
from compact_proofs.checker.strategies import subcubic as definition
from compact_proofs.checker.strategies.subcubic import attention_error
from compact_proofs.checker.weights import model_from_weights
from compact_proofs.generator.proving.strategies.draft import Draft
from compact_proofs.generator.proving.strategies.cubic import round_up_f32


_CACHE: OrderedDict = OrderedDict()


def _cached(key, compute: Callable):
    """compute(), once per process for each key (the 150 variants of one model share SVDs and
    anchors; a search aid, never trusted)."""
    if key not in _CACHE:
        _CACHE[key] = compute()
        while len(_CACHE) > 32:
            _CACHE.popitem(last=False)
    return _CACHE[key]


def _svd(model, name: str, matrix: Callable[[], np.ndarray], full: bool = False) -> tuple[np.ndarray, ...]:
    """np.linalg.svd(matrix(), full) for the matrix called `name` of this model."""
    return _cached(("svd", model.key, name, full), lambda: np.linalg.svd(matrix(), full_matrices=full))


def _rank_one(model, name: str, matrix: Callable[[], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(sigma u, v): the best rank-one approximation sigma u v^T of the matrix `name`."""
    u, s, vt = _svd(model, name, matrix)
    return u[:, 0] * s[0], vt[0]


def _hints(model, variant: str, rank: int = 1) -> dict[str, np.ndarray]:
    eupu_handling, _, error = definition.axes(variant)
    f = lambda d: d.to_float()  # noqa: E731
    V, N = model.d_vocab, model.n_ctx
    e_bar = f(model.W_E) + f(model.W_pos)[N - 1]
    hints: dict[str, np.ndarray] = {}
    if eupu_handling == "svd_query+max_diff":
        _, v = _rank_one(model, "e_bar", lambda: e_bar)
        hints["eupu_direction"] = (e_bar.mean(axis=0) @ v) * v  # the mean row's component along the top direction
    centre = f(mean_rows(model.W_pos))[0]
    keys_in = f(model.W_E) + centre
    left = e_bar @ f(model.W_Q) + f(model.b_Q)
    right = (keys_in @ f(model.W_K) + f(model.b_K)).T
    if error in attention_error.HANDLINGS[:4]:
        u, _, vt = _svd(model, "EQKE", lambda: left @ right, full=True)
        # unit singular vectors (P = U U^T projects); one vector each as [d_vocab], the paper's rank one
        hints["eqke_u"], hints["eqke_v"] = (u[:, 0], vt[0]) if rank == 1 else (u[:, :rank].T.copy(), vt[:rank].copy())
    elif error != "exact_EQKE+max_diff_exact":
        ones = np.ones((V, 1))
        factors = [np.hstack([e_bar, ones]), np.vstack([f(model.W_Q), f(model.b_Q)]),
                   np.hstack([f(model.W_K).T, f(model.b_K).T]), np.vstack([keys_in.T, ones.T])]
        for i, factor in enumerate(factors, start=1):
            hints[f"peel{i}_left"], hints[f"peel{i}_right"] = _rank_one(model, f"peel{i}", lambda: factor)
    return hints


CHORD_QUANTILES = (0.1, 0.3, 0.6, 0.9)


def _anchors(bounds, handling: str, q, m, c, V: int, N: int) -> np.ndarray:
    """mean_query+diff: the mean over queries of the paper's chosen extreme attention;
    per_output+chords: 0, 1 and quantiles of the cells' attention bounds; drop_average: 0."""
    if handling == definition.ATTENTION[1]:
        return np.zeros((V, N, 1))
    a_min, a_max = bounds.attention(q, m, c, np.ones_like(q))
    if handling == definition.ATTENTION[0]:
        w = bounds.w_run_i.hi[np.maximum(m - 1, 0)]
        ev_max = np.where(bounds.off, bounds.ev_i.hi, -np.inf).max(axis=1)
        chosen = np.where(ev_max[m] < w, a_min, a_max)
        total, count = np.zeros((V, N)), np.zeros((V, N))
        np.add.at(total, (m, c), chosen)
        np.add.at(count, (m, c), 1)
        return np.clip(np.divide(total, count, out=np.zeros((V, N)), where=count > 0), 0, 1)[:, :, None]
    width = len(CHORD_QUANTILES) + 2
    group = np.concatenate([m * N + c, m * N + c])
    inner = group_quantiles(group, np.concatenate([a_min, a_max]), V * N, CHORD_QUANTILES)
    return np.array([_spread_points(row, width) for row in inner]).reshape(V, N, width)


def group_quantiles(group: np.ndarray, values: np.ndarray, groups: int, probs) -> np.ndarray:
    """[groups, len(probs)]: np.quantile(values[group == k], probs) for every k (the default linear
    method, value for value), or 0.5 where group k has no values; one sort for all groups."""
    order = np.lexsort((values, group))
    ordered = np.append(values[order], 0.5)  # the last entry stands in for the empty groups
    counts = np.bincount(group, minlength=groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n = np.maximum(counts, 1)[:, None]
    virtual = (n - 1) * np.asarray(probs, dtype=np.float64)[None, :]
    below = np.floor(virtual)
    gamma = virtual - below
    at = lambda i: ordered[np.where(counts[:, None] > 0, starts[:, None] + i, len(values))]  # noqa: E731
    a, b = at(below.astype(np.int64)), at(np.minimum(below.astype(np.int64) + 1, n - 1))
    diff = b - a
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)


def _spread_points(inner: np.ndarray, width: int) -> np.ndarray:
    """0, 1 and the inner points, made strictly increasing, then the widest gaps halved to `width` points."""
    points = sorted({0.0, 1.0, *np.clip(inner, 0, 1).tolist()})
    while len(points) < width:
        i = int(np.argmax(np.diff(points)))
        points.insert(i + 1, (points[i] + points[i + 1]) / 2)
    return np.array(points)


LEVEL_QUANTILES = (0.0, 0.25, 0.5, 0.7, 0.85, 0.93, 0.98, 1.0)


def _levels(bounds, q, m, c, g, g_star, V: int, N: int) -> np.ndarray:
    """query_slot+ov_tiers+levels: per (m, c), quantiles of its cells' tier attention bounds (at
    gaps g, for the smallest gaps g_star), tier by tier: non-decreasing along the levels, and the
    top level dominates every one of these cells. Other handlings: one empty level."""
    T = len(bounds.tier_widths)
    if not T:
        return np.zeros((V, N, 1, 0))
    attention = bounds.tier_attention(q, m, c, g, np.maximum(m - g_star[m, c], 0))  # [cells, T]
    group = m * N + c
    per_tier = [group_quantiles(group, attention[:, j], V * N, LEVEL_QUANTILES) for j in range(T)]  # [V N, L] each
    levels = np.stack(per_tier, axis=2)  # [V N, L, T]
    empty = np.bincount(group, minlength=V * N) == 0
    levels[empty] = 0.0
    levels = np.maximum.accumulate(np.clip(levels, 0.0, 1.0), axis=1)  # quantiles are non-decreasing; rounding aside
    return levels.reshape(V, N, len(LEVEL_QUANTILES), T)


def prove(weights: dict[str, np.ndarray], progress: Progress, variant: str, rank: int = 1,
          bounds_type: Callable = definition.Bounds) -> Draft:
    """The search. `bounds_type` is the checker's Bounds, or for the slack ledger's diagnostics a
    subclass with one step exact (ledger.py: its drafts are never certificates)."""
    model = model_from_weights(weights)  # memoised with everything derived from it (checker/memo.py)
    V, N = model.d_vocab, model.n_ctx
    hints = _hints(model, variant, rank)
    handling = definition.axes(variant)[1]
    valid = definition.valid_cells(V, N)
    gaps = np.where(valid, 1, 0).astype(np.int64)
    claims = np.zeros((V, V, N), dtype=np.float32)
    empty_levels = np.zeros((V, N, 1, len(definition.tiers.widths(V)) if handling == definition.TIERED else 0))
    if V == 1:
        claims[0, 0, 0] = -1.0
        return Draft(evidence=_evidence(hints, gaps, claims, np.zeros((V, N, 1)), empty_levels, handling), claimed_correct=1)
    progress("subcubic search", 0, 3)
    bounds = bounds_type(model, variant, Evidence(hints))
    q, m, c = (axis.astype(np.int64) for axis in np.nonzero(valid))
    # the anchors depend on the attention bounds alone, which the direct-path handlings share
    _, _, error = definition.axes(variant)
    anchors = _cached(("anchors", model.key, error, handling, rank, bounds_type), lambda: _anchors(bounds, handling, q, m, c, V, N))
    progress("subcubic search", 1, 3)
    # the smallest gap with a negative bound, by bisection (a cell's bound does not increase with
    # its gap: fewer non-max tokens), first with the loosest tables (g* = 1)
    g_star = np.ones((V, N), np.int64)
    levels = _levels(bounds, q, m, c, np.ones_like(q), g_star, V, N)
    tables = bounds.chi_tables(g_star, anchors, levels)
    limit = np.where(q == m, np.maximum(m, 1), m - q)  # beyond m - q the query itself is excluded
    low = _smallest_negative_gaps(bounds, q, m, c, np.ones_like(q), limit, tables, anchors)
    chosen = low <= limit
    progress("subcubic search", 2, 3)
    # the checker uses g* from the counted cells: recompute with it until the counted set is stable
    # (and, for the tiers, the levels from the counted cells at their gaps); the tiers then search
    # again with these tables, every cell at a gap of at least its row's g* (so g* stays)
    for search in range(2 if levels.shape[3] else 1):
        if search:  # cells already at their row's g* keep it
            floor = tables.g_star[m, c]
            again = np.flatnonzero(~chosen | (low > floor))
            low[again] = _smallest_negative_gaps(bounds, q[again], m[again], c[again], np.minimum(floor[again], limit[again] + 1),
                                                 limit[again], tables, anchors)
            chosen = low <= limit
        gaps[q, m, c] = np.where(valid[q, m, c], 1, 0)
        gaps[q[chosen], m[chosen], c[chosen]] = low[chosen]
        tables, levels, chosen, final = _settle(bounds, tables, levels, anchors, gaps, q, m, c, chosen, V, N, new_levels=not search)
    claims[q, m, c] = np.where(chosen, round_up_f32(np.where(chosen, final, 0.0)), 0.0)
    progress("subcubic search", 3, 3)
    count = definition.cell_inputs(q[chosen], m[chosen], c[chosen], low[chosen], N)
    return Draft(evidence=_evidence(hints, gaps, claims, anchors, levels, handling), claimed_correct=count)


def _smallest_negative_gaps(bounds, q, m, c, lowest, limit, tables, anchors) -> np.ndarray:
    """Per cell, the smallest gap in [lowest, limit] with a negative bound, by bisection (a cell's
    bound does not increase with its gap: fewer non-max tokens), else limit + 1."""
    # answer in [low, high], high = limit + 1 meaning none; most cells are settled by the ends:
    # no negative bound even at the largest gap, or a negative one already at the lowest
    negative = (lowest <= limit) & (bounds.cell_bounds(q, m, c, limit, tables, anchors, sign_only=True) < 0)
    low, high = np.where(negative, lowest, limit + 1), np.where(negative, limit, limit + 1)
    ends = np.flatnonzero(negative & (limit > lowest))
    at_low = bounds.cell_bounds(q[ends], m[ends], c[ends], lowest[ends], tables, anchors, sign_only=True) < 0
    high[ends] = np.where(at_low, lowest[ends], high[ends])
    low[ends] = np.where(at_low, lowest[ends], lowest[ends] + 1)
    while (low < high).any():
        active = np.flatnonzero(low < high)
        mid = (low[active] + high[active]) // 2
        negative = bounds.cell_bounds(q[active], m[active], c[active], mid, tables, anchors, sign_only=True) < 0
        high[active] = np.where(negative, mid, high[active])
        low[active] = np.where(negative, low[active], mid + 1)
    return low


def _settle(bounds, tables, levels, anchors, gaps, q, m, c, chosen, V: int, N: int, new_levels: bool = True):
    """The tables for g* of the chosen cells (and, with new_levels, their levels), re-evaluating the
    chosen cells and dropping those no longer negative, until the set is stable (at most four rounds)."""
    final = np.zeros(len(q))
    for round_ in range(4):
        counted = np.zeros(gaps.shape, bool)
        counted[q[chosen], m[chosen], c[chosen]] = True
        g_star = definition.smallest_gaps(gaps, counted)
        at = np.flatnonzero(chosen)
        if levels.shape[3] and new_levels and not round_:  # the levels of the counted cells at their gaps, for the new g*
            levels = _levels(bounds, q[at], m[at], c[at], gaps[q[at], m[at], c[at]], g_star, V, N)
        tables = _update_tables(bounds, tables, g_star, anchors, levels)
        final = np.zeros(len(q))
        final[at] = bounds.cell_bounds(q[at], m[at], c[at], gaps[q[at], m[at], c[at]], tables, anchors)
        still = chosen & (final < 0)
        if (still == chosen).all():
            break
        chosen = still
    return tables, levels, chosen, final


def _update_tables(bounds, tables, new_g_star: np.ndarray, anchors: np.ndarray, levels: np.ndarray):
    """bounds.chi_tables(new_g_star, anchors, levels) from tables: only the rows whose g* or levels changed."""
    m, c = np.nonzero((new_g_star != tables.g_star) | (levels != tables.levels).any(axis=(2, 3)))
    if not len(m):
        return tables
    rows = bounds.chi_rows(m, np.maximum(m - new_g_star[m, c], 0), anchors[m, c], levels[m, c])
    return tables.with_rows(m, c, rows, new_g_star, levels)


def _evidence(hints, gaps, claims, anchors, levels, handling) -> dict:
    evidence = {"gaps": gaps, "claims": claims, **hints}
    if handling != definition.ATTENTION[1]:
        evidence["anchors"] = anchors
    if handling == definition.TIERED:
        evidence["levels"] = levels
    return evidence

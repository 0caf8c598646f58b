"""Whether every sequence of a cell is correct: the induction head's softmax over positions, with its
scores and values bounded through the layer-0 mixtures (mixture.py), checked as one sign.

Fix a cell (cells.py) with label l, a layer-1 head g and an output o != l. For a sequence x of the
cell let s_j be g's score at key position j, Z_j[l - o] the value it reads there, and D[l - o] the
rest of the logit difference (direct path and layer 0 at the last position). With one layer-1 head,
x is correct against o iff D + sum_j a_j Z_j > 0 with a = softmax(s), which follows from

    sum_j e^{s_j - t} (Z_j + D_lo) > 0      for any common t and any D_lo <= D.            (SIGN)

Scores. The query is Q = Q_F + dQ: Q_F its fixed part (the cell's fixed tokens at the last
position's layer-0 mixtures) and dQ = sum_h beta_h (Qw_R^h - Qw_F^h) in the polytope
P = sum_h conv({0} u {beta_max_h (Qw[g][h][u, k] - Qw_F^h) : (u, k) free}). Subtracting the same
dQ . Kbar from every score (Kbar any vector: here the target key's fixed part) changes no softmax:

    s_j' = Q_F . K_j + dQ . (K_F,j - Kbar) + dQ . (K_j - K_F,j)

Q_F . K_j is bounded over the key's layer-0 mixture by (MIXTURE); the last term by
||dQ||_2 ||K_j - K_F,j||_2 <= R dK_j, R the largest norm over P's generators. So
s_j' <= U_j(dQ) := A_hi,j + dQ . (K_F,j - Kbar) + R dK_j, affine in dQ, and s_j' >= the least
value of the corresponding lower affine bound over P's vertices.

Positions and tokens. Each position j takes an option (t', t) = (x_{j-1}, x_j) allowed by the cell;
the bounds above are per option. For a negative value bound e^{s'} (Z + D_lo) >= e^{U_j(dQ)} (Z_lo + D_lo),
which is concave in dQ; for a non-negative one it is >= e^{s'_lo} (Z_lo + D_lo). So the left side of
(SIGN) is at least a concave function of dQ (for every choice of options), whose least value on P is
at a vertex. `vertices` evaluates every vertex of one layer-0 head's polytope (the others' terms
bounded per position); for each vertex the least sum over consistent option sequences
(x_{j-1} of one position is x_j of the one before) is a shortest path over positions, computed
exactly in rounded-down floats. The cell holds for o if that least value is certainly positive at
every vertex.

Several layer-1 heads: each head's average is at least lambda_g once (SIGN) holds for Z - lambda_g in
place of Z + D_lo; the lambda_g are found by bisection and certified that way, and the cell holds for
o if D_lo + sum_g lambda_g > 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compact_proofs.checker import cost
from compact_proofs.checker.ball import Ball, contract
from compact_proofs.checker.interval import INF, Interval, exp_lower, exp_upper, next_down, next_up, sum_up
from compact_proofs.checker.strategies.induction.cells import Cell
from compact_proofs.checker.strategies.induction.mixture import KeyMixtures, QueryMixture, dinkelbach, exp_weights, norm_up, ratio_upper
from compact_proofs.checker.strategies.induction.tables import Tables, build
from compact_proofs.checker.transformer import Transformer

BISECTION_STEPS = 16
CHUNK = 1 << 21  # entries of the largest arrays of one pass (vertices x options x outputs, or x free tokens)


def _ball(x: Interval) -> Ball:
    return Ball.of_interval(x.lo, x.hi)


def _interval(ball: Ball) -> Interval:
    return Interval(ball.lower(), ball.upper())


@dataclass
class Prepared:
    """Everything that does not depend on the cell: the tables, each layer-0 head's key mixtures,
    every layer-1 head's fixed key parts K_F [N, V, V, E] and their deviation bounds dK [N, V, V]."""

    tables: Tables
    keys: tuple[KeyMixtures, ...]
    weights: tuple[Interval, ...]  # per layer-0 head: e^{s0[t, j, u, k] - shift[t, j]}, [t, j, u, k]
    key_fixed: tuple[Interval, ...]
    key_deviation: tuple[np.ndarray, ...]
    _values: dict

    def values(self, g: int, label: int) -> np.ndarray:
        """[N, V (t'), V (t), V (o)]: a lower bound of head g's value Z_j[label] - Z_j[o] at every key option."""
        if (g, label) not in self._values:
            T = self.tables
            total = None
            for h, keys in enumerate(self.keys):
                zw = T.ZW[g][h]
                diff = Interval(np.moveaxis(next_down(zw.lo[..., label][..., None] - zw.hi), -1, 0),
                                np.moveaxis(next_up(zw.hi[..., label][..., None] - zw.lo), -1, 0))  # [o, u, k]
                part = keys.bound(diff).lo  # [o, N, t', t]
                total = part if total is None else next_down(total + part)
            zb = T.Zb[g]
            own = next_down(zb.lo[..., label][..., None] - zb.hi)  # [t, j, o]
            self._values[g, label] = next_down(np.moveaxis(total, 0, -1) + np.swapaxes(own, 0, 1)[:, None, :, :])
        return self._values[g, label]


def prepare(model: Transformer) -> Prepared:
    T = build(model)
    keys = tuple(KeyMixtures.of(s0) for s0 in T.s0)
    key_fixed, key_deviation = [], []
    for g in range(len(T.Kb)):
        fixed = Interval(np.swapaxes(T.Kb[g].lo, 0, 1)[:, None], np.swapaxes(T.Kb[g].hi, 0, 1)[:, None])  # [N, 1, t, E]
        deviation = np.zeros((T.n_ctx, T.d_vocab, T.d_vocab))
        for h, mixtures in enumerate(keys):
            kw = T.KW[g][h]
            part = mixtures.fixed(Interval(np.moveaxis(kw.lo, -1, 0), np.moveaxis(kw.hi, -1, 0)))  # [E, N, t', t]
            fixed = fixed + Interval(np.moveaxis(part.lo, 0, -1), np.moveaxis(part.hi, 0, -1))
            deviation = next_up(deviation + mixtures.deviation(kw))
        key_fixed.append(fixed)
        key_deviation.append(deviation)
    weights = tuple(exp_weights(Interval(s0.lo, s0.hi), np.broadcast_to(np.tril(np.ones((T.n_ctx, T.n_ctx), dtype=bool))[None, :, None, :], s0.lo.shape))
                    for s0 in T.s0)
    return Prepared(T, keys, weights, tuple(key_fixed), tuple(key_deviation), {})


def options(allowed: np.ndarray) -> np.ndarray:
    """[N, V (t'), V (t)]: the options (x_{j-1}, x_j) a cell allows at each position (t' = 0 stands
    for the absent previous token at j = 0)."""
    N, V = allowed.shape
    out = np.zeros((N, V, V), dtype=bool)
    out[0, 0] = allowed[0]
    out[1:] = allowed[:-1, :, None] & allowed[1:, None, :]
    return out


def least_path(terms: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The least sum of terms[..., j, x_{j-1}, x_j] over the sequences the cell allows, rounded
    down: a shortest path over positions. terms [..., N, V, V] lower bounds -> [...]."""
    N = allowed.shape[0]
    terms = np.where(options(allowed), np.nan_to_num(terms, nan=-INF), INF)
    best = terms[..., 0, 0, :]  # [..., t]
    for j in range(1, N):
        with np.errstate(invalid="ignore"):
            step = next_down(best[..., :, None] + terms[..., j, :, :])
        best = np.where(np.isposinf(best[..., :, None]) | np.isposinf(terms[..., j, :, :]), INF, step).min(axis=-2)
    cost.add(terms.size * 2)  # pragma: no mutate (accounting)
    return best.min(axis=-1)


def key_range(prep: Prepared, h: int, f: Interval, allowed: np.ndarray) -> Interval:
    """[..., N, V (t'), V (t)]: the exact range, over the cell's free tokens at positions k < j - 1, of
    head h's layer-0 mixture at key option (j, t', t) in the functionals f[..., u, k] (ratio_upper on
    both sides, each also bounded by (MIXTURE); the tighter bound is kept)."""
    N, V = allowed.shape
    lead = f.shape[:-2]
    w = prep.weights[h]  # [t, j, u, k]
    j, tp, t = np.meshgrid(np.arange(N), np.arange(V), np.arange(V), indexing="ij")
    prev = np.maximum(j - 1, 0)
    fixed_w = Interval(np.stack([np.where(j > 0, w.lo[t, j, tp, prev], 0.0), w.lo[t, j, t, j]], -1),
                       np.stack([np.where(j > 0, w.hi[t, j, tp, prev], 0.0), w.hi[t, j, t, j]], -1))  # [j, t', t, 2]
    free = (np.arange(N)[None, :] < np.arange(N)[:, None] - 1)[:, None, :, None] & allowed[None, None, :, :]  # [j, 1, k, u]
    free_w = Interval(np.where(free, w.lo.transpose(1, 0, 3, 2), 0.0)[:, None], np.where(free, w.hi.transpose(1, 0, 3, 2), 0.0)[:, None])  # [j, 1, t, k, u]
    k_first = Interval(np.swapaxes(f.lo, -1, -2), np.swapaxes(f.hi, -1, -2))  # [..., k, u]
    expand = (slice(None),) * len(lead) + (None, None, None)
    bounds = []
    for sign in (1.0, -1.0):
        fixed_f = Interval(np.stack([f.lo[..., tp, prev], f.lo[..., t, j]], -1), np.stack([f.hi[..., tp, prev], f.hi[..., t, j]], -1))
        free_f = Interval(k_first.lo[expand], k_first.hi[expand])  # [..., 1, 1, 1, k, u]
        if sign < 0:
            fixed_f, free_f = -fixed_f, -free_f
        shape = lead + (N, V, V, N, V)
        guess = dinkelbach(np.broadcast_to(0.5 * fixed_w.lo + 0.5 * fixed_w.hi, lead + (N, V, V, 2)), 0.5 * fixed_f.lo + 0.5 * fixed_f.hi,
                           np.broadcast_to(0.5 * free_w.lo + 0.5 * free_w.hi, shape), np.broadcast_to(0.5 * free_f.lo + 0.5 * free_f.hi, shape))
        bounds.append(ratio_upper(fixed_w, fixed_f, free_w, free_f, np.nan_to_num(guess, nan=0.0)))
    mixture = prep.keys[h].bound(f)
    return Interval(np.maximum(-bounds[1], mixture.lo), np.minimum(bounds[0], mixture.hi))


@dataclass(frozen=True)
class Scores:
    """A head's scores (relative to the common shift dQ . Kbar) at every option: s_lo [N, V, V], and
    s_hi [vertices, N, V, V] (one row per vertex of the enumerated polytope; one row in all)."""

    lo: np.ndarray
    hi: np.ndarray


def scores(prep: Prepared, g: int, cell: Cell, queries: list[QueryMixture], enumerate_vertices: bool, exact_keys: bool) -> Scores:
    T = prep.tables
    qf, parts, generators = T.Qb[g][cell.q], [], []
    for h, query in enumerate(queries):
        qw = T.Qw[g][h]
        part = query.fixed(Interval(np.moveaxis(qw.lo, -1, 0), np.moveaxis(qw.hi, -1, 0)))  # [E]
        parts.append(part)
        qf = qf + part
        free = np.argwhere(query.free)  # [C, 2] (u, k)
        gen = Interval(qw.lo[free[:, 0], free[:, 1]], qw.hi[free[:, 0], free[:, 1]]) - part  # [C, E]
        beta = np.full(gen.lo.shape, np.float64(query.beta))
        generators.append(Interval(beta, beta) * gen if query.beta > 0 else Interval(np.zeros((0, part.lo.shape[0]))))
    key_fixed = prep.key_fixed[g]
    kbar = 0.5 * key_fixed.lo[cell.p + 1, cell.q, cell.label] + 0.5 * key_fixed.hi[cell.p + 1, cell.q, cell.label]
    # one layer-0 head's polytope is enumerated (the one with the most generators): with exact keys
    # its vertices move the query direction itself, otherwise they enter through dQ . (K_F - Kbar)
    star = max(range(len(generators)), key=lambda h: len(generators[h].lo))
    zero = np.zeros((1,) + qf.lo.shape)
    moved = generators[star] if exact_keys else Interval(np.zeros((0,) + qf.lo.shape))
    vertices = Interval(np.concatenate([zero, moved.lo]), np.concatenate([zero, moved.hi]))  # [v, E]
    directions = _ball(vertices + qf)
    a = _interval(contract(_ball(T.Kb[g]), directions, "tje,ve->vjt"))  # [v, N, t]
    shift = _interval(contract(_ball(vertices), kbar, "ve,e->v"))  # v . Kbar, the same at every position
    a = Interval(next_down(a.lo - shift.hi[:, None, None])[:, :, None, :], next_up(a.hi - shift.lo[:, None, None])[:, :, None, :])
    N, V = cell.allowed.shape
    rows = max(1, CHUNK // (N * V) ** 2 // V)  # vertices per pass of key_range ([v, N, V, V, N, V])
    for h, keys in enumerate(prep.keys):
        f = _interval(contract(_ball(T.KW[g][h]), directions, "uke,ve->vuk"))  # [v, V, N]
        if exact_keys:
            parts = [key_range(prep, h, f[i : i + rows], cell.allowed) for i in range(0, len(f.lo), rows)]
            a = a + Interval(np.concatenate([x.lo for x in parts]), np.concatenate([x.hi for x in parts]))
        else:
            a = a + keys.bound(f)
    # the rest of the deviation: dQ_h . (K_F - Kbar) per position, and ||dQ_h||_2 ||K - K_F||_2
    centred = _ball(key_fixed - kbar)  # [N, V, V, E]
    lo, hi, radius = a.lo.min(axis=0), a.hi, 0.0
    for h, gen in enumerate(generators):
        if len(gen.lo) == 0 or (exact_keys and h == star):
            continue
        lin = _interval(contract(centred, _ball(gen), "jabe,ce->cjab"))
        lo = next_down(lo + np.minimum(lin.lo.min(axis=0), 0.0))
        if h == star:
            hi = next_up(hi + np.concatenate([np.zeros((1,) + lin.hi.shape[1:]), lin.hi]))
        else:
            hi = next_up(hi + np.maximum(lin.hi.max(axis=0), 0.0)[None])
        radius = next_up(radius + norm_up(gen).max())
    if radius > 0:
        second = next_up(radius * prep.key_deviation[g])
        lo, hi = next_down(lo - second), next_up(hi + second[None])
    if not enumerate_vertices:
        hi = hi.max(axis=0, keepdims=True)
    cost.add(int(np.prod(hi.shape)) * 4)  # pragma: no mutate (accounting)
    return Scores(lo, hi)


def _least_sums(values: np.ndarray, s: Scores, allowed: np.ndarray) -> np.ndarray:
    """The least over vertices and option sequences of sum_j e^{s_j - t} values_j (rounded down), with
    values [N, V, V, O] lower bounds: e^{s_lo} where a value is >= 0, e^{s_hi} where it is < 0. -> [O]."""
    shift = np.nan_to_num(np.where(options(allowed)[None], s.hi, -INF).max(), posinf=0.0, neginf=0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        grow = exp_lower(next_down(s.lo - shift), tight=True)[..., None]  # [N, V, V, 1]
        shrink = exp_upper(next_up(s.hi - shift), tight=True)[..., None]  # [vertices, N, V, V, 1]
    with np.errstate(invalid="ignore", over="ignore"):
        positive = next_down(grow * np.maximum(values, 0.0))
    out = np.full(values.shape[-1], INF)
    rows = max(1, CHUNK // max(1, values.size))
    for start in range(0, len(shrink), rows):
        with np.errstate(invalid="ignore", over="ignore"):
            terms = np.where(values >= 0, positive, next_down(shrink[start : start + rows] * values))  # [v, N, V, V, O]
        least = least_path(np.moveaxis(terms, -1, 1), allowed)  # [v, O]
        out = np.minimum(out, np.nan_to_num(least, nan=-INF).min(axis=0))
    return out


def correct_against(prep: Prepared, cell: Cell, enumerate_vertices: bool, exact_keys: bool) -> np.ndarray:
    """[V] bool: whether every sequence of the cell is certainly correct against each output o
    (False at o = label)."""
    T = prep.tables
    V = T.d_vocab
    queries = [QueryMixture.of(s0, cell.q, cell.allowed) for s0 in T.s0]
    direct = Interval(next_down(T.Db.lo[cell.q, cell.label] - T.Db.hi[cell.q]), next_up(T.Db.hi[cell.q, cell.label] - T.Db.lo[cell.q]))
    for h, query in enumerate(queries):
        dw = T.Dw[h]
        diff = Interval(np.moveaxis(next_down(dw.lo[..., cell.label][..., None] - dw.hi), -1, 0),
                        np.moveaxis(next_up(dw.hi[..., cell.label][..., None] - dw.lo), -1, 0))  # [o, u, k]
        direct = direct + query.bound(diff)
    d_lo = direct.lo
    heads = len(T.Qb)
    others = np.arange(V) != cell.label
    if heads == 1:
        values = next_down(prep.values(0, cell.label) + d_lo)
        least = _least_sums(values, scores(prep, 0, cell, queries, enumerate_vertices, exact_keys), cell.allowed)
        return others & (least > 0)
    total = d_lo.copy()
    for g in range(heads):
        total = next_down(total + _certified_average(prep, g, cell, queries, enumerate_vertices, exact_keys))
    return others & (total > 0)


def _certified_average(prep: Prepared, g: int, cell: Cell, queries: list[QueryMixture], enumerate_vertices: bool, exact_keys: bool) -> np.ndarray:
    """[V]: per output o, a lambda with head g's average of Z[label] - Z[o] > lambda on every sequence
    of the cell: the least option value (an average is at least its least term), raised by bisection
    to wherever (SIGN) is certified for Z - lambda."""
    values = prep.values(g, cell.label)  # [N, V, V, O]
    s = scores(prep, g, cell, queries, enumerate_vertices, exact_keys)
    allowed_values = np.where(options(cell.allowed)[..., None], values, INF)
    low = next_down(np.nan_to_num(allowed_values.min(axis=(0, 1, 2)), nan=-INF, posinf=-INF))
    high = np.nan_to_num(np.where(options(cell.allowed)[..., None], values, -INF).max(axis=(0, 1, 2)), nan=-INF, neginf=-INF)
    for _ in range(BISECTION_STEPS):
        middle = np.where(np.isfinite(low) & np.isfinite(high), 0.5 * low + 0.5 * high, low)
        holds = _least_sums(next_down(values - middle), s, cell.allowed) > 0
        low = np.where(holds, middle, low)
        high = np.where(holds, high, middle)
    return low

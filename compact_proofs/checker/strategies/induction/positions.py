"""`induction/positions`: the compact induction proof for the inputs where the query token occurs
once before the end, at a cost polynomial in d_vocab and n_ctx (no tree, no evidence).

Cells C(q, u, p, l): x_{n-1} = q, x_{n-2} = u, x_p = q, x_{p+1} = l and x_i != q at every other
position (q occurs exactly once earlier, at p, so the label is l; u = q = l when p = n - 2, u = l
when p = n - 3). They are disjoint, each has (d_vocab - 1)^f sequences (f its positions that are
only "not q"), and the checker adds the sizes of those it certifies.

A cell is certified against an output o by (SIGN) of bound.py for each layer-1 head g, bounded
position by position instead of over paths:

    sum_j e^{s_j - t} (Z_j + D_lo / H) >= sum_j T_j > 0,

where position j holds an option (x_{j-1}, x_j) from the cell's sets, each set a single token or
"not q"; T_j is the exact vertex term when both are single tokens, and otherwise the least of
e^{s_hi} min(0, Z_lo + D_lo / H) over the options, which is at least (largest e^{s_hi} over them)
times (least min(0, Z_lo + D_lo / H) over them). With H layer-1 heads each head must exceed
-D_lo / H. Scores, values and D_lo are bounded as in bound.py (MIXTURE for the key mixtures, the
query's layer-0 mixture at the last position with x_{n-1}, x_{n-2} fixed and every other position
free with any token), except that the query's deviation dQ enters each position alone:
dQ . (K_F,j - Kbar) lies in beta [min_c, max_c] of (Qw_c - Qw_F) . (K_F,j - Kbar) (with 0), over the
free components c = (v, i), i <= n - 3, for a fixed Kbar (the mean fixed key); the extremes over c
are computed once per model.
"""

from __future__ import annotations

import numpy as np

from compact_proofs.checker import cost
from compact_proofs.checker.ball import contract
from compact_proofs.checker.interval import INF, Interval, exp_lower, exp_upper, next_down, next_up, sum_up
from compact_proofs.checker.strategies.induction.bound import Prepared, _ball, _interval
from compact_proofs.checker.strategies.induction.mixture import KeyMixtures, QueryMixture, norm_up, tied, tied_terms

NOT_Q = -1


def sets(V: int, N: int, q: int, u: int, P: tuple[int, ...], label: int) -> list[int] | None:
    """The cell's token set at each position (a token, or NOT_Q), or None if (q, u, P, label) is not
    a cell: q exactly at the positions P (p = max P the most recent) and n - 1, the label at p + 1,
    u at n - 2, every other position any token but q."""
    if not P or len(set(P)) != len(P) or min(P) < 0 or max(P) > N - 2:
        return None
    p = max(P)
    out = [NOT_Q] * N
    fixed = [(N - 1, q), (p + 1, label), (N - 2, u)] + [(i, q) for i in P]
    for i, token in fixed:
        if out[i] not in (NOT_Q, token):
            return None
        out[i] = token
    if sum(1 for t in out if t == q) != len(P) + 1:  # q nowhere else (the label or u is not a further q)
        return None
    return out


def size(V: int, S: list[int]) -> int:
    return (V - 1) ** sum(1 for s in S if s == NOT_Q)


class QueryScores:
    """For one layer-1 head g: per-model extremes over the free query components, and per query
    cell (q, u) the score bounds s_lo [N, V, V], s_hi [N, V, V] at every key option."""

    def __init__(self, prep: Prepared, g: int):
        T = prep.tables
        self.prep, self.g = prep, g
        fixed = prep.key_fixed[g]  # [N, V, V, E]
        self.kbar = (0.5 * fixed.lo + 0.5 * fixed.hi).reshape(-1, fixed.lo.shape[-1]).mean(axis=0)
        self.centred = _ball(fixed - self.kbar)
        N = T.n_ctx
        self.low, self.high, self.comps = [], [], []
        for h in range(len(T.s0)):
            qw = T.Qw[g][h]
            comps = Interval(qw.lo[:, : max(N - 2, 0)].reshape(-1, qw.lo.shape[-1]), qw.hi[:, : max(N - 2, 0)].reshape(-1, qw.lo.shape[-1]))
            if len(comps.lo) == 0:  # no free component: the query is fixed (beta = 0)
                comps = Interval(np.zeros((1, qw.lo.shape[-1])))
            lin = _interval(contract(self.centred, _ball(comps), "jabe,ce->jabc"))
            self.low.append(lin.lo.min(axis=-1))
            self.high.append(lin.hi.max(axis=-1))
            self.comps.append(comps)

    def query(self, queries: list[QueryMixture], q: int) -> tuple:
        """What the scores need of the query cell (q, u): its fixed part and the deviation's terms."""
        prep, g = self.prep, self.g
        T = prep.tables
        qf, radius = T.Qb[g][q], 0.0
        low = high = 0.0
        for h, query in enumerate(queries):
            qw = T.Qw[g][h]
            part = query.fixed(Interval(np.moveaxis(qw.lo, -1, 0), np.moveaxis(qw.hi, -1, 0)))
            qf = qf + part
            if query.beta > 0:
                fixed_lin = _interval(contract(self.centred, _ball(part), "jabe,e->jab"))
                beta = np.float64(query.beta)
                low = next_down(low + next_down(beta * np.minimum(0.0, next_down(self.low[h] - fixed_lin.hi))))
                high = next_up(high + next_up(beta * np.maximum(0.0, next_up(self.high[h] - fixed_lin.lo))))
                radius = next_up(radius + next_up(beta * norm_up(self.comps[h] - part).max()))
        qf_ball = _ball(qf)
        base = _interval(contract(_ball(T.Kb[g]), qf_ball, "tje,e->jt"))  # [N, t]
        tables = [_interval(contract(_ball(T.KW[g][h]), qf_ball, "uke,e->uk")) for h in range(len(prep.keys))]
        second = next_up(radius * prep.key_deviation[g])
        return base, tables, low, high, second

    def tied(self, query: tuple, q: int) -> list:
        """Per layer-0 head, (TIED)'s pieces for the query cell's direction with no q at the free
        positions, and the terms that q at one position p adds (mixture.tied_terms)."""
        _, tables, _, _, _ = query
        V = self.prep.tables.d_vocab
        out = []
        for mixtures, table in zip(self.prep.keys, tables):
            fixed, up, down = tied_terms(mixtures, table, np.arange(V) != q)
            _, up_q, down_q = tied_terms(mixtures, table, np.arange(V) == q)
            out.append((fixed, up, down, np.maximum(up, up_q), np.maximum(down, down_q), mixtures.fixed_lo))
        return out

    def bounds(self, query: tuple, keys: list[KeyMixtures], tied_parts: list, P: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """s_lo, s_hi [N, V, V] at every key option, the keys' layer-0 mixtures as `keys` allow
        (no q at a free position but those of P), each mixture by the tighter of (MIXTURE) and (TIED)."""
        base, tables, low, high, second = query
        a = Interval(base.lo[:, None, :], base.hi[:, None, :])
        for mixtures, table, (fixed, up, down, up_q, down_q, fixed_lo) in zip(keys, tables, tied_parts):
            up, down = up.copy(), down.copy()
            at = list(P)
            up[..., at], down[..., at] = up_q[..., at], down_q[..., at]  # the positions of P hold q
            one, two = mixtures.bound(table), tied(fixed, up, down, fixed_lo)
            a = a + Interval(np.maximum(one.lo, two.lo), np.minimum(one.hi, two.hi))
        s_lo = next_down(next_down(a.lo + low) - second)
        s_hi = next_up(next_up(a.hi + high) + second)
        return s_lo, s_hi


def direct_lower(prep: Prepared, queries: list[QueryMixture], q: int) -> np.ndarray:
    """[V (label), V (o)]: a lower bound of D[label] - D[o] (direct path and layer 0 at the last position)."""
    T = prep.tables
    out = next_down(T.Db.lo[q][:, None] - T.Db.hi[q][None, :])
    for h, query in enumerate(queries):
        dw = T.Dw[h]  # [u, k, V]
        diff = Interval(np.moveaxis(next_down(dw.lo[..., :, None] - dw.hi[..., None, :]), (-2, -1), (0, 1)),
                        np.moveaxis(next_up(dw.hi[..., :, None] - dw.lo[..., None, :]), (-2, -1), (0, 1)))  # [l, o, u, k]
        out = next_down(out + query.bound(diff).lo)
    return out


class ValueClasses:
    """For one layer-1 head and one query token q: head values Z[label] - Z[o] (lower bounds, [l, N, t', t, o])
    and their least values over 'not q' sets."""

    def __init__(self, prep: Prepared, g: int, q: int):
        V = prep.tables.d_vocab
        G = np.stack([prep.values(g, label) for label in range(V)])  # [l, N, t', t, o]
        not_q = np.arange(V) != q
        self.exact = G
        self.prev_not_q = np.where(not_q[None, None, :, None, None], G, INF).min(axis=2)  # [l, N, t, o]
        self.own_not_q = np.where(not_q[None, None, None, :, None], G, INF).min(axis=3)  # [l, N, t', o]
        self.both_not_q = np.where((not_q[:, None] & not_q[None, :])[None, None, :, :, None], G, INF).min(axis=(2, 3))  # [l, N, o]
        cost.add(3 * G.size)  # pragma: no mutate (accounting)


def _term(E_hi: np.ndarray, E_lo: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The vertex lower bound of e^s v for one option: e^{s_lo} v when v >= 0, else e^{s_hi} v."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(values >= 0, next_down(E_lo * values), next_down(E_hi * values))


def _negative(E_hi: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(largest e^{s_hi}) * min(0, least value): a lower bound of e^s v over a set of options."""
    with np.errstate(invalid="ignore", over="ignore"):
        return next_down(E_hi * np.minimum(0.0, values))


def occurrences(N: int, most: int):
    """Every set P of earlier occurrences of the query token with at most `most` elements, as a
    tuple with the most recent first."""
    for p in range(N - 1):
        yield (p,)
        if most >= 2:
            yield from ((p, p2) for p2 in range(p))


def certified(prep: Prepared, progress, name: str, most: int) -> tuple[int, dict]:
    """The count: the sizes of the cells certified against every output."""
    count, cells = 0, 0
    for q, u, P, label, ok, cell_size in outcomes(prep, most, progress, name):
        cells += 1
        count += cell_size if ok.all() else 0
    return count, {"cells": cells}


def outcomes(prep: Prepared, most: int = 1, progress=lambda *a: None, name: str = "induction/positions"):
    """Every cell C(q, u, P, label) (P: at most `most` earlier occurrences of q) with its size and
    [V] whether it is certified against each output (True at the label)."""
    T = prep.tables
    V, N = T.d_vocab, T.n_ctx
    heads = len(T.Qb)
    scorers = [QueryScores(prep, g) for g in range(heads)]
    labels = np.arange(V)
    for q in range(V):
        progress(name, q, V)
        values = [ValueClasses(prep, g, q) for g in range(heads)]
        not_q = labels != q
        # the keys' free positions hold no q, but for those of P (which hold q): one restriction per P
        keys = {P: [mixtures.restricted(not_q[None, :] | np.isin(np.arange(N), P)[:, None]) for mixtures in prep.keys]
                for P in occurrences(N, most)}
        for u in range(V):
            allowed = np.ones((N, V), dtype=bool)
            allowed[N - 1] = labels == q
            if N >= 2:
                allowed[N - 2] = labels == u
            queries = [QueryMixture.of(s0, q, allowed) for s0 in T.s0]
            d_lo = direct_lower(prep, queries, q)  # [l, o]
            share = next_down(d_lo / heads) if heads > 1 else d_lo
            query_parts = [scorer.query(queries, q) for scorer in scorers]
            tied_parts = [scorer.tied(part, q) for scorer, part in zip(scorers, query_parts)]
            for P in occurrences(N, most):
                valid = {int(label): S for label in labels if (S := sets(V, N, q, u, P, int(label))) is not None}
                if not valid:
                    continue
                ok = np.ones((V, V), dtype=bool)  # [l, o]
                for g in range(heads):
                    s_lo, s_hi = scorers[g].bounds(query_parts[g], keys[P], tied_parts[g], P)
                    shift = np.nan_to_num(s_hi.max(), posinf=0.0, neginf=0.0)
                    with np.errstate(invalid="ignore", over="ignore"):
                        E_hi, E_lo = exp_upper(next_up(s_hi - shift), tight=True), exp_lower(next_down(s_lo - shift), tight=True)
                    vc = values[g]
                    total = np.zeros((V, V))
                    for j in range(N):
                        total = next_down(total + _position_term(j, q, u, P, E_hi, E_lo, vc, share, not_q))
                    ok &= total > 0
                ok[labels, labels] = True  # o = label is not a competitor
                for label, S in valid.items():
                    yield q, u, P, label, ok[label], size(V, S)
    progress(name, V, V)


def _position_term(j: int, q: int, u: int, P: tuple[int, ...], E_hi, E_lo, vc: ValueClasses, share: np.ndarray, not_q: np.ndarray) -> np.ndarray:
    """[l, o]: a lower bound of e^{s_j - t} (Z_j + share) at position j over the cell's options there,
    for every label l (the cells C(q, u, P, l))."""
    V, N = len(not_q), E_hi.shape[0]
    labels = np.arange(V)
    p = max(P)

    def token(i: int):
        """The set at position i: an array [l] of tokens (per label), or None for 'not q'."""
        if i in P or i == N - 1:
            return np.full(V, q)
        if i == p + 1:
            return labels
        if i == N - 2:
            return np.full(V, u)
        return None

    own = token(j)
    prev = token(j - 1) if j > 0 else np.zeros(V, dtype=int)
    if j == 0:
        e_row_hi, e_row_lo = E_hi[0, 0], E_lo[0, 0]  # [t]
        if own is not None:
            v = next_down(vc.exact[labels, 0, 0, own] + share)
            return _term(e_row_hi[own][:, None], e_row_lo[own][:, None], v)
        v = next_down(vc.own_not_q[:, 0, 0] + share)
        return _negative(np.where(not_q, e_row_hi, 0.0).max(initial=0.0), v)
    if own is not None and prev is not None:
        v = next_down(vc.exact[labels, j, prev, own] + share)
        return _term(E_hi[j, prev, own][:, None], E_lo[j, prev, own][:, None], v)
    if own is not None:  # previous token: any but q
        e = np.where(not_q[:, None], E_hi[j], 0.0).max(axis=0, initial=0.0)  # [t]
        return _negative(e[own][:, None], next_down(vc.prev_not_q[labels, j, own] + share))
    if prev is not None:  # own token: any but q
        e = np.where(not_q[None, :], E_hi[j], 0.0).max(axis=1, initial=0.0)  # [t']
        return _negative(e[prev][:, None], next_down(vc.own_not_q[labels, j, prev] + share))
    e = np.where(not_q[:, None] & not_q[None, :], E_hi[j], 0.0).max(initial=0.0)
    return _negative(e, next_down(vc.both_not_q[:, j] + share))

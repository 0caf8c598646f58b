"""Layer-0 softmax mixtures with some tokens fixed and the others free, and the one inequality the
compact induction proof uses about them.

A layer-0 head at position j writes h = sum_k c_k w[x_k, k] with c = softmax_k(s0[x_j, j, x_k, k]).
Split the positions into F, whose tokens are fixed, and R, whose tokens are free within given sets.
With beta = sum_{k in R} c_k,

    h = (1 - beta) h_F + beta h_R,   h_F = sum_{k in F} rho_k w[x_k, k],   rho_k = e^{s_k} / sum_{i in F} e^{s_i},

where the fixed tokens determine rho exactly and h_R is some convex combination of the free
components {w[u, k] : k in R, u allowed at k}. Hence for every linear functional f

    f(h) >= f_F + beta_max min(0, m - f_F)   and   f(h) <= f_F + beta_max max(0, M - f_F)      (MIXTURE)

where m, M are the least and largest f(w[u, k]) over the free components and
beta_max = sum_{k in R} max_u e^{s_k(u)} / (sum_{k in F} e^{s_k} + sum_{k in R} max_u e^{s_k(u)}) >= beta
(beta is increasing in every free weight and decreasing in every fixed one). Also
||h - h_F||_inf <= beta_max max over free components of ||w[u, k] - h_F||_inf.

Every quantity below is an outward-rounded float bound (interval.py); NaN and infinities only
ever widen a bound to "no information".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compact_proofs.checker import cost
from compact_proofs.checker.interval import INF, Interval, exp_lower, exp_upper, next_down, next_up, sum_down, sum_up


def exp_weights(scores: Interval, allowed: np.ndarray) -> Interval:
    """e^{s - t} for scores [..., P, V] where allowed (0 elsewhere), t the largest allowed upper
    score (any common t leaves a softmax unchanged; this one keeps every weight at most about 1)."""
    with np.errstate(invalid="ignore", over="ignore"):
        shift = np.nan_to_num(np.where(allowed, scores.hi, -INF).max(axis=(-1, -2), keepdims=True), posinf=0.0, neginf=0.0)
        lo = np.where(allowed, exp_lower(next_down(scores.lo - shift), tight=True), 0.0)
        hi = np.where(allowed, exp_upper(next_up(scores.hi - shift), tight=True), 0.0)
    cost.add(2 * lo.size)  # pragma: no mutate (accounting)
    return Interval(lo, hi)


def share(weights: Interval, total_others: Interval) -> Interval:
    """w / (w + others) for a positive weight w and the others' total, rounded outward (increasing
    in w, decreasing in the others)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        lo = next_down(weights.lo / next_up(weights.lo + total_others.hi))
        hi = next_up(weights.hi / next_down(weights.hi + total_others.lo))
    return Interval(np.nan_to_num(np.clip(lo, 0.0, 1.0), nan=0.0), np.nan_to_num(np.clip(hi, 0.0, 1.0), nan=1.0))


def free_mass(fixed_lo: np.ndarray, free_hi: np.ndarray) -> np.ndarray:
    """beta_max = R / (F + R) rounded up, for F <= the fixed weights' total and R >= the free maxima's."""
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = next_up(free_hi / next_down(fixed_lo + free_hi))
    return np.where(free_hi > 0, np.nan_to_num(np.minimum(beta, 1.0), nan=1.0), 0.0)


def apply(fixed: Interval, beta: np.ndarray, low: np.ndarray, high: np.ndarray) -> Interval:
    """(MIXTURE): [f_F + beta min(0, m - f_F), f_F + beta max(0, M - f_F)], rounded outward; m, M
    may be +-inf where there are no free components (then beta is 0 and nothing is added)."""
    with np.errstate(invalid="ignore", over="ignore"):
        down = np.where(beta > 0, next_down(beta * np.minimum(0.0, next_down(low - fixed.lo))), 0.0)
        up = np.where(beta > 0, next_up(beta * np.maximum(0.0, next_up(high - fixed.hi))), 0.0)
        out = Interval(next_down(fixed.lo + down), next_up(fixed.hi + up))
    cost.add(4 * out.lo.size)  # pragma: no mutate (accounting)
    return out


@dataclass(frozen=True)
class KeyMixtures:
    """One layer-0 head at every key option (j, t', t): the token t at j and t' at j - 1 fixed (for
    j = 0 only t), every position k < j - 1 free with the tokens free_tokens[k] allows (all, unless
    `restricted`). rho [N, V (t'), V (t)] is the weight of j - 1 among the two fixed positions,
    beta [N, V, V] the free mass bound; fixed_lo [N, V, V] and weights_hi [N (j), V (t), N (k), V (u)]
    are what beta is computed from."""

    rho: Interval
    beta: np.ndarray
    fixed_lo: np.ndarray
    weights_hi: np.ndarray
    free_tokens: np.ndarray  # [N (k), V (u)] bool

    @classmethod
    def of(cls, s0: Interval) -> "KeyMixtures":
        V, N = s0.shape[0], s0.shape[1]
        rho_lo, rho_hi, fixed_lo = np.zeros((N, V, V)), np.zeros((N, V, V)), np.zeros((N, V, V))
        weights_hi = np.zeros((N, V, N, V))
        for j in range(1, N):
            row = s0[:, j, :, : j + 1]  # [t, u, k]
            allowed = np.ones(row.shape, dtype=bool)
            w = exp_weights(Interval(np.swapaxes(row.lo, 1, 2), np.swapaxes(row.hi, 1, 2)), np.swapaxes(allowed, 1, 2))  # [t, k, u]
            prev = Interval(w.lo[:, j - 1, :].T, w.hi[:, j - 1, :].T)  # [t', t]
            own = Interval(np.diagonal(w.lo[:, j, :])[None, :], np.diagonal(w.hi[:, j, :])[None, :])  # [1, t]
            share_prev = share(prev, own)
            rho_lo[j], rho_hi[j] = share_prev.lo, share_prev.hi
            fixed_lo[j] = next_down(prev.lo + own.lo)
            weights_hi[j, :, : j + 1, :] = w.hi
        out = cls(Interval(rho_lo, rho_hi), np.zeros((N, V, V)), fixed_lo, weights_hi, np.ones((N, V), dtype=bool))
        return out.restricted(out.free_tokens)

    def restricted(self, free_tokens: np.ndarray) -> "KeyMixtures":
        """The same mixtures with the free positions k holding only the tokens free_tokens[k] allows."""
        N = self.rho.shape[0]
        largest = np.where(free_tokens[None, None, :, :], self.weights_hi, 0.0).max(axis=-1)  # [j, t, k]
        beta = np.zeros_like(self.beta)
        for j in range(2, N):
            free_hi = sum_up(largest[j, :, : j - 1], axis=-1)  # [t]
            beta[j] = free_mass(self.fixed_lo[j], np.broadcast_to(free_hi[None, :], self.fixed_lo[j].shape))
        cost.add(largest.size)  # pragma: no mutate (accounting)
        return KeyMixtures(self.rho, beta, self.fixed_lo, self.weights_hi, free_tokens)

    def fixed(self, table: Interval) -> Interval:
        """f_F for a table f[..., u, k]: [..., N, V (t'), V (t)], f[t, j] + rho (f[t', j-1] - f[t, j])."""
        own = Interval(np.swapaxes(table.lo, -1, -2)[..., :, None, :], np.swapaxes(table.hi, -1, -2)[..., :, None, :])  # [..., N, 1, t]
        prev_lo = np.concatenate([np.swapaxes(table.lo, -1, -2)[..., :1, :] * 0, np.swapaxes(table.lo, -1, -2)[..., :-1, :]], axis=-2)
        prev_hi = np.concatenate([np.swapaxes(table.hi, -1, -2)[..., :1, :] * 0, np.swapaxes(table.hi, -1, -2)[..., :-1, :]], axis=-2)
        prev = Interval(prev_lo[..., :, :, None], prev_hi[..., :, :, None])  # [..., N, t', 1]
        return own + self.rho * (prev - own)

    def bound(self, table: Interval) -> Interval:
        """(MIXTURE) at every key option for a functional given by its table f[..., u, k]."""
        return apply(self.fixed(table), self.beta, *self._free_extremes(table))

    def deviation(self, table: Interval) -> np.ndarray:
        """[N, V, V]: an upper bound of ||h - h_F||_2 for vector tables f[u, k, e]: the tighter of
        beta_max max_r ||f_r - f_F|| and sum_{k free} max_u w_{k,u} ||f(u, k) - f_F|| / F (as (TIED),
        by the triangle inequality: h - h_F = sum_k c_k (f(x_k, k) - f_F))."""
        N = self.rho.shape[0]
        fixed = self.fixed(Interval(np.moveaxis(table.lo, -1, 0), np.moveaxis(table.hi, -1, 0)))  # [E, N, t', t]
        out = np.zeros(self.beta.shape)
        allowed = self.free_tokens  # [k, u]
        for j in range(2, N):
            f_j = Interval(np.moveaxis(fixed.lo[:, j], 0, -1), np.moveaxis(fixed.hi[:, j], 0, -1))  # [t', t, E]
            comps = Interval(np.swapaxes(table.lo[:, : j - 1], 0, 1), np.swapaxes(table.hi[:, : j - 1], 0, 1))  # [k, u, E]
            with np.errstate(invalid="ignore", over="ignore"):
                gap = np.maximum(np.abs(next_up(comps.hi[None, None] - f_j.lo[:, :, None, None])),
                                 np.abs(next_down(comps.lo[None, None] - f_j.hi[:, :, None, None])))  # [t', t, k, u, E]
                dist = next_up(np.sqrt(sum_up(next_up(gap * gap), -1)))  # [t', t, k, u]
            dist = np.where(allowed[None, None, : j - 1], np.nan_to_num(dist, nan=INF), 0.0)
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                weighted = next_up(self.weights_hi[j][None, :, : j - 1, :] * dist).max(axis=-1)  # [t', t, k]
                tied_bound = np.where(self.fixed_lo[j] > 0, next_up(sum_up(weighted, -1) / self.fixed_lo[j]), INF)
                mixture_bound = next_up(self.beta[j] * dist.max(axis=(-1, -2)))
            out[j] = np.nan_to_num(np.minimum(tied_bound, mixture_bound), nan=INF)
            cost.add(gap.size)  # pragma: no mutate (accounting)
        return out

    def _free_extremes(self, table: Interval) -> tuple[np.ndarray, np.ndarray]:
        """Least and largest f over the free components of each option: the allowed tokens at k < j - 1."""
        N = table.shape[-1]
        allowed = self.free_tokens.T  # [u, k]
        low_k, high_k = np.where(allowed, table.lo, INF).min(axis=-2), np.where(allowed, table.hi, -INF).max(axis=-2)  # [..., N]
        low = np.concatenate([np.full(low_k.shape[:-1] + (2,), INF), np.minimum.accumulate(low_k, axis=-1)[..., : N - 2]], axis=-1)
        high = np.concatenate([np.full(high_k.shape[:-1] + (2,), -INF), np.maximum.accumulate(high_k, axis=-1)[..., : N - 2]], axis=-1)
        return low[..., :N, None, None], high[..., :N, None, None]


@dataclass(frozen=True)
class QueryMixture:
    """One layer-0 head at the last position for one cell: positions with one allowed token are fixed
    (their weights rho, normalised among the fixed positions), the others free within their sets."""

    rho: Interval  # [N]: 0 at free positions
    tokens: np.ndarray  # [N]: the fixed token (0 at free positions)
    fixed_mask: np.ndarray  # [N]
    free: np.ndarray  # [V, N]: the free components (u, k)
    beta: float

    @classmethod
    def of(cls, s0: Interval, q: int, allowed: np.ndarray) -> "QueryMixture":
        N = allowed.shape[0]
        row = s0[q, N - 1]  # [u, k]
        options = allowed.T  # [u, k]
        w = exp_weights(row, options)
        fixed_mask = allowed.sum(axis=1) == 1
        tokens = np.where(fixed_mask, allowed.argmax(axis=1), 0)
        k = np.arange(N)
        fixed_w = Interval(np.where(fixed_mask, w.lo[tokens, k], 0.0), np.where(fixed_mask, w.hi[tokens, k], 0.0))
        total = Interval(sum_down(fixed_w.lo, 0), sum_up(fixed_w.hi, 0))
        others = Interval(np.maximum(0.0, next_down(total.lo - fixed_w.hi)), next_up(total.hi - fixed_w.lo))
        rho = share(fixed_w, others)
        rho = Interval(np.where(fixed_mask, rho.lo, 0.0), np.where(fixed_mask, rho.hi, 0.0))
        free = options & ~fixed_mask[None, :]
        free_hi = sum_up(np.where(free, w.hi, 0.0).max(axis=0), 0)
        beta = float(free_mass(np.array(total.lo), np.array(free_hi)))
        return cls(rho, tokens, fixed_mask, free, beta)

    def fixed(self, table: Interval) -> Interval:
        """f_F = sum over fixed positions of rho_k f[x_k, k], for f[..., u, k] -> [...]."""
        k = np.arange(len(self.tokens))
        picked = Interval(table.lo[..., self.tokens, k], table.hi[..., self.tokens, k])
        terms = self.rho * picked
        return Interval(sum_down(np.where(self.fixed_mask, terms.lo, 0.0), -1), sum_up(np.where(self.fixed_mask, terms.hi, 0.0), -1))

    def extremes(self, table: Interval) -> tuple[np.ndarray, np.ndarray]:
        """Least and largest f over the free components: [...] each (+-inf when there are none)."""
        return (np.where(self.free, table.lo, INF).min(axis=(-1, -2)), np.where(self.free, table.hi, -INF).max(axis=(-1, -2)))

    def bound(self, table: Interval) -> Interval:
        return apply(self.fixed(table), np.float64(self.beta), *self.extremes(table))


def ratio_upper(fixed_w: Interval, fixed_f: Interval, free_w: Interval, free_f: Interval, guess: np.ndarray) -> np.ndarray:
    """A float >= max over the free choices (one option u per free position k) of

        (sum_i w_i f_i + sum_k w_{k,u} f_{k,u}) / (sum_i w_i + sum_k w_{k,u}),

    for fixed [..., F] and free [..., K, U] weights (0: not an option) and values: the exact worst
    case of a softmax mixture over the free tokens. U bounds it iff every choice has
    sum w (f - U) <= 0, i.e. iff sum_i w_i (f_i - U) + sum_k max_u w_{k,u} (f_{k,u} - U) <= 0
    (certified with every weight and value at its worst end, sums rounded up). `guess` (any floats;
    here Dinkelbach's iteration) only chooses the U to certify; where it fails, +inf is returned."""
    with np.errstate(invalid="ignore", over="ignore"):
        for _ in range(2):
            u = guess[..., None]
            gap_f = next_up(fixed_f.hi - u)
            term_f = np.where(gap_f >= 0, next_up(fixed_w.hi * gap_f), next_up(fixed_w.lo * gap_f))
            gap = next_up(free_f.hi - u[..., None])
            term = np.where(free_w.hi > 0, np.where(gap >= 0, next_up(free_w.hi * gap), next_up(free_w.lo * gap)), -INF)
            best = np.where(free_w.hi.max(axis=-1) > 0, term.max(axis=-1), 0.0)  # a position without options adds nothing
            total = next_up(sum_up(term_f, -1) + sum_up(best, -1))
            if np.all(total <= 0):
                break
            guess = np.where(total <= 0, guess, next_up(guess + np.abs(guess) * 2.0**-30 + 2.0**-60))
        cost.add(4 * free_w.lo.size)  # pragma: no mutate (accounting)
    return np.where(total <= 0, guess, INF)


def dinkelbach(fixed_w: np.ndarray, fixed_f: np.ndarray, free_w: np.ndarray, free_f: np.ndarray, steps: int = 30) -> np.ndarray:
    """Floats approximating the maximum of ratio_upper's mixture (Dinkelbach's iteration on
    midpoints; a search, certified by ratio_upper)."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        lam = (fixed_w * fixed_f).sum(-1) / fixed_w.sum(-1)
        for _ in range(steps):
            gain = np.where(free_w > 0, free_w * (free_f - lam[..., None, None]), -INF)
            pick = gain.argmax(axis=-1)[..., None]
            chosen = np.take_along_axis(free_w, pick, -1)[..., 0] * (gain.max(axis=-1) > -INF)
            value = np.take_along_axis(free_f, pick, -1)[..., 0]
            new = ((fixed_w * fixed_f).sum(-1) + np.where(chosen > 0, chosen * value, 0.0).sum(-1)) / (fixed_w.sum(-1) + chosen.sum(-1))
            if np.all(new <= lam + 1e-12 * np.abs(lam)):
                return np.maximum(lam, new)
            lam = np.maximum(lam, np.nan_to_num(new, nan=-INF))
    return lam


def tied_terms(keys: KeyMixtures, table: Interval, tokens: np.ndarray) -> tuple[Interval, np.ndarray, np.ndarray]:
    """The free positions' terms of the tied bound of every key option, with each free position
    holding one of `tokens` [V] (bool): f_F [N, V, V] and, per free position k, upper bounds of
    max_u w_{k,u} (f(u, k) - f_F)_+ and max_u w_{k,u} (f_F - f(u, k))_+ ([N, V, V, N], 0 where k is
    not free). Since f(h) - f_F = sum_{k free} c_k (f(x_k, k) - f_F) and c_k <= w_k / (sum of the
    fixed weights), (TIED) follows:

        f_F - sum_k down_k / F  <=  f(h)  <=  f_F + sum_k up_k / F,    F <= the fixed weights' sum.  (TIED)

    It ties each free token's weight to its value, where (MIXTURE) takes the largest free mass and
    the extreme value apart. Rounding: each term is two roundings of non-negative numbers,
    fl(w fl(f - c)) >= (1 - u)^2 w (f - c) - 2^-1074, so the maxima times 1 + 2^-50, plus 2^-1070,
    rounded up once, bound the exact ones."""
    N = keys.rho.shape[0]
    V = len(tokens)
    fixed = keys.fixed(table)  # [N, t', t]
    chosen = np.flatnonzero(tokens)
    up, down = np.zeros((N, V, V, N)), np.zeros((N, V, V, N))
    f_lo, f_hi = table.lo.T[:, chosen], table.hi.T[:, chosen]  # [k, u]
    with np.errstate(invalid="ignore", over="ignore"):
        for j in range(2, N):
            w = keys.weights_hi[j][:, : j - 1][:, :, chosen]  # [t, k, u]
            c_lo, c_hi = fixed.lo[j][:, :, None, None], fixed.hi[j][:, :, None, None]  # [t', t, 1, 1]
            up[j, :, :, : j - 1] = (w[None] * np.maximum(0.0, f_hi[None, None, : j - 1] - c_lo)).max(axis=-1, initial=0.0)
            down[j, :, :, : j - 1] = (w[None] * np.maximum(0.0, c_hi - f_lo[None, None, : j - 1])).max(axis=-1, initial=0.0)
        up = next_up(up * (1 + 2.0**-50) + 2.0**-1070)
        down = next_up(down * (1 + 2.0**-50) + 2.0**-1070)
    cost.add(2 * N * N * V * V * len(chosen))  # pragma: no mutate (accounting)
    free = (np.arange(N)[None, :] < np.arange(N)[:, None] - 1)[:, None, None, :]
    return fixed, np.where(free, np.nan_to_num(up, nan=INF), 0.0), np.where(free, np.nan_to_num(down, nan=INF), 0.0)


def tied(fixed: Interval, up: np.ndarray, down: np.ndarray, fixed_lo: np.ndarray) -> Interval:
    """(TIED) from tied_terms' pieces: [N, V, V]."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        rise = np.where(fixed_lo > 0, next_up(sum_up(up, -1) / fixed_lo), INF)
        fall = np.where(fixed_lo > 0, next_up(sum_up(down, -1) / fixed_lo), INF)
        return Interval(next_down(fixed.lo - np.nan_to_num(fall, nan=INF)), next_up(fixed.hi + np.nan_to_num(rise, nan=INF)))


def norm_up(x: Interval, axis: int = -1) -> np.ndarray:
    """An upper bound of the Euclidean norm along axis of every vector in the box x (np.sqrt is
    IEEE's correctly rounded square root; one step up covers it)."""
    with np.errstate(invalid="ignore", over="ignore"):
        largest = np.maximum(np.abs(x.lo), np.abs(x.hi))
        return np.nan_to_num(next_up(np.sqrt(sum_up(next_up(largest * largest), axis))), nan=INF)

"""The cubic proof's search: per-case claimed bounds (and, for the tight variant, candidate outputs).

The bound of a case is defined by the checker (checker/strategies/cubic.py): its tests, their
two arrangements. Here it is evaluated in float64 from the exact tables, and each claim is the
smallest float32 at or above it, so that a claim one float32 ulp stronger is false. Where
float64 cannot tell which float32 that is, the bound is re-evaluated at 200 bits.
"""

from __future__ import annotations

import mpmath
import numpy as np

from compact_proofs.checker.context import Progress
from compact_proofs.checker.exact import Dyadic, align
from compact_proofs.checker.paths import paths
from compact_proofs.checker.strategies import cubic as definition
from compact_proofs.checker.weights import model_from_weights
from compact_proofs.generator.proving.strategies.draft import Draft

CANDIDATES_PER_ROW = 2  # top entries of each of the two joint rows


def round_up_f32(values: np.ndarray) -> np.ndarray:
    """The smallest float32 >= each float64 value."""
    out = values.astype(np.float32)
    low = out.astype(np.float64) < values
    out[low] = np.nextafter(out[low], np.float32(np.inf))
    return out


def derived_candidates(model, progress: Progress) -> np.ndarray:
    """The candidates of every (m, q <= m), from float tables (any choice is sound)."""
    V, N = model.d_vocab, model.n_ctx
    p = paths(model)
    ov = {name: getattr(p, name).to_float() for name in ("EVOU", "PVOU", "EUPU")}  # float tables suffice here
    rows = []
    for m in range(V):
        progress("cubic candidates", m, V)
        if V == 1:
            return np.zeros((1, 0), np.int64)
        rows.append(_candidates(definition._tables(ov, m, N, reference=False), m))
    progress("cubic candidates", V, V)
    return np.concatenate(rows).astype(np.int64)


def _candidates(float_tab: dict, m: int) -> np.ndarray:
    """Outputs (not m) where a joint test is most likely to bind: the largest entries of the
    m-slot and query-slot rows. [q <= m, 2 * CANDIDATES_PER_ROW] output indices."""
    r = min(CANDIDATES_PER_ROW, float_tab["c0_m"].shape[1])
    cols = np.concatenate([np.argsort(-float_tab[key], axis=1, kind="stable")[:, :r] for key in ("c0_m", "c0_q")], axis=1)
    return cols + (cols >= m)  # column -> output


def mp_round_up_f32(value: mpmath.mpf) -> np.float32:
    """The smallest float32 >= value (through float64 rounded upward: the nearest may lie below)."""
    up = float(value)
    up = up if mpmath.mpf(up) >= value else float(np.nextafter(up, np.inf))
    return round_up_f32(np.array([up]))[0]


class _Scores:
    def __init__(self, p, n_ctx: int):
        self.eqke, self.eqkp = p.EQKE.to_float(), p.EQKP.to_float()  # (cubic: |scores| < 2^1023 assumed)
        self.exact = p
        self.scale = 1 / np.sqrt(p.d_head)
        self.n = n_ctx
        self.order = np.argsort(self.eqkp[:, : n_ctx - 1], axis=1, kind="stable")

    def slot_weights(self, m, qs, cs, ks):
        """Weights of the m-block and the k-block per arrangement ([cases, 2] each: m-copies on the
        lowest, on the highest positions) and of the query slot, up to a common factor per case."""
        free = self.n - 1
        pos = np.take_along_axis(self.eqkp[qs, :free], self.order[qs], axis=1)  # ascending
        p_top = pos.max(axis=1) if free else np.zeros(len(qs))
        query = self.eqke[qs, qs] + self.eqkp[qs, free]
        top = np.maximum(np.maximum(self.eqke[qs, m], self.eqke[qs, ks]) + p_top, query)
        e = np.exp((pos - p_top[:, None]) * self.scale)
        zero = np.zeros((len(qs), 1))
        low = np.concatenate([zero, np.cumsum(e, axis=1)], axis=1)  # low[:, j]: the j lowest positions
        high = np.concatenate([np.cumsum(e[:, ::-1], axis=1)[:, ::-1], zero], axis=1)  # high[:, j]: from j on
        idx = np.arange(len(qs))  # (each block summed directly: a total minus a prefix can cancel)
        t = np.stack([low[idx, free - cs], high[idx, cs]], axis=1)
        z = np.stack([high[idx, free - cs], low[idx, cs]], axis=1)
        token = lambda tok: np.exp((tok + p_top - top) * self.scale)[:, None]  # noqa: E731
        return token(self.eqke[qs, m]) * t, token(self.eqke[qs, ks]) * z, np.exp((query - top) * self.scale)


def _bounds(w_m, w_k, w_q, f_m, f_k, f_q, valid) -> np.ndarray:
    """max over valid tests and arrangements of the attention-weighted value, per case. Where the
    float weights degenerate, the largest slot value (an upper bound of any weighted mean)."""
    num = w_m[:, None, :] * f_m[:, :, None] + w_k[:, None, :] * f_k[:, :, None] + w_q[:, None, None] * f_q[:, :, None]
    den = (w_m + w_k + w_q[:, None])[:, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        value = num / den
    fallback = np.maximum(np.maximum(f_m, f_k), f_q)[:, :, None]
    value = np.where(np.isfinite(value), value, fallback)
    return np.where(valid[:, :, None], value, -np.inf).max(axis=(1, 2))


def _precise_bound(scores: _Scores, m, q, c, k, coeffs) -> mpmath.mpf:
    """The same bound at 200 bits (plus a margin for what 200 bits cannot see), from exact
    coefficients and scores: per arrangement, the attention mass of each slot kind (m copies,
    k tokens, query) weighs its value."""
    mpmath.mp.prec = 200
    p, n = scores.exact, scores.n
    order = np.argsort(p.EQKP.ints[q, : n - 1], kind="stable")
    exact = lambda ints, index, exp: mpmath.ldexp(mpmath.mpf(int(ints[index])), exp)  # noqa: E731
    score = lambda t, pos: exact(p.EQKE.ints, (q, t), p.EQKE.exp) + exact(p.EQKP.ints, (q, pos), p.EQKP.exp)  # noqa: E731
    root = mpmath.sqrt(p.d_head)
    f_m, f_k, f_q, valid, exp = coeffs
    values = [tuple(exact(f, j, exp) for f in (f_m, f_k, f_q)) for j in range(len(f_m)) if valid[j]]
    # 200 bits lose terms below 2^-200 of the largest value (attention weights of e^-800 do occur):
    # the bound is raised by a margin far above that, so that rounding up to float32 stays above it
    margin = max((abs(v) for value in values for v in value), default=mpmath.mpf(0)) * mpmath.mpf(2) ** -150
    best = mpmath.mpf("-inf")
    for arrangement in (0, 1):
        m_slots, k_slots = (order[: n - 1 - c], order[n - 1 - c :]) if arrangement == 0 else (order[c:], order[:c])
        slots = ([score(m, i) for i in m_slots], [score(k, i) for i in k_slots], [score(q, n - 1)])
        top = max(w for kind in slots for w in kind)
        mass = [sum((mpmath.exp((w - top) / root) for w in kind), mpmath.mpf(0)) for kind in slots]
        total = sum(mass)
        for value in values:
            best = max(best, sum(a * v for a, v in zip(mass, value)) / total)
    return best + margin


CLAIMS_UP_TO = 1 << 22  # cases: above, certificates use the derived format (no per-case claims)


def prove(weights: dict[str, np.ndarray], progress: Progress, reference: bool = False, derived: bool | None = None) -> Draft:
    """Per-case claims (each the smallest float32 at or above its bound) and candidates; or, in the
    derived format (the default above CLAIMS_UP_TO cases), the candidates alone: the checker then
    derives the bounds, and the evidence stays at most d_vocab^2 (d_vocab + 1) / 2 x 4 integers."""
    model = model_from_weights(weights)
    V, N = model.d_vocab, model.n_ctx
    if derived if derived is not None else definition.count_cases(V, N) > CLAIMS_UP_TO:
        return Draft(evidence={} if reference else {"candidates": derived_candidates(model, progress)})
    p = paths(model)
    (evou, pvou, eupu), ov_exp = align(p.EVOU, p.PVOU, p.EUPU)
    ov = {"EVOU": evou, "PVOU": pvou, "EUPU": eupu}
    scores = _Scores(p, N)
    cases = np.concatenate([definition.cases_of(m, N) for m in range(V)])
    claims = np.full(len(cases), -1.0, dtype=np.float32)  # V = 1: no wrong output exists
    candidates = []
    bounds = np.searchsorted(cases[:, 0], np.arange(V + 1))
    for m in range(V):
        progress("cubic search", m, V)
        if V == 1:
            candidates.append(np.zeros((1, 0), np.int64))
            break
        exact_tab = definition._tables(ov, m, N, reference)
        float_tab = {key: Dyadic(value, ov_exp).to_float() for key, value in exact_tab.items()}
        cand_out = _candidates(float_tab, m)
        candidates.append(cand_out)
        cand_cols = cand_out - (cand_out > m)
        block = cases[bounds[m] : bounds[m + 1]]
        out = np.empty(len(block))
        for c_zero in (True, False):
            rows = block[:, 2] == 0 if c_zero else block[:, 2] > 0
            if not rows.any():
                continue
            qs, cs, ks = block[rows, 1], block[rows, 2], block[rows, 3]

            def tests(tab, add, qs, ks):
                if c_zero:
                    return tab["c0_m"][qs], tab["c0_m"][qs] * 0, tab["c0_q"][qs], np.ones(tab["c0_m"][qs].shape, bool)
                return definition._Tests(tab, add, None if reference else cand_cols)(qs, ks)

            f = tests(float_tab, np.add, qs, ks)
            w = scores.slot_weights(m, qs, cs, ks)
            b = _bounds(*w, *f)
            slack = 1e-12 * (max(float(np.abs(x).max()) for x in f[:3]) + np.abs(b))
            lo, hi = round_up_f32(b - slack), round_up_f32(b + slack)
            claim = hi.copy()
            unsure = np.flatnonzero(lo != hi)
            if len(unsure):
                fe = tests(exact_tab, lambda a, b_: a + b_, qs[unsure], ks[unsure])
                for i, j in enumerate(unsure):
                    coeffs = (fe[0][i], fe[1][i], fe[2][i], fe[3][i], ov_exp)
                    precise = _precise_bound(scores, m, qs[j], cs[j], ks[j], coeffs)
                    claim[j] = mp_round_up_f32(precise)
            out[rows] = claim
        claims[bounds[m] : bounds[m + 1]] = out
    progress("cubic search", V, V)
    evidence = {"claims": claims}
    if not reference:
        evidence["candidates"] = np.concatenate(candidates).astype(np.int64)
    count = sum(definition._count(cases[bounds[m] : bounds[m + 1]], claims[bounds[m] : bounds[m + 1]] < 0, N)
                for m in range(V))
    return Draft(evidence=evidence, claimed_correct=count)

"""The QK circuit split: EQKE'[q, k] = approx[q, k] + err[q, k], with a bound on each error row's spread

    max_k err[q, k] - min_k err[q, k] <= spread[q].

EQKE' is the token part of the attention score with the key position centred (paths below); the
positional remainder is handled exactly per position (subcubic/__init__.py). The approximation is
whatever a hint makes it; the error is always the whole remainder, bounded soundly, so a poor
hint only loosens the bound (this fixes the reference's dropped SVD cross terms).

Factorisations (exact): EQKE' = L R with L = Ebar W_Q + b_Q [d_vocab, d_head] and
R = ((W_E + c) W_K + b_K)^T, c the key centre. With hint matrices U, V [d_vocab, r] (ideally the
top r singular vectors; r = 1 in the paper), P = U U^T and Q = V V^T, for any U and V
    L R = P L R + (I - P) L R Q + (I - P) L R (I - Q),
so approx = U (U^T L R) + ((I - P) L R V) V^T (rank at most 2r) and the error is L' R' with
L' = (I - P) L, R' = R (I - Q): the whole residual, cross terms included. The "subproduct" handlings instead peel a rank-one hint a_i b_i^T off each of the
four factors F1 = [Ebar, 1], F2 = [W_Q; b_Q], F3 = [W_K^T, b_K^T], F4 = [(W_E + c)^T; 1]: with
F_i = a_i b_i^T + F_i', the error is F1' F2' F3' F4' exactly and (telescoping)
    approx = a1 (b1 F2 F3 F4) + (F1' a2)(b2 F3 F4) + (F1' F2' a3)(b3 F4) + (F1' F2' F3' a4) b4.

Row-spread bounds of a product A B (the paper's tricks, each an inequality):
- max_diff: spread(AB)[q] <= sum_k |A[q,k]| spread(B)[k], at the best split of the factor list;
- mean+max_diff: with any centre row mu, spread(AB)[q] <= spread(mu B) + sum_k |A[q,k] - mu_k| spread(B)[k];
- recursive: spread(F1 ... Fn) <= |F1| spread(F2 ... Fn), down to spread(Fn) (no products formed);
  mean+...recursive centres the top level, mean_recursive+... every level;
- max_diff_exact: the error formed explicitly (d_vocab^2 d_head) and its exact row ranges;
- svd: spread[q] <= sqrt(2) |err[q, :]|_2 <= sqrt(2) sigma_1(err), with sigma_1^2 = rho(G) <= |G^4|_inf^(1/4)
  for G = (A^T A)(B B^T) (any induced norm bounds the spectral radius), square roots rounded up;
- exact_EQKE+max_diff_exact: approx = EQKE' in full, spread = 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import isqrt

import numpy as np

from compact_proofs.checker import memo
from compact_proofs.checker.context import Evidence
from compact_proofs.checker.exact import Dyadic, concat, int_array, mean_rows
from compact_proofs.checker.weights import Model

MAX_RANK = 16  # vectors per hint of the low-rank splits
HANDLINGS = (
    "svd", "max_diff", "mean+max_diff", "max_diff_exact", "exact_EQKE+max_diff_exact",
    "max_diff_subproduct", "mean+max_diff_subproduct", "max_diff_subproduct_recursive",
    "mean+max_diff_subproduct_recursive", "mean_recursive+max_diff_subproduct_recursive",
)


@dataclass(frozen=True)
class QKSplit:
    approx: Dyadic  # [d_vocab, d_vocab]
    spread: Dyadic  # [d_vocab, 1]


def _rows(row: Dyadic, count: int) -> Dyadic:
    return Dyadic(np.repeat(row.ints, count, axis=0), row.exp)


def _chain(factors: list[Dyadic]) -> Dyadic:
    out = factors[0]
    for f in factors[1:]:
        out = out @ f
    return out


def _column(values: Dyadic, rows: int) -> Dyadic:
    """A [1, 1] value repeated as a [rows, 1] column."""
    return _rows(values.reshape(1, 1), rows)


def split_bound(factors: list[Dyadic], centred: bool) -> Dyadic:
    """min over split points of the (centred) max_diff bound; products formed explicitly."""
    best = None
    for j in range(1, len(factors)):
        left, right = _chain(factors[:j]), _chain(factors[j:])
        spread = right.spread().reshape(-1, 1)
        if centred:
            mu = mean_rows(left)
            bound = abs(left - _rows(mu, left.shape[0])) @ spread + _column((mu @ right).spread(), left.shape[0])
        else:
            bound = abs(left) @ spread
        best = bound if best is None else Dyadic(np.minimum(*_aligned(best, bound)), min(best.exp, bound.exp))
    return best


def _aligned(a: Dyadic, b: Dyadic):
    exp = min(a.exp, b.exp)
    return a.at_exp(exp), b.at_exp(exp)


def recursive_bound(factors: list[Dyadic], centred_levels: int) -> Dyadic:
    """|F1| spread(F2 ... Fn), recursively, centring the top `centred_levels` levels."""
    spread = factors[-1].spread().reshape(-1, 1)
    for level in range(len(factors) - 2, -1, -1):
        f = factors[level]
        if level < centred_levels:
            mu = mean_rows(f)
            spread = abs(f - _rows(mu, f.shape[0])) @ spread + _column(_chain([mu] + factors[level + 1 :]).spread(), f.shape[0])
        else:
            spread = abs(f) @ spread
    return spread


def _root_up(value: int, exp: int, degree: int, bits: int = 64) -> tuple[int, int]:
    """(r, e) with r 2^e >= (value 2^exp)^(1/degree) for value >= 0 and degree 2 or 4, about
    `bits` bits accurate (floor(sqrt(floor(sqrt(x)))) = floor(x^(1/4)), then round up)."""
    shift = degree * bits + exp % degree
    value, exp = value << shift, exp - shift  # exp is now a multiple of degree
    root = isqrt(value) if degree == 2 else isqrt(isqrt(value))
    if root**degree < value:
        root += 1
    return root, exp // degree


def svd_bound(left: Dyadic, right: Dyadic) -> Dyadic:
    """sqrt(2) sigma_1(left @ right), rounded up, via rho((L^T L)(R R^T)) <= |G^4|_inf^(1/4)."""
    gram = (left.T @ left) @ (right @ right.T)
    g4 = gram @ gram
    g4 = g4 @ g4
    norm = np.abs(g4.ints).sum(axis=1).max()
    lam, lam_exp = _root_up(int(norm), g4.exp, 4)  # >= sigma_1^2
    root, root_exp = _root_up(2 * lam, lam_exp, 2)  # >= sqrt(2) sigma_1
    return _column(Dyadic(int_array([root], (1, 1)), root_exp), left.shape[0])


def _hints(handling: str, model: Model, evidence: Evidence) -> dict[str, np.ndarray]:
    """The handling's hint vectors, read (and so validated) from the evidence: any values are sound."""
    V, D, H = model.d_vocab, model.d_model, model.d_head
    if handling == "exact_EQKE+max_diff_exact":
        return {}
    if handling in HANDLINGS[:4]:  # u_1..u_r and v_1..v_r: a split of rank up to 2r (r = 1: one vector each)
        return {name: evidence.vectors(name, V, MAX_RANK) for name in ("eqke_u", "eqke_v")}
    shapes = [(V, D + 1), (D + 1, H), (H, D + 1), (D + 1, V)]  # the factors' shapes
    sizes = {f"peel{i}_{side}": shape[j] for i, shape in enumerate(shapes, start=1) for j, side in enumerate(("left", "right"))}
    return {name: evidence.tensor(name, "<f8", (size,)).reshape(1, size) for name, size in sizes.items()}


def qk_split(handling: str, model: Model, e_bar: Dyadic, centre: Dyadic, evidence: Evidence) -> QKSplit:
    """The split for this handling and these hints (computed once per process for equal inputs, memo.py)."""
    hints = _hints(handling, model, evidence)
    key = ("qk_split", model.key, handling, e_bar.digest(), centre.digest(),
           tuple((name, value.tobytes()) for name, value in hints.items()))
    columns = lambda: {name: Dyadic.from_floats(value.T) for name, value in hints.items()}  # noqa: E731  ([size, r])
    return memo.cached(key, lambda: _split(handling, model, e_bar, centre, columns()))


def _split(handling: str, model: Model, e_bar: Dyadic, centre: Dyadic, hints: dict[str, Dyadic]) -> QKSplit:
    V = model.d_vocab
    keys_in = model.W_E + _rows(centre, V)
    if handling in HANDLINGS[:5]:
        left = e_bar @ model.W_Q + _rows(model.b_Q, V)
        right = (keys_in @ model.W_K + _rows(model.b_K, V)).T
        if handling == "exact_EQKE+max_diff_exact":
            return QKSplit(left @ right, Dyadic.zeros(V, 1))
        u, v = hints["eqke_u"], hints["eqke_v"]  # [V, r] each
        err_left = left - u @ (u.T @ left)  # (I - U U^T) L
        right_v = right @ v
        err_right = right - right_v @ v.T  # R (I - V V^T)
        approx = u @ ((u.T @ left) @ right) + (err_left @ right_v) @ v.T  # = L R - err_left err_right
        if handling == "svd":
            spread = svd_bound(err_left, err_right)
        elif handling == "max_diff_exact":
            spread = (err_left @ err_right).spread().reshape(V, 1)
        else:
            spread = split_bound([err_left, err_right], centred=handling == "mean+max_diff")
        return QKSplit(approx, spread)
    ones = Dyadic.from_floats(np.ones((V, 1)))
    factors = [
        concat([e_bar, ones], axis=1),
        concat([model.W_Q, model.b_Q], axis=0),
        concat([model.W_K.T, model.b_K.T], axis=1),
        concat([keys_in.T, ones.T], axis=0),
    ]
    peels = [(hints[f"peel{i}_left"], hints[f"peel{i}_right"]) for i in range(1, len(factors) + 1)]
    rest = [f - a @ b.T for f, (a, b) in zip(factors, peels)]
    approx = None
    for i, (a, b) in enumerate(peels):
        alpha = _chain(rest[:i] + [a]) if i else a
        beta = _chain([b.T] + factors[i + 1 :]) if i < 3 else b.T
        term = alpha @ beta
        approx = term if approx is None else approx + term
    if handling == "max_diff_subproduct":
        spread = split_bound(rest, centred=False)
    elif handling == "mean+max_diff_subproduct":
        spread = split_bound(rest, centred=True)
    else:
        levels = {"max_diff_subproduct_recursive": 0, "mean+max_diff_subproduct_recursive": 1}.get(handling, len(rest))
        spread = recursive_bound(rest, levels)
    return QKSplit(approx, spread)

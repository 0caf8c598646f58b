"""Rigorous enclosures: exp and 1/sqrt(d_head) in ball arithmetic (python-flint's arb, whose
every operation returns a ball containing the exact result), and the exact sign of an
exp-weighted sum.

The attention weights of an input are a_i = e^{u_i} / sum_j e^{u_j} with u_i = score_i / sqrt(d_head),
so the sign of any fixed combination sum_i a_i c_i is the sign of sum_i e^{u_i} c_i. Every
decision in the checker reduces to such a sign.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import numpy as np
from flint import arb, ctx, fmpq

from compact_proofs.checker import cost
from compact_proofs.checker.errors import CheckError
from compact_proofs.checker.exact import Dyadic

WORKING_PREC = 128
MAX_PREC = 1 << 14


@contextmanager
def precision(bits: int) -> Iterator[None]:
    old = ctx.prec
    ctx.prec = bits
    try:
        yield
    finally:
        ctx.prec = old


def dyadic_ball(value: int, exp: int) -> arb:
    """A ball containing value * 2**exp."""
    return arb(fmpq(value, 1 << -exp)) if exp < 0 else arb(value << exp)


def exp_table(scores: Dyadic, d_head: int) -> np.ndarray:
    """w~[r, j] with |w~ - w| <= 2^-52 w + 2^-1074 for w = exp((scores[r, j] - max_j scores[r, j]) / sqrt(d_head)).

    So 0 < w <= 1. The bound is verified entry by entry against the ball; an entry that fails it
    (never seen at this precision) is NaN, which makes every float sum using it undecided.
    """
    ints = scores.ints
    cost.add(3 * ints.size)  # pragma: no mutate (accounting: subtract the row maximum, scale, exp)
    top = ints.max(axis=1, keepdims=True)
    out = np.empty(ints.shape, dtype=np.float64)
    with precision(WORKING_PREC):
        scale = dyadic_ball(1, scores.exp) * arb(d_head).rsqrt()
        tiny = arb(2) ** -1074
        for index, diff in np.ndenumerate(ints - top):
            if index[-1] == 0:  # pragma: no mutate (accounting)
                cost.add(0)  # pragma: no mutate (accounting: a chance for the time limit, once per row)
            ball = (arb(diff) * scale).exp()
            approx = float(ball)
            error = (ball - arb(approx)).abs_upper()
            ok = error <= ball.lower() * arb(2) ** -52 + tiny
            out[index] = approx if ok else np.nan
    return out


def exp_sum_sign(terms: Iterable[tuple[int, int]], score_exp: int, d_head: int) -> int:
    """The sign (-1, 0 or 1) of sum over (s, c) in terms of exp(s 2^score_exp / sqrt(d_head)) c, integers s, c.

    Exact. Terms with equal s are merged; the sum is zero iff every merged coefficient is zero
    (Lindemann-Weierstrass: e^u for distinct algebraic u are linearly independent over the
    algebraic numbers). Otherwise ball arithmetic at rising precision settles the sign; if
    MAX_PREC bits do not, CheckError (the caller counts the case as not established).
    """
    merged: dict[int, int] = {}
    terms = list(terms)
    cost.add(3 * len(terms))  # pragma: no mutate (accounting)
    for s, c in terms:
        merged[s] = merged.get(s, 0) + c
    merged = {s: c for s, c in merged.items() if c != 0}
    if not merged:
        return 0
    if len(merged) == 1:
        return 1 if next(iter(merged.values())) > 0 else -1
    top = max(merged)
    prec = 64
    while prec <= MAX_PREC:
        with precision(prec):
            scale = dyadic_ball(1, score_exp) * arb(d_head).rsqrt()
            total = arb(0)
            for s, c in merged.items():
                total += arb(c) * (arb(s - top) * scale).exp()
            if total > 0:
                return 1
            if total < 0:
                return -1
        prec *= 2
    raise CheckError("exact-sign", f"sign not settled at {MAX_PREC} bits")

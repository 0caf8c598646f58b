"""Exact and rigorous arithmetic in the standard library: rational enclosures of exp and sqrt by
fixed-point integers with directed rounding, and the exact sign of exp-weighted sums.

This is the second, independent implementation of what checker/enclosure.py does with arb.
"""

from __future__ import annotations

from fractions import Fraction
from math import isqrt

MAX_BITS = 1 << 14  # the same cap as the fast path (enclosure.MAX_PREC)


def _floor(x: Fraction, bits: int) -> int:
    return (x.numerator << bits) // x.denominator


def _ceil(x: Fraction, bits: int) -> int:
    return -((-x.numerator << bits) // x.denominator)


def exp_nonneg(y: Fraction, bits: int) -> tuple[int, int]:
    """(lo, hi) with lo <= e^y 2^bits <= hi for y >= 0: halve y to t <= 1/2, sum the Taylor
    series in fixed point (floor for lo, ceil for hi) with the tail bound 2 t^n / n!, and square back."""
    halvings = max(0, (y.numerator // y.denominator).bit_length() + 1)
    t = y / (1 << halvings)
    work = bits + 2 * halvings + 16
    one = 1 << work
    t_lo, t_hi = _floor(t, work), _ceil(t, work)
    lo, hi, term_lo, term_hi, n = 0, 0, one, one, 0
    while True:
        lo, hi = lo + term_lo, hi + term_hi
        n += 1
        term_lo = term_lo * t_lo // (one * n)
        term_hi = -(-term_hi * t_hi // (one * n))
        if term_hi <= 1:  # the rest of the series is below 2 term_hi (each ratio t/n <= 1/2)
            break
    hi += 2 * term_hi
    for _ in range(halvings):
        lo, hi = lo * lo >> work, -(-(hi * hi) >> work)
    shift = work - bits
    return lo >> shift, -(-hi >> shift)


def exp_bounds(x: Fraction, bits: int) -> tuple[Fraction, Fraction]:
    """lo <= e^x <= hi for x <= 0 (exact rationals). Far below zero, [0, 2^-(bits+32)], as
    e^x <= 2^-k whenever x <= -0.7 k (ln 2 > 0.69)."""
    if x <= Fraction(-7, 10) * (bits + 32):
        return Fraction(0), Fraction(1, 1 << (bits + 32))
    lo, hi = exp_nonneg(-x, bits)
    scale = 1 << bits
    return Fraction(scale, hi), (Fraction(scale, lo) if lo > 0 else Fraction(scale))


def rsqrt_bounds(d: int, bits: int) -> tuple[Fraction, Fraction]:
    """lo <= 1/sqrt(d) <= hi."""
    root = isqrt(d << (2 * bits))  # root <= sqrt(d) 2^bits < root + 1
    return Fraction(1 << bits, root + 1), Fraction(1 << bits, root)


def sign_of_exp_sum(terms: list[tuple[Fraction, Fraction]], d_head: int) -> int:
    """The sign (-1, 0, 1) of sum over (s, c) of e^{s / sqrt(d_head)} c, exactly: merge equal s; zero
    iff every merged c is zero (Lindemann-Weierstrass); else enclosures at rising precision.
    Raises ArithmeticError if MAX_BITS do not settle it."""
    merged: dict[Fraction, Fraction] = {}
    for s, c in terms:
        merged[s] = merged.get(s, Fraction(0)) + c
    merged = {s: c for s, c in merged.items() if c}
    if not merged:
        return 0
    if len(merged) == 1:
        return 1 if next(iter(merged.values())) > 0 else -1
    top = max(merged)
    bits = 64
    while bits <= MAX_BITS:
        r_lo, r_hi = rsqrt_bounds(d_head, bits + 8)
        low = high = Fraction(0)
        for s, c in merged.items():
            diff = s - top  # <= 0, so u = diff / sqrt(d) lies in [diff r_hi, diff r_lo]
            e_lo, _ = exp_bounds(diff * r_hi, bits)
            _, e_hi = exp_bounds(diff * r_lo, bits)
            low += c * (e_lo if c > 0 else e_hi)
            high += c * (e_hi if c > 0 else e_lo)
        if low > 0:
            return 1
        if high < 0:
            return -1
        bits *= 2
    raise ArithmeticError("sign not settled")

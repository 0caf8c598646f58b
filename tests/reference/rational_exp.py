"""Rational enclosures of e^x and sqrt(d), with nothing but integers and Fractions.

Independent of the checker (which uses python-flint's arb): the test oracle must not share its
arithmetic with the code under test.
"""

from __future__ import annotations

from fractions import Fraction
from math import isqrt

Interval = tuple[Fraction, Fraction]


def _outward(lo: Fraction, hi: Fraction, bits: int) -> Interval:
    """Round an interval outward to the grid 2^-bits (keeps numbers small)."""
    scale = 1 << bits
    return Fraction((lo.numerator * scale) // lo.denominator, scale), Fraction(-((-hi.numerator * scale) // hi.denominator), scale)


def sqrt_enclosure(d: int, bits: int) -> Interval:
    root = isqrt(d << (2 * bits))
    return Fraction(root, 1 << bits), Fraction(root + 1, 1 << bits)


def exp_enclosure(x: Fraction, bits: int) -> Interval:
    """lo <= e^x <= hi. For x < 0, invert an enclosure of e^-x. Otherwise halve x until t <= 1/2,
    sum the Taylor series with the remainder bound |R_N| <= 2 |t|^N / N! (valid for |t| <= 1/2),
    then square back with outward rounding."""
    if x < 0:
        lo, hi = exp_enclosure(-x, bits)
        return 1 / hi, 1 / lo
    halvings = 0
    t = x
    while abs(t) > Fraction(1, 2):
        t /= 2
        halvings += 1
    work = bits + 2 * halvings + 20
    term, total, n = Fraction(1), Fraction(0), 0
    while True:
        total += term
        n += 1
        term = term * t / n
        if abs(term) * 2 < Fraction(1, 1 << work):
            break
    tail = 2 * abs(term)  # bounds the remainder after the last added term
    lo, hi = _outward(total - tail, total + tail, work)
    for _ in range(halvings):
        lo, hi = _outward(lo * lo, hi * hi, work)
    return lo, hi


def scaled_exp_enclosure(score: Fraction, d_head: int, bits: int) -> Interval:
    """An enclosure of exp(score / sqrt(d_head)). Far below zero, [0, 2^-(bits+32)] (as
    e^u <= 2^-k whenever u <= -0.7 k, since ln 2 < 0.7) keeps the numbers small."""
    root_lo, root_hi = sqrt_enclosure(d_head, bits + 8)
    u_lo, u_hi = (score / root_hi, score / root_lo) if score >= 0 else (score / root_lo, score / root_hi)
    if u_hi <= Fraction(-7, 10) * (bits + 32):
        return Fraction(0), Fraction(1, 1 << (bits + 32))
    return exp_enclosure(u_lo, bits)[0], exp_enclosure(u_hi, bits)[1]

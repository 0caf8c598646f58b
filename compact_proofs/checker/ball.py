"""Float64 ball arithmetic, vectorised: a Ball holds arrays (mid, rad) with |x - mid| <= rad for
every exact value x it stands for. Used by the format-v2 brute force (two layers, several heads),
where every input's logits are enclosed in one pass of matrix products.

Assumptions (as float_filter.py): IEEE binary64 with round-to-nearest; each +, -, * correctly
rounded or fused (FMA), in any summation order (BLAS, einsum's SIMD loops); an underflowing
operation errs by at most 2^-1074. u = 2^-53, gamma_K = K u / (1 - K u).

`up(z)` below is fl(z (1 + 2^-51)) + 2^-1073 for a computed non-negative sum or product z of
non-negative floats: z is within half an ulp, at most 2^-53 z, of the exact value (or 2^-1075 on
underflow), and fl(z (1 + 2^-51)) >= z (1 + 2^-51)(1 - 2^-53) >= z (1 + 2^-52), so up(z) is at
least the exact value (inf stays inf, NaN stays NaN).

Lemma (contraction). C = sum_k A_k B_k over K terms (einsum), with A = (am, ar), B = (bm, br).
For x = am + ea, y = bm + eb (|ea| <= ar, |eb| <= br):
    |sum x y - sum am bm| <= sum |am| br + ar (|bm| + br),
and the computed Cm = fl(sum am bm) errs by at most gamma_K sum |am||bm| + K 2^-1074. So
    |C - Cm| <= sum |am| (br + gamma_K |bm|) + sum ar (|bm| + br) + K 2^-1074 =: R.
With X = up(br + up(g |bm|)), g >= gamma_K, and Y = up(|bm| + br), the computed non-negative sums
T1 = fl(sum |am| X) and T2 = fl(sum ar Y) are at least (1 - gamma_K) times their exact values
less K 2^-1075 each, so R <= (T + 2 K 2^-1075) / (1 - gamma_K) + K 2^-1074 for any T >= T1 + T2
(T = T1, or up(T1 + T2)). The radius fl(fl(T c) + K 2^-1071) is at least that when
c >= (1 + 2^-50) / (1 - gamma_K): the two roundings lose at most a factor (1 - u)^2 and 2^-1075.
K <= 2^26 keeps g, c valid: g = (K + 1) u >= gamma_K and c = 1 + (K + 10) 2^-52 >= (1 + 2^-50)(1 + 2 gamma_K).

Non-finite values: inf and NaN propagate into mid or rad; `lower`/`upper` turn any non-finite
ball into (-inf, inf), and comparisons with NaN are false, so no decision rests on them.
"""

from __future__ import annotations

import re

import numpy as np

from compact_proofs.checker import cost
from compact_proofs.checker.interval import INF, exp_lower, exp_upper, next_down, next_up

U = 2.0**-53
MAX_TERMS = 1 << 26


_GROW, _TINY = 1.0 + 2.0**-51, 2.0**-1073


def _up(x: np.ndarray) -> np.ndarray:
    out = np.multiply(x, _GROW)
    out += _TINY
    return out


class Ball:
    __slots__ = ("mid", "rad")

    def __init__(self, mid, rad=None):
        self.mid = np.asarray(mid, dtype=np.float64)
        self.rad = np.zeros_like(self.mid) if rad is None else np.asarray(rad, dtype=np.float64)

    @classmethod
    def of_interval(cls, lo: np.ndarray, hi: np.ndarray) -> "Ball":
        """The ball around the rounded midpoint of [lo, hi] that contains it."""
        with np.errstate(over="ignore", invalid="ignore"):
            mid = 0.5 * lo + 0.5 * hi  # halving is exact above the subnormal range; either way mid is a float
            rad = next_up(np.maximum(hi - mid, mid - lo))  # one step up covers the subtraction's rounding
        return cls(mid, np.where(np.isnan(rad), INF, rad))

    def lower(self) -> np.ndarray:
        """Floats <= every value of the ball (-inf if the ball is not finite)."""
        with np.errstate(over="ignore", invalid="ignore"):
            low = next_down(self.mid - self.rad)
        return np.where(np.isfinite(self.mid) & np.isfinite(self.rad), low, -INF)

    def upper(self) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            high = next_up(self.mid + self.rad)
        return np.where(np.isfinite(self.mid) & np.isfinite(self.rad), high, INF)

    def __getitem__(self, index) -> "Ball":
        return Ball(self.mid[index], self.rad[index])

    @property
    def shape(self) -> tuple[int, ...]:
        return self.mid.shape

    def reshape(self, *shape: int) -> "Ball":
        return Ball(self.mid.reshape(shape), self.rad.reshape(shape))

    def __add__(self, other) -> "Ball":
        """x + y: the midpoints' computed sum s errs by at most u |exact| <= 2u |s| (a sum never underflows)."""
        other = other if isinstance(other, Ball) else Ball(other)
        with np.errstate(over="ignore", invalid="ignore"):
            mid = self.mid + other.mid
            rad = _up(_up(self.rad + other.rad) + 2 * U * np.abs(mid))
        cost.add(mid.size, 3 * mid.size)
        return Ball(mid, rad)

    def __neg__(self) -> "Ball":
        return Ball(-self.mid, self.rad)

    def __sub__(self, other) -> "Ball":
        return self + (-(other if isinstance(other, Ball) else Ball(other)))

    def exp(self) -> "Ball":
        """e^x, through the tight interval exp (interval.py) of the ball's ends."""
        return Ball.of_interval(exp_lower(self.lower(), tight=True), exp_upper(self.upper(), tight=True))

    def reciprocal(self) -> "Ball":
        """1/x for balls of positive values (a ball reaching zero or below gives an infinite radius)."""
        low, high = self.lower(), self.upper()
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            lo, hi = next_down(1.0 / high), next_up(1.0 / low)
        hi = np.where(low > 0, hi, INF)
        return Ball.of_interval(np.maximum(lo, 0.0), hi)


_SUBSCRIPTS = re.compile(r"([a-z]*),([a-z]*)->([a-z]*)\Z")


def contract(a: Ball | np.ndarray, b: Ball | np.ndarray, subscripts: str) -> Ball:
    """A ball containing einsum(subscripts, x, y) for every x in a and y in b (the lemma above);
    plain arrays are exact. Indices are single letters; `...` is not used."""
    a = a if isinstance(a, Ball) else Ball(a)
    b = b if isinstance(b, Ball) else Ball(b)
    match = _SUBSCRIPTS.match(subscripts)
    if match is None or len(match[1]) != a.mid.ndim or len(match[2]) != b.mid.ndim:
        raise ValueError(f"contract: bad subscripts {subscripts!r} for shapes {a.shape}, {b.shape}")
    sizes = dict(zip(match[1], a.shape)) | dict(zip(match[2], b.shape))
    terms = int(np.prod([sizes[i] for i in set(match[1] + match[2]) - set(match[3])], dtype=np.int64))
    if terms > MAX_TERMS:
        raise ValueError(f"contract: {terms} terms per entry exceed {MAX_TERMS}")
    g, c = (terms + 1) * U, 1.0 + (terms + 10) * 2.0**-52  # exact floats for terms <= 2^26
    with np.errstate(over="ignore", invalid="ignore"):
        mid = np.einsum(subscripts, a.mid, b.mid, optimize=True)
        magnitude_b = np.abs(b.mid)  # the second operand is the smaller one in every use
        x = _up(b.rad + _up(g * magnitude_b)) if b.rad.any() else _up(g * magnitude_b)
        total = np.einsum(subscripts, np.abs(a.mid), x, optimize=True)
        exact_a = not a.rad.any()
        if not exact_a:
            total = _up(total + np.einsum(subscripts, a.rad, _up(magnitude_b + b.rad), optimize=True))
        rad = total * c
        rad += terms * 2.0**-1071
    cost.add(mid.size * terms * (2 if exact_a else 3), 3 * mid.size * terms)
    return Ball(mid, rad)  # a NaN radius decides nothing: lower() and upper() treat it as unbounded


def contract_exact(a: Ball, b: np.ndarray, subscripts: str) -> Ball:
    """contract(a, b) for an exact array b (a weight matrix), with one product for the radius
    instead of two. With br = 0 the lemma's R is sum (gamma_K |am| + ar) |bm| + K 2^-1074. Here
    Z = up(up(g |am|) + ar) >= gamma_K |am| + ar entry by entry (ball.py's `up`), and the computed
    T = fl(sum Z |bm|) is at least (1 - gamma_K) of its exact value less K 2^-1075; so the radius
    fl(fl(T c) + K 2^-1071) bounds R with the same g and c as `contract` (its lemma's last step)."""
    if not isinstance(a, Ball):
        a = Ball(a)
    b = np.asarray(b, dtype=np.float64)
    match = _SUBSCRIPTS.match(subscripts)
    if match is None or len(match[1]) != a.mid.ndim or len(match[2]) != b.ndim:
        raise ValueError(f"contract_exact: bad subscripts {subscripts!r} for shapes {a.shape}, {b.shape}")
    sizes = dict(zip(match[1], a.shape)) | dict(zip(match[2], b.shape))
    terms = int(np.prod([sizes[i] for i in set(match[1] + match[2]) - set(match[3])], dtype=np.int64))
    if terms > MAX_TERMS:
        raise ValueError(f"contract_exact: {terms} terms per entry exceed {MAX_TERMS}")
    g, c = (terms + 1) * U, 1.0 + (terms + 10) * 2.0**-52
    with np.errstate(over="ignore", invalid="ignore"):
        mid = np.einsum(subscripts, a.mid, b, optimize=True)
        z = _up(np.abs(a.mid) * g)
        z += a.rad
        rad = np.einsum(subscripts, _up(z), np.abs(b), optimize=True)
        rad *= c
        rad += terms * 2.0**-1071
    cost.add(mid.size * terms * 2, 2 * mid.size * terms)
    return Ball(mid, rad)

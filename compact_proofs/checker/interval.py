"""Float64 interval arithmetic with outward rounding, vectorised over numpy arrays.

An Interval holds arrays lo <= hi with lo <= x <= hi for the exact values x it stands for.
Every operation computes its result in round-to-nearest and then steps one ulp outward
(next_up / next_down, equal to np.nextafter), which contains the exact result because round-to-nearest errs by at most half
an ulp (and subnormal sums are exact). Outward steps can push the lower end of a non-negative
quantity just below zero (0 + 0 gives [-5e-324, 5e-324]; Interval.of(0) likewise), and infinities
give NaN through inf - inf or 0 * inf. A caller that relies on a sign must clamp (`nonnegative`)
and must map NaN to "no information"; no comparison with NaN is ever true.

exp uses tables built in ball arithmetic (arb): for the grid point g = n + f1 2^-8 + f2 2^-16 with
g <= x < g + 2^-16, e^g <= e^x <= e^g e^{2^-16}, and e^g = e^n e^{f1/2^8} e^{f2/2^16} is a product of
certified table entries, rounded outward.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
from flint import arb

from compact_proofs.checker import cost
from compact_proofs.checker.enclosure import precision
from compact_proofs.checker.exact import Dyadic

INF = np.inf
EXP_MIN, EXP_MAX = -1100, 709  # below: e^x < 2^-1500 (lower bound 0); above: overflow (upper bound inf)


_STEP = 2.0**-53 + 2.0**-105  # a float
_NORMAL_STEP = 2.0**-969  # from here on |x| _STEP is a normal float


def nan_as(x, value: float) -> np.ndarray:
    """x with every NaN replaced by value and every infinity kept (np.nan_to_num would turn the
    infinities into the largest finite floats: a finite bound where none is known)."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.isnan(x), value, x)


def next_up(x) -> np.ndarray:
    """np.nextafter(x, inf), element for element, about 8 times faster on large arrays.

    For finite |x| >= 2^-969 it is fl(x + fl(|x| s)), s = 2^-53 + 2^-105. Proof: let
    2^e <= |x| < 2^(e+1) and U = 2^(e-52) (the spacing of floats just above |x|). d = fl(|x| s) is
    normal, so d = |x| s (1 + t), |t| <= 2^-53, hence U/2 < 2^e s (1 - 2^-53) <= d
    < 2^(e+1) s (1 + 2^-53) < 3U/2. For x > 0 the floats around x + d are x + U (at distance
    < U/2) and x, x + 2U (farther), so rounding gives x + U, the next float. For x < 0 with
    |x| > 2^e the same holds with the spacing U below |x|; for x = -2^e, d = 2^(e-53) + 2^(e-105)
    exactly, and x + d rounds to x + 2^(e-53), the next float. Everything else (|x| < 2^-969,
    -inf, NaN, zero-dimensional input) goes through np.nextafter; tests compare the two on random
    bit patterns and every power of two. No fused multiply-add: numpy runs each ufunc apart."""
    return _step(x, 1.0)


def next_down(x) -> np.ndarray:
    """np.nextafter(x, -inf); the mirror image of next_up (next_down(x) = -next_up(-x))."""
    return _step(x, -1.0)


def _step(x, direction: float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0:
        return np.nextafter(x, direction * INF)
    with np.errstate(over="ignore", invalid="ignore"):
        magnitude = np.abs(x)
        out = magnitude * (direction * _STEP)
        out += x
        fast = magnitude >= _NORMAL_STEP
        fast &= x != -direction * INF
    if not fast.all():
        slow = ~fast
        out[slow] = np.nextafter(x[slow], direction * INF)
    return out



class Interval:
    __slots__ = ("lo", "hi")

    def __init__(self, lo, hi=None):
        self.lo = np.asarray(lo, dtype=np.float64)
        self.hi = self.lo if hi is None else np.asarray(hi, dtype=np.float64)

    @classmethod
    def of(cls, exact: Dyadic) -> "Interval":
        """An enclosure of an exact dyadic array (one ulp either side of the nearest float;
        beyond the float range, the largest float to infinity)."""
        nearest = exact.to_float(saturate=True)
        return cls(next_down(nearest), next_up(nearest))

    def __add__(self, other) -> "Interval":
        other = _as_interval(other)
        with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN propagate; no accept uses them
            out = Interval(next_down(self.lo + other.lo), next_up(self.hi + other.hi))
        cost.add(out.lo.size, 2 * out.lo.size)
        return out

    __radd__ = __add__

    def __neg__(self) -> "Interval":
        return Interval(-self.hi, -self.lo)

    def __sub__(self, other) -> "Interval":
        return self + (-_as_interval(other))

    def __rsub__(self, other) -> "Interval":
        return _as_interval(other) - self

    def __mul__(self, other) -> "Interval":
        other = _as_interval(other)
        with np.errstate(over="ignore", invalid="ignore"):
            products = [a * b for a in (self.lo, self.hi) for b in (other.lo, other.hi)]
            out = Interval(next_down(np.minimum.reduce(products)), next_up(np.maximum.reduce(products)))
        cost.add(out.lo.size, 4 * out.lo.size)
        return out

    __rmul__ = __mul__

    def __getitem__(self, index) -> "Interval":
        return Interval(self.lo[index], self.hi[index])

    @property
    def shape(self) -> tuple[int, ...]:
        return self.lo.shape

    def max(self, axis: int) -> "Interval":
        """The largest entry along an axis (exact: max is monotone in each entry)."""
        return Interval(self.lo.max(axis=axis), self.hi.max(axis=axis))

    def minimum(self, other) -> "Interval":
        other = _as_interval(other)
        return Interval(np.minimum(self.lo, other.lo), np.minimum(self.hi, other.hi))

    def nonnegative(self) -> "Interval":
        """For a quantity known to be >= 0: lower ends below zero (or NaN) become 0, NaN upper ends inf."""
        return Interval(np.fmax(self.lo, 0.0), np.where(np.isnan(self.hi), INF, self.hi))

    def reciprocal(self) -> "Interval":
        """1/x for intervals of positive numbers."""
        cost.add(self.lo.size, 2 * self.lo.size)
        return Interval(next_down(1.0 / self.hi), next_up(1.0 / self.lo))

    def exp(self) -> "Interval":
        cost.add(self.lo.size, 2 * self.lo.size)
        return Interval(exp_lower(self.lo), exp_upper(self.hi))


def sum_down(x: np.ndarray, axis) -> np.ndarray:
    """A float <= the exact sum of float arrays along axis, whatever order numpy sums in: the float
    sum of k terms errs by at most gamma_(k-1) sum |x| (Higham), and fl(sum |x|) >= (1 - gamma) sum |x|,
    so (k + 1) 2^-51 fl(sum |x|) covers the error for k < 2^40."""
    return _sum(x, axis, -1.0)


def sum_up(x: np.ndarray, axis) -> np.ndarray:
    """A float >= the exact sum along axis (see sum_down)."""
    return _sum(x, axis, 1.0)


def _sum(x: np.ndarray, axis, direction: float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    k = int(np.prod([x.shape[a] for a in np.atleast_1d(axis)])) if x.ndim else 1
    with np.errstate(invalid="ignore", over="ignore"):
        total = x.sum(axis=axis)
        slack = next_up(np.abs(x).sum(axis=axis) * ((k + 1) * 2.0**-51))
        out = _step(total + direction * slack, direction)
    cost.add(2 * x.size)
    return out


def rsqrt(d: int) -> Interval:
    """An enclosure of 1/sqrt(d): arb's ball at 128 bits, its ends converted and stepped outward."""
    with precision(128):
        ball = arb(d).rsqrt()
        lo, hi = float(ball.lower()), float(ball.upper())
    return Interval(next_down(lo), next_up(hi))


def upper_max_affine(intercept_hi: np.ndarray, slope_hi: np.ndarray, a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[R, J] (or [R, L, J] for intercepts [R, L, O]): a float >= max over the o with mask[r, o] of
    c + a[r, j] s, for every c <= intercept_hi[r, (l,) o] and s <= slope_hi[r, o] ([R, O]), for exact
    a >= 0. Each c + fl(a s)^ is rounded up after the max: next_up is non-decreasing, so that is the
    same float as rounding every term up and then taking the max."""
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN propagate; no accept uses them
        products = next_up(a[:, :, None] * slope_hi[:, None, :])  # [R, J, O]
        stacked = intercept_hi if intercept_hi.ndim == 3 else intercept_hi[:, None, :]
        out = np.stack([next_up(np.where(mask[:, None, :], stacked[:, l, None, :] + products, -INF).max(axis=2))
                        for l in range(stacked.shape[1])], axis=1)
    cost.add(2 * products.size * stacked.shape[1])
    return out if intercept_hi.ndim == 3 else out[:, 0]


def upper_nonnegative_products(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[R, L, O]: a float >= sum_t x[r, l, t] y[r, t, o] for floats x, y >= 0 and T <= 2^10 terms,
    from one float evaluation (numpy's matmul: any summation order, fused multiply-adds or not).
    Lemma: with u = 2^-53, every rounding of a product or of a sum of non-negative numbers loses at
    most the relative u (a product also an absolute 2^-1075 to underflow; a subnormal sum is exact),
    and each product passes through at most T roundings, so the float result S' >= (1 - u)^T S -
    T 2^-1075. Hence S <= (S' + 2^-1065)(1 - u)^-T <= (S' + 2^-1065)(1 + 2^-42) (T u <= 2^-43), and
    next_up(next_up(S' + 2^-1064) * (1 + 2^-41)) is at least that (each step rounds up past the
    exact value it stands for). Infinite or NaN entries stay so (no information)."""
    if x.shape[2] > 1 << 10:
        raise ValueError("upper_nonnegative_products: more than 2^10 terms")
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.matmul(x, y)
        out = next_up(next_up(total + 2.0**-1064) * (1 + 2.0**-41))
    cost.add(total.size * (2 * x.shape[2] - 1), total.size * 2 * x.shape[2])
    return out


def _as_interval(value) -> Interval:
    return value if isinstance(value, Interval) else Interval(value)


def build_exp_tables(bits: int = 128):
    """Certified [lower, upper] floats of e^n (n in EXP_MIN..EXP_MAX), e^{i/2^8}, e^{i/2^16} (i < 256), e^{2^-16},
    from arb balls at `bits` of working precision (any precision is sound; 128 makes them tight)."""
    def bounds(values):
        lo, hi = [], []
        with precision(bits):
            for v in values:
                ball = v.exp()
                lo.append(_floor_float(ball.lower()))
                hi.append(_ceil_float(ball.upper()))
        return np.array(lo), np.array(hi)

    ints = bounds(arb(n) for n in range(EXP_MIN, EXP_MAX + 1))
    coarse = bounds(arb(i) / 256 for i in range(256))
    fine = bounds(arb(i) / 65536 for i in range(256))
    tail = bounds([arb(1) / 65536])
    return ints, coarse, fine, tail


_exp_tables = lru_cache(maxsize=1)(build_exp_tables)


def _exact(ball_endpoint) -> Fraction:
    man, exp = ball_endpoint.mid().man_exp()
    return Fraction(int(man)) * Fraction(2) ** int(exp)


def _floor_float(endpoint) -> float:
    """The largest float <= an exact arb value."""
    value = _exact(endpoint)
    f = float(value)  # correctly rounded
    return f if Fraction(f) <= value else float(next_down(f))


def _ceil_float(endpoint) -> float:
    """The smallest float >= an exact arb value."""
    value = _exact(endpoint)
    f = float(value)
    return f if Fraction(f) >= value else float(next_up(f))


def _split(x: np.ndarray):
    """The grid point g = n + f1/2^8 + f2/2^16 with g <= x < g + 2^-16, as (n, f1, f2). Exact:
    x * 2^16 and floor are exact in float64, and the rest is integer arithmetic."""
    grid = np.floor(x * 65536).astype(np.int64)
    return grid >> 16, (grid >> 8) & 255, grid & 255


def _taylor(clipped: np.ndarray, n, f1, f2) -> tuple[np.ndarray, np.ndarray]:
    """Floats lo <= e^d <= hi for d = x - g in [0, 2^-16): with P = 1 + d + d^2/2 + d^3/6,
    P <= e^d <= P + d^4/24 e^d < P + 2^-68. The float P~ errs by less than 2^-52: the final sum
    with 1 by half an ulp, the small terms by less than 2^-66, and d itself, one subtraction
    (exact by Sterbenz unless -2^-16 <= x < 0), by at most 2^-70. So [P~ - 2^-51, P~ + 2^-51],
    rounded outward, holds e^d."""
    d = clipped - ((n << 16) + (f1 << 8) + f2) / 65536.0
    p = 1.0 + (d + d * d * (0.5 + d / 6.0))
    return next_down(p - 2.0**-51), next_up(p + 2.0**-51)


def exp_lower(x: np.ndarray, tight: bool = False) -> np.ndarray:
    """A float in [0, e^x] for each x (0 below EXP_MIN and for NaN): e^g for the grid point g <= x,
    or with `tight`, e^g times a lower bound of e^(x - g) (relative error about 2^-50)."""
    (ints_lo, _), (c_lo, _), (f_lo, _), _ = _exp_tables()
    x = np.asarray(x, dtype=np.float64)
    clipped = np.clip(np.nan_to_num(x, nan=0.0), EXP_MIN, EXP_MAX)  # out-of-range entries are replaced below
    n, f1, f2 = _split(clipped)
    value = next_down(next_down(ints_lo[n - EXP_MIN] * c_lo[f1]) * f_lo[f2])
    if tight:
        value = next_down(value * _taylor(clipped, n, f1, f2)[0])
    value = np.maximum(value, 0.0)  # e^x > 0
    value = np.where(x < EXP_MIN, 0.0, value)
    value = np.where(x > EXP_MAX, ints_lo[-1], value)
    return np.where(np.isnan(x), 0.0, value)


def exp_upper(x: np.ndarray, tight: bool = False) -> np.ndarray:
    """A float >= e^x for each x (inf above EXP_MAX and for NaN): e^g e^(2^-16), or with `tight`,
    e^g times an upper bound of e^(x - g)."""
    (_, ints_hi), (_, c_hi), (_, f_hi), (_, tail_hi) = _exp_tables()
    x = np.asarray(x, dtype=np.float64)
    clipped = np.clip(np.nan_to_num(x, nan=0.0), EXP_MIN, EXP_MAX)
    n, f1, f2 = _split(clipped)
    tail = _taylor(clipped, n, f1, f2)[1] if tight else tail_hi[0]
    value = next_up(next_up(next_up(ints_hi[n - EXP_MIN] * c_hi[f1]) * f_hi[f2]) * tail)
    value = np.where(x < EXP_MIN, ints_hi[0], value)
    return np.where((x > EXP_MAX) | np.isnan(x), INF, value)

"""The operations version 3 adds, in float64 balls (ball.py) with proven enclosures.

Assumptions, besides ball.py's: numpy's float64 sqrt and division are IEEE-754 correctly rounded
(round-to-nearest), so one step outward (interval.next_down / next_up) from the computed value
encloses the exact one.

LayerNorm (TransformerLens' LN and LNPre), for x in a ball [c, D]:
    mean = (sum_d x_d) (1/D);  y = x - mean;  var = (sum_d y_d^2) (1/D)  (>= 0: clamped there);
    s = var + eps, an interval [lo, hi] rounded outward with lo >= eps_lo > 0;
    1/sqrt(s) in [1/up(sqrt(hi)), 1/down(sqrt(lo))], each sqrt and division stepped outward;
    LN(x) = y (1/sqrt(s)) w + b (LN), or y (1/sqrt(s)) (LNPre).
Every product and sum is a ball contraction (ball.contract's lemma), 1/D and eps are enclosed by
one step either side of their nearest floats. The dependency between y and s is ignored, which is
sound (an enclosure of a function of independent values contains the dependent one).

Activations, for x in [lo, hi] (the ball's ends):
- relu(x) = max(x, 0) is non-decreasing: [max(lo, 0), max(hi, 0)], exact at the ends.
- gelu(x) = x g(x) with g = Phi (the standard normal distribution function, (1 + erf(x/sqrt 2))/2)
  and gelu_new(x) = x g(x) with g(x) = (1 + tanh(u(x)))/2 = 1/(1 + e^(-2u(x))), u(x) = sqrt(2/pi)
  (x + 0.044715 x^3). In both g is non-decreasing (u' = sqrt(2/pi)(1 + 3 0.044715 x^2) > 0),
  0 <= g <= 1 and g(0) = 1/2. So, with floats gl(a) <= g(a) and gh(a) >= g(a):
    if lo >= 0:  x g(x) in [lo gl(lo), hi gh(hi)]          (x >= 0 and g >= 0 both non-decreasing)
    if hi <= 0:  x g(x) in [lo gh(hi), hi gl(lo)]          (x g(x) >= lo g(x) >= lo g(hi) since g >= 0,
                                                            lo <= 0; x g(x) <= hi g(x) <= hi g(lo))
    otherwise:   x g(x) in [lo g(0), hi gh(hi)] = [lo/2, hi gh(hi)]  (the union of [lo, 0] and [0, hi]).
  Each product is rounded outward. No unimodality is used, only monotone g.
- Phi at a float x (phi_bounds): the table PHI holds, for grid points t = k 2^-10 on [-10, 10],
  Phi(t), phi(t), -t phi(t)/2 and (t^2 - 1) phi(t)/6 (phi the normal density), computed in arb
  at 128 bits and rounded to the nearest float (each within 2^-53 relatively, plus the ball's
  radius, checked below 2^-100). For t <= x < t + 2^-10, d = x - t, Taylor's theorem gives
    Phi(x) = Phi(t) + phi(t) d - t phi(t) d^2/2 + (t^2 - 1) phi(t) d^3/6 + R,
    |R| <= max |Phi''''| d^4/24 <= d^4/24 < 2^-40/24,   Phi'''' = (3x - x^3) phi(x), |.| < 0.56.
  The float evaluation (Horner, d computed with error at most 2^-63 as x - t is exact by Sterbenz
  except when -2^-10 <= x < 0) errs by less than 2^-50: the coefficients' rounding (at most
  2^-53 |c_i|, |c_0| <= 1, |c_1| <= 0.4, |c_2| <= 0.13, |c_3| <= 0.07, times d^i <= 2^-10i),
  the three multiplications and three additions (each at most 2^-53 of a partial sum below 1.01)
  and d's error times |P'| <= 0.41. So [P - 2^-44, P + 2^-44], rounded outward, holds Phi(x).
  Beyond the grid: Phi(x) in [1 - 2^-70, 1] for x >= 10 and [0, 2^-70] for x <= -10
  (1 - Phi(10) = Phi(-10) < 7.7e-24 < 2^-70).
- gelu_new's g at a float x: u in interval arithmetic (interval.py, every operation outward;
  0.044715 enclosed by the floats either side of its nearest; sqrt(2/pi) from arb), then
  1/(1 + e^(-2u)) by the interval exp and reciprocal (for gl: the upper end of -2u, and vice versa).
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
from flint import arb

from compact_proofs.checker import cost
from compact_proofs.checker.ball import Ball, contract, contract_exact
from compact_proofs.checker.enclosure import precision
from compact_proofs.checker.interval import INF, Interval, exp_lower, exp_upper, next_down, next_up

GRID_BITS = 10
GRID_RANGE = 10  # the table covers [-10, 10]
PHI_SLACK = 2.0**-44
TAIL = 2.0**-70
GELU_NEW_A = Fraction(44715, 1000000)


def _enclose(value: Fraction) -> tuple[float, float]:
    """Floats lo <= value <= hi: one step either side of the nearest float."""
    nearest = float(value)
    return float(next_down(np.array([nearest]))[0]), float(next_up(np.array([nearest]))[0])


def scalar_ball(value: Fraction) -> Ball:
    lo, hi = _enclose(value)
    return Ball.of_interval(np.float64(lo), np.float64(hi))


# ---------------------------------------------------------------------------------------------
# LayerNorm


def layer_norm(x: Ball, eps: Fraction, w: np.ndarray | None = None, b: np.ndarray | None = None) -> Ball:
    """LN (with w, b) or LNPre (without) of every row of x [c, D] (the derivation above)."""
    D = x.shape[-1]
    inv_d = scalar_ball(Fraction(1, D))
    mean = contract(contract_exact(x, np.ones(D), "cd,d->c"), inv_d, "c,->c")
    y = x - Ball(mean.mid[:, None], mean.rad[:, None])
    var = contract(contract(y, y, "cd,cd->c"), inv_d, "c,->c")
    eps_lo, eps_hi = _enclose(eps)
    with np.errstate(over="ignore", invalid="ignore"):
        lo = next_down(np.maximum(var.lower(), 0.0) + eps_lo)  # var >= 0 exactly
        hi = next_up(var.upper() + eps_hi)
        lo = np.maximum(lo, eps_lo)  # s = var + eps >= eps > eps_lo (an outward step may go below)
        root_lo, root_hi = next_down(np.sqrt(lo)), next_up(np.sqrt(hi))
        inv_lo, inv_hi = next_down(1.0 / root_hi), next_up(1.0 / root_lo)
    cost.add(10 * lo.size)  # pragma: no mutate (accounting)
    scale = Ball.of_interval(np.maximum(inv_lo, 0.0), np.where(np.isfinite(inv_hi), inv_hi, INF))
    out = contract(y, Ball(scale.mid[:, None], scale.rad[:, None]), "cd,cd->cd")
    if w is not None:
        out = contract_exact(out, w, "cd,d->cd") + b
    return out


# ---------------------------------------------------------------------------------------------
# activations


def relu(x: Ball) -> Ball:
    """max(x, 0). Where fl(mid - rad) > 0 the whole ball is positive (rounding to nearest is
    monotone and rounds 0 to 0, so the exact mid - rad is positive too): relu is the ball itself.
    Where fl(mid + rad) < 0 it is negative: relu is exactly 0. Elsewhere [0, max(upper, 0)]."""
    cost.add(2 * x.mid.size)  # pragma: no mutate (accounting)
    with np.errstate(over="ignore", invalid="ignore"):
        positive = (x.mid - x.rad) > 0
        negative = (x.mid + x.rad) < 0
    mid = np.where(positive, x.mid, 0.0)
    rad = np.where(positive, x.rad, 0.0)
    rest = ~(positive | negative)
    if rest.any():
        straddle = Ball.of_interval(np.zeros(int(rest.sum())), np.maximum(Ball(x.mid[rest], x.rad[rest]).upper(), 0.0))
        mid[rest], rad[rest] = straddle.mid, straddle.rad
    return Ball(mid, rad)


def _gated(x: Ball, g_lower, g_upper) -> Ball:
    """x g(x) for a non-decreasing g in [0, 1] with g(0) = 1/2 (the three cases above)."""
    lo, hi = x.lower(), x.upper()
    with np.errstate(over="ignore", invalid="ignore"):
        gl_lo, gh_hi = g_lower(lo), g_upper(hi)
        lower = np.where(lo >= 0, lo * gl_lo, np.where(hi <= 0, lo * g_upper(np.minimum(hi, 0.0)), lo * 0.5))
        upper = np.where(hi <= 0, hi * g_lower(lo), hi * gh_hi)
        lower, upper = next_down(lower), next_up(upper)
    finite = np.isfinite(lo) & np.isfinite(hi)
    cost.add(12 * x.mid.size)  # pragma: no mutate (accounting)
    return Ball.of_interval(np.where(finite, lower, -INF), np.where(finite, upper, INF))


@lru_cache(maxsize=1)
def phi_table() -> tuple[np.ndarray, ...]:
    """(c0, c1, c2, c3) at t = k 2^-GRID_BITS, k = -R 2^GRID_BITS .. R 2^GRID_BITS: Phi(t), phi(t),
    -t phi(t)/2, (t^2 - 1) phi(t)/6, nearest floats of 128-bit arb balls (NaN if a ball is wider
    than 2^-100, which makes every use of that entry undecided)."""
    steps = GRID_RANGE << GRID_BITS
    columns = [np.empty(2 * steps + 1) for _ in range(4)]
    with precision(128):
        root2, inv_root2pi = arb(2).sqrt(), 1 / (2 * arb.pi()).sqrt()
        limit = arb(2) ** -100
        for i, k in enumerate(range(-steps, steps + 1)):
            t = arb(k) / (1 << GRID_BITS)
            density = (-(t * t) / 2).exp() * inv_root2pi
            values = ((1 + (t / root2).erf()) / 2, density, -t * density / 2, (t * t - 1) * density / 6)
            for column, value in zip(columns, values):
                column[i] = float(value.mid()) if value.rad() < limit else np.nan
    return tuple(columns)


def phi_bounds(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Floats lo <= Phi(x) <= hi for each float x (the table and Taylor bound above); NaN -> [0, 1]."""
    c0, c1, c2, c3 = phi_table()
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        clipped = np.clip(np.nan_to_num(x, nan=0.0), -GRID_RANGE, GRID_RANGE)  # k = R 2^GRID_BITS is in the table
        k = np.floor(clipped * (1 << GRID_BITS))
        d = clipped - k / (1 << GRID_BITS)
        i = (k + (GRID_RANGE << GRID_BITS)).astype(np.int64)
        p = c0[i] + d * (c1[i] + d * (c2[i] + d * c3[i]))
        lo, hi = next_down(p - PHI_SLACK), next_up(p + PHI_SLACK)
    lo = np.where(x >= GRID_RANGE, 1.0 - TAIL, np.where(x < -GRID_RANGE, 0.0, lo))
    hi = np.where(x >= GRID_RANGE, 1.0, np.where(x < -GRID_RANGE, TAIL, hi))
    lo = np.where(np.isnan(lo) | np.isnan(x), 0.0, np.clip(lo, 0.0, 1.0))
    hi = np.where(np.isnan(hi) | np.isnan(x), 1.0, np.clip(hi, 0.0, 1.0))
    cost.add(10 * x.size)  # pragma: no mutate (accounting)
    return lo, hi


def gelu(x: Ball) -> Ball:
    """x Phi(x), TransformerLens' gelu (x/2 (1 + erf(x/sqrt 2)))."""
    return _gated(x, lambda a: phi_bounds(a)[0], lambda a: phi_bounds(a)[1])


@lru_cache(maxsize=1)
def _gelu_new_constants() -> tuple[Interval, Interval]:
    with precision(128):
        c = (2 / arb.pi()).sqrt()
        c_lo, c_hi = float(c.lower()), float(c.upper())
    a_lo, a_hi = _enclose(GELU_NEW_A)
    return (Interval(next_down(np.array(c_lo)), next_up(np.array(c_hi))), Interval(np.array(a_lo), np.array(a_hi)))


def _sigmoid_2u(x: np.ndarray, upper: bool) -> np.ndarray:
    """A float <= (resp. >=) 1/(1 + e^(-2 u(x))) for each float x (gelu_new's g)."""
    c, a = _gelu_new_constants()
    with np.errstate(over="ignore", invalid="ignore"):
        point = Interval(x)
        u = c * (point + a * (point * point * point))
        minus_2u = Interval(-2.0 * u.hi, -2.0 * u.lo)  # exact doubling
        if upper:  # g is largest when e^(-2u) is smallest
            denominator = next_down(1.0 + exp_lower(minus_2u.lo, tight=True))
            value = next_up(1.0 / denominator)
        else:
            denominator = next_up(1.0 + exp_upper(minus_2u.hi, tight=True))
            value = next_down(1.0 / denominator)
    value = np.where(np.isnan(value), 1.0 if upper else 0.0, value)
    return np.clip(value, 0.0, 1.0)


def gelu_new(x: Ball) -> Ball:
    """x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))/2, TransformerLens' gelu_new (GPT-2's)."""
    return _gated(x, lambda a: _sigmoid_2u(a, upper=False), lambda a: _sigmoid_2u(a, upper=True))


ACTIVATION = {"relu": relu, "gelu": gelu, "gelu_new": gelu_new}

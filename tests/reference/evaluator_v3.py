"""A reference evaluator for tiny format-v3 models, written from SEMANTICS.md (version 3) alone,
sharing no code with the checker: interval arithmetic on Fractions, every result rounded outward
to the grid 2^-bits; exp by rational_exp (integers and Fractions), square roots by math.isqrt, pi
by Machin's formula and erf by its everywhere-convergent positive series, each with its remainder
bound. Nonlinear functions of an interval use only their monotonicity: sqrt, exp, erf and
u(x) = x + 0.044715 x^3 are increasing; gelu(x) = x Phi(x) and gelu_new are enclosed by the
interval product of [a, b] and the increasing factor's range (naive and sound).

For each input: True (right at every position read), False (a label's logit certainly not above
another's, or identical unembedding columns and biases), None when no precision settles it.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from math import isqrt

import numpy as np

from tests.reference.rational_exp import exp_enclosure

PRECISIONS = (80, 300, 1200)
I = tuple  # (lo, hi), Fractions


class Arith:
    def __init__(self, bits: int):
        self.bits = bits
        self.scale = 1 << bits

    def round(self, lo: Fraction, hi: Fraction) -> I:
        s = self.scale
        return Fraction((lo.numerator * s) // lo.denominator, s), Fraction(-((-hi.numerator * s) // hi.denominator), s)

    def point(self, x) -> I:
        x = Fraction(x)
        return x, x

    def add(self, a: I, b: I) -> I:
        return a[0] + b[0], a[1] + b[1]

    def sub(self, a: I, b: I) -> I:
        return a[0] - b[1], a[1] - b[0]

    def mul(self, a: I, b: I) -> I:
        p = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
        return self.round(min(p), max(p))

    def div(self, a: I, b: I) -> I:
        assert b[0] > 0
        return self.mul(a, self.round(1 / b[1], 1 / b[0]))

    def dot(self, xs: list, ys: list) -> I:
        total = (Fraction(0), Fraction(0))
        for x, y in zip(xs, ys):
            total = self.add(total, self.mul(x, y))
        return total

    def sqrt(self, a: I) -> I:
        """sqrt over [lo, hi], lo >= 0: floor/ceil of isqrt on the grid."""
        def root(x: Fraction, up: bool) -> Fraction:
            scaled = x * self.scale * self.scale
            n = scaled.numerator // scaled.denominator
            r = isqrt(n)
            if up and (r * r != n or Fraction(n) != scaled):
                r += 1
            return Fraction(r, self.scale)
        return root(a[0], False), root(a[1], True)

    def exp(self, a: I) -> I:
        """Far below zero, [0, 2^-(bits+42)]: e^x <= 2^-k whenever x <= -0.7 k (ln 2 > 0.69)."""
        def one(x: Fraction, side: int) -> Fraction:
            if x <= Fraction(-7, 10) * (self.bits + 42):
                return Fraction(0) if side == 0 else Fraction(1, 1 << (self.bits + 42))
            return exp_enclosure(x, self.bits + 10)[side]
        return one(a[0], 0), one(a[1], 1)

    def pi(self) -> I:
        return _pi(self.bits + 10)

    def erf(self, a: I) -> I:
        return _erf(a[0], self.bits + 10)[0], _erf(a[1], self.bits + 10)[1]


def _arctan_inv(n: int, bits: int) -> I:
    """arctan(1/n) for n >= 2: the alternating series, remainder at most the first omitted term."""
    total, k, term = Fraction(0), 0, Fraction(1, n)
    while term > Fraction(1, 1 << (bits + 4)):
        total += term / (2 * k + 1) * (-1) ** k
        k += 1
        term /= n * n
    slack = term / (2 * k + 1)
    return total - slack, total + slack


@lru_cache(maxsize=8)
def _pi(bits: int) -> I:
    a, b = _arctan_inv(5, bits), _arctan_inv(239, bits)
    return 16 * a[0] - 4 * b[1], 16 * a[1] - 4 * b[0]


def _erf(x: Fraction, bits: int) -> I:
    """erf(x) = 2/sqrt(pi) e^(-x^2) sum_n 2^n x^(2n+1) / (1 3 5 ... (2n+1)) for x >= 0 (every term
    positive; once 2 x^2 / (2n+3) <= 1/2 the rest is at most the last term); odd."""
    if x < 0:
        lo, hi = _erf(-x, bits)
        return -hi, -lo
    if x == 0:
        return Fraction(0), Fraction(0)
    if x * x >= Fraction(7, 10) * (bits + 8):  # erfc(x) <= e^(-x^2) <= 2^-(bits+8) (ln 2 > 0.69)
        return 1 - Fraction(1, 1 << (bits + 8)), Fraction(1)
    grid = 1 << (bits + 16)
    x2 = x * x
    lo_term = hi_term = x  # each term rounded down (resp. up) from the previous one: every ratio is positive
    low = high = Fraction(0)
    n = 0
    while True:
        low, high = low + lo_term, high + hi_term
        ratio = 2 * x2 / (2 * n + 3)  # term n+1 / term n
        lo_term = Fraction((lo_term * ratio * grid).numerator // (lo_term * ratio * grid).denominator, grid)
        hi_term = Fraction(-((-(hi_term * ratio * grid).numerator) // (hi_term * ratio * grid).denominator), grid)
        n += 1
        if 2 * x2 / (2 * n + 3) <= Fraction(1, 2) and hi_term <= Fraction(1, grid):
            break  # the remaining terms n, n+1, ... shrink by 1/2 at least: at most 2 hi_term
    high += 2 * hi_term
    e_lo, e_hi = exp_enclosure(-x2, bits + 8)
    pi_lo, pi_hi = _pi(bits + 8)
    a = Arith(bits + 8)
    inv_root_pi = a.round(1 / a.sqrt((pi_lo, pi_hi))[1], 1 / a.sqrt((pi_lo, pi_hi))[0])
    lo = 2 * inv_root_pi[0] * e_lo * max(low, Fraction(0))
    hi = 2 * inv_root_pi[1] * e_hi * high
    return max(lo, Fraction(-1)), min(hi, Fraction(1))


def _act(A: Arith, name: str, x: I) -> I:
    if name == "relu":
        return max(x[0], Fraction(0)), max(x[1], Fraction(0))
    if name == "gelu":
        root2 = A.sqrt((Fraction(2), Fraction(2)))
        scaled = A.round(x[0] / root2[1] if x[0] >= 0 else x[0] / root2[0], x[1] / root2[0] if x[1] >= 0 else x[1] / root2[1])
        erf = A.erf(scaled)
        return A.mul(x, ((1 + erf[0]) / 2, (1 + erf[1]) / 2))
    c = A.sqrt(A.div((Fraction(2), Fraction(2)), A.pi()))
    u = A.mul(c, A.add(x, A.mul((Fraction(44715, 10**6),) * 2, (x[0] ** 3, x[1] ** 3))))
    def g(v: Fraction, side: int) -> Fraction:
        """1/(1 + e^(-2v)) (increasing in v), through an exp of a non-positive argument only."""
        if v >= 0:  # 1/(1 + t), t = e^(-2v) in (0, 1]: decreasing in t
            t = A.exp((-2 * v, -2 * v))
            return 1 / (1 + t[1 - side])
        t = A.exp((2 * v, 2 * v))  # t/(1 + t), t = e^(2v): increasing in t
        return t[side] / (1 + t[side])
    return A.mul(x, A.round(g(u[0], 0), g(u[1], 1)))


def _norm(A: Arith, x: list, eps: Fraction, ln) -> list:
    D = len(x)
    mean = A.mul(sum_i(x), (Fraction(1, D),) * 2)
    y = [A.sub(v, mean) for v in x]
    squares = [(Fraction(0) if v[0] <= 0 <= v[1] else min(v[0] ** 2, v[1] ** 2), max(v[0] ** 2, v[1] ** 2)) for v in y]
    var = A.mul(sum_i(squares), (Fraction(1, D),) * 2)
    root = A.sqrt((max(var[0], Fraction(0)) + eps, var[1] + eps))
    out = [A.div(v, root) for v in y]
    if ln is None:
        return out
    return [A.add(A.mul(v, A.point(w)), A.point(b)) for v, w, b in zip(out, ln[0], ln[1])]


def sum_i(xs: list) -> I:
    return sum((x[0] for x in xs), Fraction(0)), sum((x[1] for x in xs), Fraction(0))


def _logits(w: dict, arch: dict, x: tuple, readout: tuple, bits: int) -> list:
    A = Arith(bits)
    get = lambda k: np.asarray(w[k], dtype=np.float64)  # noqa: E731
    opt = lambda k, shape: get(k) if k in w else np.zeros(shape)  # noqa: E731
    D = get("embed.W_E").shape[1]
    normalization, act = arch["normalization"], arch["activation"]
    eps = Fraction(arch["eps"]) if "eps" in arch else None
    ln_of = lambda p: (get(p + ".w"), get(p + ".b")) if normalization == "LN" else None  # noqa: E731
    norm = (lambda v, ln: v) if normalization == "none" else (lambda v, ln: _norm(A, v, eps, ln))
    T = max(readout) + 1
    r = [[A.add(A.point(get("embed.W_E")[x[i], d]), A.point(get("pos_embed.W_pos")[i, d])) for d in range(D)] for i in range(T)]
    L = len({k.split(".")[1] for k in w if k.startswith("blocks.")})
    for l in range(L):
        p = f"blocks.{l}."
        W = {n: get(p + "attn." + n) for n in ("W_Q", "W_K", "W_V", "W_O")}
        W = {n: (m[None] if m.ndim == 2 else m) for n, m in W.items()}
        H, _, E = W["W_Q"].shape
        b = {n: opt(p + "attn." + n, (H, E)).reshape(H, E) for n in ("b_Q", "b_K", "b_V")}
        b_O = opt(p + "attn.b_O", (D,))
        h = [norm(r[i], ln_of(p + "ln1")) for i in range(T)]
        out = [[A.add(r[i][d], A.point(b_O[d])) for d in range(D)] for i in range(T)]
        scale_root = A.sqrt((Fraction(E), Fraction(E)))
        for head in range(H):
            proj = lambda n, i: [A.add(A.dot(h[i], [A.point(v) for v in W[n][head][:, e]]), A.point(b["b_" + n[-1]][head][e]))  # noqa: E731
                                 for e in range(E)]
            q, k, v = ([proj(n, i) for i in range(T)] for n in ("W_Q", "W_K", "W_V"))
            for i in range(T):
                scores = [A.div(A.dot(q[i], k[j]), scale_root) for j in range(i + 1)]
                top = max(s[1] for s in scores)
                weights = [A.exp((s[0] - top, s[1] - top)) for s in scores]
                total = sum_i(weights)
                for d in range(D):
                    vo = [A.dot(v[j], [A.point(t) for t in W["W_O"][head][:, d]]) for j in range(i + 1)]
                    out[i][d] = A.add(out[i][d], A.div(sum_i([A.mul(wt, o) for wt, o in zip(weights, vo)]), total))
        if act != "none":
            W_in, W_out = get(p + "mlp.W_in"), get(p + "mlp.W_out")
            b_in, b_out = opt(p + "mlp.b_in", (W_in.shape[1],)), opt(p + "mlp.b_out", (D,))
            for i in range(T):
                g = norm(out[i], ln_of(p + "ln2"))
                post = [_act(A, act, A.add(A.dot(g, [A.point(t) for t in W_in[:, m]]), A.point(b_in[m]))) for m in range(W_in.shape[1])]
                out[i] = [A.add(out[i][d], A.add(A.dot(post, [A.point(t) for t in W_out[:, d]]), A.point(b_out[d]))) for d in range(D)]
        r = out
    W_U = get("unembed.W_U")
    b_U = opt("unembed.b_U", (W_U.shape[1],))
    result = []
    for j in readout:
        f = norm(r[j], ln_of("ln_final"))
        result.append([A.add(A.dot(f, [A.point(t) for t in W_U[:, o]]), A.point(b_U[o])) for o in range(W_U.shape[1])])
    return result


def decide(w: dict, arch: dict, x: tuple, readout: tuple, labels: tuple) -> bool | None:
    W_U = np.asarray(w["unembed.W_U"])
    b_U = np.asarray(w.get("unembed.b_U", np.zeros(W_U.shape[1])))
    O = W_U.shape[1]
    if any((W_U[:, o] == W_U[:, y]).all() and b_U[o] == b_U[y] for y in labels for o in range(O) if o != y):
        return False  # identical logits: a tie
    for bits in PRECISIONS:
        logits = _logits(w, arch, x, readout, bits)
        margins = [(row[y][0] - row[o][1], row[y][1] - row[o][0]) for row, y in zip(logits, labels) for o in range(O) if o != y]
        if all(m[0] > 0 for m in margins):
            return True
        if any(m[1] < 0 for m in margins):
            return False
    return None


def reference(w: dict, arch: dict, inputs, labels, readout) -> tuple[int, int]:
    """(inputs certainly right at every position read, inputs not settled)."""
    results = [decide(w, arch, tuple(int(t) for t in x), tuple(readout), tuple(int(t) for t in y)) for x, y in zip(inputs, labels)]
    return results.count(True), results.count(None)

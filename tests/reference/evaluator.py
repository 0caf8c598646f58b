"""An exact reference evaluator for tiny models: the number of correct inputs, by definition.

It follows SEMANTICS.md literally: a forward pass in Fractions (residuals, queries, keys, values,
unembedding), with no path decomposition and no floats. For each input and output o != max(x),
logits[m] - logits[o] = (sum_i e^{u_i} c_i) / (sum_i e^{u_i}) with rational c_i, u_i = s_i/sqrt(d);
its sign is decided exactly: terms with equal s_i are merged, the sum is zero iff every merged
coefficient is (Lindemann-Weierstrass), else rational enclosures at rising precision settle it.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from functools import lru_cache

import numpy as np

from tests.reference.rational_exp import scaled_exp_enclosure

PRECISIONS = (64, 128, 256, 512, 1024, 2048, 4096)


def _mat(array) -> list[list[Fraction]]:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 1:
        array = array[None]
    return [[Fraction(float(x)) for x in row] for row in array]


def _vecmat(v: list[Fraction], m: list[list[Fraction]]) -> list[Fraction]:
    return [sum((v[k] * m[k][j] for k in range(len(v))), Fraction(0)) for j in range(len(m[0]))]


def _add(a, b):
    return [x + y for x, y in zip(a, b)]


def _dot(a, b):
    return sum((x * y for x, y in zip(a, b)), Fraction(0))


class ReferenceModel:
    def __init__(self, weights: dict[str, np.ndarray]):
        def get(key, shape):
            if key in weights:
                return _mat(np.asarray(weights[key], dtype=np.float64).reshape(shape))
            return [[Fraction(0)] * shape[-1]]

        W_E = np.asarray(weights["embed.W_E"])
        self.V, self.D = W_E.shape
        self.N = np.asarray(weights["pos_embed.W_pos"]).shape[0]
        self.H = np.asarray(weights["blocks.0.attn.W_Q"]).shape[-1]
        D, H, V = self.D, self.H, self.V
        self.W_E, self.W_pos = _mat(W_E), _mat(weights["pos_embed.W_pos"])
        self.W_Q, self.W_K, self.W_V = (get(f"blocks.0.attn.W_{n}", (D, H)) for n in "QKV")
        self.W_O = get("blocks.0.attn.W_O", (H, D))
        self.W_U = get("unembed.W_U", (D, V))
        self.b_Q, self.b_K, self.b_V = (get(f"blocks.0.attn.b_{n}", (H,))[0] for n in "QKV")
        self.b_O, self.b_U = get("blocks.0.attn.b_O", (D,))[0], get("unembed.b_U", (V,))[0]
        self._exp_cache: dict = {}

    def _exp(self, score: Fraction, bits: int):
        key = (score, bits)
        if key not in self._exp_cache:
            self._exp_cache[key] = scaled_exp_enclosure(score, self.H, bits)
        return self._exp_cache[key]

    @lru_cache(maxsize=None)
    def _resid(self, t: int, i: int) -> list[Fraction]:
        return _add(self.W_E[t], self.W_pos[i])

    @lru_cache(maxsize=None)
    def _score(self, q: int, t: int, i: int) -> Fraction:
        query = _add(_vecmat(self._resid(q, self.N - 1), self.W_Q), self.b_Q)
        key = _add(_vecmat(self._resid(t, i), self.W_K), self.b_K)
        return _dot(query, key)

    @lru_cache(maxsize=None)
    def _value_logits(self, t: int, i: int) -> list[Fraction]:
        value = _add(_vecmat(self._resid(t, i), self.W_V), self.b_V)
        return _vecmat(_vecmat(value, self.W_O), self.W_U)

    @lru_cache(maxsize=None)
    def _direct_logits(self, q: int) -> list[Fraction]:
        return _add(_vecmat(_add(self._resid(q, self.N - 1), self.b_O), self.W_U), self.b_U)

    def margin_terms(self, x: tuple[int, ...]) -> tuple[list[Fraction], list[list[Fraction]]]:
        """Scores s_i and, for every output o, coefficients c_{i,o} with
        logits[m] - logits[o] = sum_i a_i c_{i,o} (the direct term is spread over the a_i, which sum to 1)."""
        q, m = x[-1], max(x)
        scores = [self._score(q, t, i) for i, t in enumerate(x)]
        rows = [_add(self._value_logits(t, i), self._direct_logits(q)) for i, t in enumerate(x)]
        return scores, [[row[m] - row[o] for row in rows] for o in range(self.V)]

    def sign(self, scores: list[Fraction], coeffs: list[Fraction]) -> int:
        return exp_sum_sign(list(zip(scores, coeffs)), self.H, self._exp)

    def correct(self, x: tuple[int, ...]) -> bool:
        scores, coeffs = self.margin_terms(x)
        m = max(x)
        return all(self.sign(scores, coeffs[o]) > 0 for o in range(self.V) if o != m)

    def count_correct(self) -> int:
        return sum(self.correct(x) for x in itertools.product(range(self.V), repeat=self.N))


def exp_sum_sign(terms: list[tuple[Fraction, Fraction]], d_head: int, exp=None) -> int:
    """The sign of sum over (s, c) of e^{s/sqrt(d_head)} c: merged on equal s, zero iff every merged
    coefficient is, else settled by rational enclosures at rising precision."""
    exp = exp or (lambda score, bits: scaled_exp_enclosure(score, d_head, bits))
    merged: dict[Fraction, Fraction] = {}
    for s, c in terms:
        merged[s] = merged.get(s, Fraction(0)) + c
    merged = {s: c for s, c in merged.items() if c != 0}
    if not merged:
        return 0
    top = max(merged)  # a common factor e^{-top/sqrt(d)} > 0 changes no sign
    for bits in PRECISIONS:
        lo = hi = Fraction(0)
        for s, c in merged.items():
            e_lo, e_hi = exp(s - top, bits)
            lo += c * (e_lo if c > 0 else e_hi)
            hi += c * (e_hi if c > 0 else e_lo)
        if lo > 0:
            return 1
        if hi < 0:
            return -1
    raise RuntimeError("reference evaluator could not settle a sign")


def exact_correct_count(weights: dict[str, np.ndarray]) -> int:
    return ReferenceModel(weights).count_correct()

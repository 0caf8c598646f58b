"""Exact zero tests for many integer sums at once, by residues (the Chinese remainder theorem).

If M_1, ..., M_k are pairwise coprime and z = 0 mod every M_j, then z = 0 mod their product P;
if moreover |z| < P, then z = 0. So integers known to be below 2^bits in magnitude are compared
exactly through their residues modulo moduli whose product exceeds 2^bits, in numpy int64: every
modulus is below 2^57, so a sum of up to 63 residues cannot overflow.
"""

from __future__ import annotations

from math import gcd

import numpy as np


_MODULI: list[int] = []  # the largest odd numbers below 2^57 that are pairwise coprime, found as needed


def moduli_for(bits: int) -> list[int]:
    """The first moduli of the sequence whose product exceeds 2^bits (gcd-checked to be pairwise coprime)."""
    chosen, product = [], 1
    while product <= 1 << bits:
        if len(chosen) == len(_MODULI):
            candidate = _MODULI[-1] - 2 if _MODULI else (1 << 57) - 1
            while not all(gcd(candidate, m) == 1 for m in _MODULI):
                candidate -= 2
            _MODULI.append(candidate)
        chosen.append(_MODULI[len(chosen)])
        product *= chosen[-1]
    return chosen


class Residues:
    """Moduli enough for integers of magnitude below 2^bits (any bits: more moduli as needed)."""

    def __init__(self, bits: int):
        self.moduli = np.array(moduli_for(bits), dtype=np.int64)

    def of(self, ints: np.ndarray) -> np.ndarray:
        """[k, *shape] int64: the residues of an object array of Python ints, each in [0, M_j)."""
        ints = np.asarray(ints, dtype=object)
        return np.stack([(ints % int(m)).astype(np.int64) for m in self.moduli])

    def reduce(self, values: np.ndarray) -> np.ndarray:
        """values mod M_j along the first axis (values of magnitude below 2^63)."""
        return values % self.moduli.reshape((-1,) + (1,) * (values.ndim - 1))

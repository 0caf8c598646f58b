"""A float64 filter with a proven error bound; what it cannot decide is re-decided exactly.

Bulk checks (every input of brute force, every case of the cubic proof) evaluate sums
S = sum_{j<J} w_j c_j in numpy float64 and compare them against the a-priori bound of Lemma 2. Only IEEE-754 binary64 round-to-nearest +, -, * on numpy arrays are used (each correctly
rounded; numpy does not contract them into FMAs), plus exact max/min.

Standard model: fl(x op y) = (x op y)(1 + d) + e with |d| <= u = 2^-53, |e| <= 2^-1075, and e = 0
for + and - (a subnormal sum is exact). gamma_k = k u / (1 - k u) bounds the error of any
summation order of k + 1 terms relative to the sum of their magnitudes (Higham, ch. 3).

Lemma 1 (coefficients). If c = a_1 + ... + a_k (k <= 3) with each a~_i exact or the correctly
rounded float64 of a_i, and c~ is the float sum of the a~_i in any order, then with
C = (sum_i max|a~_i|)(1 + 2^-50):  |c~| <= C  and  |c~ - c| <= 2^-50 C + 2^-1070.
  Proof: |c~ - sum a~| <= gamma_2 sum|a~_i| and |sum a~ - sum a| <= u sum|a_i| + 3 2^-1075;
  gamma_2 + 1.01 u < 3.02 u < 2^-51.4, so the error is below 2^-51 C + 2^-1073.

Lemma 2 (sums). Let 0 <= w_j <= 1 and c_j be reals, and w~_j, c~_j floats with
|w~_j - w_j| <= 2^-50 w_j + 2^-1070, |c~_j| <= C, |c~_j - c_j| <= 2^-50 C + 2^-1070, C <= 2^900.
Let S~ be the float sum, in any order, of the J <= 2^20 products fl(w~_j c~_j), and W~ the float
sum, in any order, of the w~_j. Then, for S = sum_j w_j c_j,
    |S~ - S| <= K W~ + A,   K = C (2^-48 + J 2^-52)(1 + 2^-32),   A = J (C + 1) 2^-1067.
  Proof: |w~c~ - wc| <= |w~ - w||c~| + w|c~ - c| <= 2^-49 w C + 2^-1070 (C + w); rounding the
  product adds u |w~ c~| + 2^-1075 <= u (1 + 2^-50) w C + 2^-1070 C + 2^-1075; the summation adds
  gamma_{J-1} sum_j |t~_j| <= 1.01 J u (1 + 2^-49) C W + J 2^-1074. With W = sum_j w_j this is
  |S~ - S| <= C W (2^-48 + J 2^-52) + J (C + 1) 2^-1068. Finally W~ >= (1 - gamma_{J-1}) sum_j w~_j
  >= (1 - 2^-32.9)((1 - 2^-50) W - J 2^-1070), so W <= W~ (1 + 2^-32) + J 2^-1069, and the
  leftover C J 2^-1069 (2^-48 + J 2^-52) is far below J (C + 1) 2^-1068. No intermediate exceeds
  3 J C < 2^922, so nothing overflows.

Decision (see `classify`): S > 0 is certain when S~ > fl(K2 W~) and S~ > A2, with K2 >= 2 K (1 + 2^-50)
and A2 >= 2 A + 2^-1073: since fl(K2 W~) >= K2 W~ (1 - u) - 2^-1075 >= 2 K W~ - 2^-1075, the two
conditions give S~ > K W~ + A >= |S~ - S|. Symmetrically for S < 0.

Lemma 3 (weights). If |w~a - wa| <= 2^-52 wa + 2^-1074 and likewise for wb (the guarantee of
enclosure.exp_table), with 0 < wa, wb <= 1, then w~ = fl(w~a w~b) satisfies Lemma 2's hypothesis
for w = wa wb: the product of the approximations errs by at most (2^-51 + 2^-103) w + 2^-1072,
and rounding adds u (1 + 2^-50) w + 2^-1075 < 2^-52.9 w + 2^-1075.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

EPS_W = Fraction(1, 2**50)
MAX_TERMS = 1 << 20
MAX_MAGNITUDE = Fraction(2) ** 900


def round_up(value: Fraction) -> float:
    """The smallest float64 >= value (value must be below the overflow threshold)."""
    approx = float(value)  # correctly rounded to nearest
    return approx if Fraction(approx) >= value else float(np.nextafter(approx, np.inf))


def coefficient_bound(*max_abs: float) -> float:
    """C of Lemma 1 for a float sum of (correctly rounded) terms bounded by max_abs."""
    return round_up(sum(map(Fraction, max_abs)) * (1 + EPS_W))


@dataclass(frozen=True)
class Threshold:
    """The decision constants (K2, A2) of Lemma 2 for J terms with coefficients bounded by C."""

    slope: float  # K2
    floor: float  # A2

    @classmethod
    def for_sums(cls, terms: int, bound: float) -> "Threshold":
        if not 1 <= terms <= MAX_TERMS or not 0 <= Fraction(bound) <= MAX_MAGNITUDE:
            raise ValueError("float filter outside its proven range")
        j, c = Fraction(terms), Fraction(bound)
        k = c * (Fraction(1, 2**48) + j / 2**52) * (1 + Fraction(1, 2**32))
        a = j * (c + 1) / Fraction(2) ** 1067
        return cls(round_up(2 * k * (1 + EPS_W)), round_up(2 * a + Fraction(1, 2**1073)))

    def classify(self, sums: np.ndarray, weight_sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(certainly positive, certainly negative) masks for the exact sums that `sums`
        approximate, `weight_sums` being the float sums of their weights. NaN is neither."""
        tolerance = np.maximum(weight_sums * self.slope, self.floor)
        return sums > tolerance, -sums > tolerance

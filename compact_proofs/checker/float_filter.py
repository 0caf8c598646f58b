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

Lemma 2 (sums). Let 0 <= w_j <= 2^20 and c_j be reals, and w~_j, c~_j floats with
|w~_j - w_j| <= eps w_j + eta (eps <= 2^-40, eta <= 2^-1060), |c~_j| <= C <= 2^800 and
|c~_j - c_j| <= 2^-50 C + 2^-1070. Let S~ be the float sum, in any order, of the J <= 2^20
products t~_j = fl(w~_j c~_j), and W~ the float sum, in any order, of the w~_j. Then, for
S = sum_j w_j c_j and W = sum_j w_j,
    |S~ - S| <= K W~ + A,   K = (C (eps + 2^-49 + J 2^-52) + 2^-1069)(1 + 2^-30),
                            A = 2 J (C + 1)(eta + 2^-1072).
  Proof. (i) |w~c~ - wc| <= |w~ - w||c~| + w|c~ - c| <= w C (eps + 2^-50) + eta C + 2^-1070 w.
  (ii) Rounding the product adds u |w~||c~| + 2^-1075 <= u ((1 + eps) w + eta) C + 2^-1075.
  (iii) The summation adds gamma_{J-1} sum_j |t~_j| <= gamma_{J-1} (1 + u)((1 + eps) W + J eta) C
  + J 2^-1075. Collecting, the factor of C W is eps + 2^-50 + u (1 + eps) + 1.01 J u (1 + eps)
  <= eps + 2^-49 + J 2^-52, the factor of W from (i) is 2^-1070, and the rest is at most
  J eta C (1 + 2^-30) + J 2^-1073. (iv) W~ >= (1 - gamma_{J-1}) sum_j w~_j >= (1 - 2^-32.9)
  ((1 - eps) W - J eta), so W <= W~ (1 + 2^-31) + 2 J eta; substituting, the extra 2 J eta times
  the W factor is below J eta C 2^-28 + 2^-1060 J eta. Both sides total at most K W~ + A.
  No intermediate exceeds 2^20 (1 + eps) C J (1 + u) < 2^842, so nothing overflows.

Decision (see `Threshold.classify`): S > 0 is certain when S~ > fl(K2 W~) and S~ > A2, with
K2 >= 2 K (1 + 2^-50) and A2 >= 2 A + 2^-1073: fl(K2 W~) >= K2 W~ (1 - u) - 2^-1075 >= 2 K W~ - 2^-1075,
so the two conditions give S~ > K W~ + A >= |S~ - S|. Symmetrically for S < 0.

Lemma 3 (weights). Let each factor a~ approximate an exp in (0, 1] as enclosure.exp_table
guarantees: |a~ - a| <= 2^-52 a + 2^-1074.
  (a) For w = a b, w~ = fl(a~ b~) meets Lemma 2 with eps = 2^-50, eta = 2^-1070: the product of
  the approximations errs by at most (2^-51 + 2^-103) w + 2^-1072, and rounding adds
  u (1 + 2^-50) w + 2^-1075.
  (b) For w = a (b_1 + ... + b_r), r <= 2^10, with T~ the float sum of the b~_i in any order and
  w~ = fl(a~ T~), Lemma 2 holds with eps = (r + 5) 2^-53 and eta = (r + 1) 2^-1072: T~ errs by at
  most (2^-52 + gamma_{r-1} (1 + 2^-52)) T + r 2^-1074 (the terms are non-negative), with
  gamma_{r-1} <= (r - 1) u (1 + 2^-42); the product of the approximations adds 2^-52 (1 + 2^-50)
  relative and 2 r 2^-1074 absolute (T~ <= 2 r); rounding adds u relative and 2^-1075 absolute.
  In all (r + 4) u + O(r^2 u^2) <= (r + 5) u relative and (3 r + 1) 2^-1074 <= (r + 1) 2^-1072 absolute.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

EPS_W = Fraction(1, 2**50)
MAX_TERMS = 1 << 20
MAX_MAGNITUDE = Fraction(2) ** 800


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
    def for_sums(cls, terms: int, bound: float, eps: Fraction = EPS_W, eta: Fraction = Fraction(1, 2**1070)) -> "Threshold":
        """For J = terms, C = bound and weights meeting Lemma 2 with (eps, eta)."""
        if not (1 <= terms <= MAX_TERMS and 0 <= Fraction(bound) <= MAX_MAGNITUDE
                and 0 <= eps <= Fraction(1, 2**40) and 0 <= eta <= Fraction(1, 2**1060)):
            raise ValueError("float filter outside its proven range")
        j, c = Fraction(terms), Fraction(bound)
        k = (c * (eps + Fraction(1, 2**49) + j / 2**52) + Fraction(1, 2**1069)) * (1 + Fraction(1, 2**30))
        a = 2 * j * (c + 1) * (eta + Fraction(1, 2**1072))
        return cls(round_up(2 * k * (1 + EPS_W)), round_up(2 * a + Fraction(1, 2**1073)))

    @staticmethod
    def product_weights(summands: int) -> tuple[Fraction, Fraction]:
        """(eps, eta) of Lemma 3 for weights a * (sum of `summands` exps); Lemma 3(a) is summands = 1."""
        if summands <= 1:
            return EPS_W, Fraction(1, 2**1070)
        return Fraction(summands + 5, 2**53), Fraction(summands + 1, 2**1072)

    def classify(self, sums: np.ndarray, weight_sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(certainly positive, certainly negative) masks for the exact sums that `sums`
        approximate, `weight_sums` being the float sums of their weights. NaN is neither."""
        tolerance = np.maximum(weight_sums * self.slope, self.floor)
        return sums > tolerance, -sums > tolerance

    def positive(self, sums: np.ndarray, weight_sums: np.ndarray) -> np.ndarray:
        """The first mask of `classify` alone (weight_sums broadcast against sums)."""
        return sums > np.maximum(weight_sums * self.slope, self.floor)

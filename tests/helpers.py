"""Small helpers shared by the tests: build certificates and check them in-process."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from compact_proofs.checker import certificate
from compact_proofs.checker.exact import Dyadic
from compact_proofs.checker.verify import Verdict, check


def total_inputs(weights: dict) -> int:
    return np.shape(weights["embed.W_E"])[0] ** np.shape(weights["pos_embed.W_pos"])[0]


def encode(weights: dict, strategy: str = "brute-force", claimed: int = 0, evidence=None, params=None,
           total: int | None = None) -> bytes:
    return certificate.encode(
        strategy=strategy, params=params or {}, claimed_correct=claimed,
        total=total_inputs(weights) if total is None else total, weights=weights,
        evidence=evidence or {}, generator={"name": "tests"},
    )


def check_bytes(raw: bytes) -> Verdict:
    return check(certificate.decode(raw))


def check_weights(weights: dict, strategy: str = "brute-force", claimed: int = 0, evidence=None) -> Verdict:
    return check_bytes(encode(weights, strategy, claimed, evidence))


def fractions(d: Dyadic) -> np.ndarray:
    """The exact values of a dyadic array, as an object array of Fractions."""
    return np.vectorize(lambda v: Fraction(int(v)) * Fraction(2) ** d.exp, otypes=[object])(d.ints)


def row_spreads(m: np.ndarray) -> np.ndarray:
    """max - min of every row of a Fraction matrix."""
    return np.array([max(row) - min(row) for row in m], dtype=object)


def rounded_mean_row(m: np.ndarray) -> np.ndarray:
    """The mean of the rows rounded to float64, as checker.exact.mean_rows (any centre is sound)."""
    return np.array([Fraction(float(sum(m[:, k]) / m.shape[0])) for k in range(m.shape[1])], dtype=object)

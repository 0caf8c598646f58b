"""Exact arithmetic on dyadic arrays: every entry is an integer times one shared power of two.

Every finite float32/float64 weight is such a number, and so is every sum and product of them,
so the path matrices of a model are computed here with no rounding at all. Matrix products use
python-flint's fmpz_mat on the integer parts; everything else uses numpy object arrays of
Python ints.

Cost: every array carries an upper bound on its integers' bit length, so a product's work is
known before it starts: rows x inner x columns x limbs(a) x limbs(b) (64-bit limbs, schoolbook);
a product above MAX_PRODUCT_WORK is refused (ResourceLimit) instead of run, whatever the weights'
exponent range makes the integers' lengths.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction

import numpy as np
from flint import fmpz_mat

from compact_proofs.checker import cost
from compact_proofs.checker.errors import ResourceLimit

MAX_PRODUCT_WORK = 1 << 33  # limb multiply-adds in one matrix product (about 10 s)


def _limbs(bits: int) -> int:
    return max(1, -(-bits // 64))


def int_array(values, shape) -> np.ndarray:
    """An object array of Python ints (never a fixed-width integer type) with the given shape."""
    out = np.empty(len(values), dtype=object)
    out[:] = [int(v) for v in values]
    return out.reshape(shape)


class Dyadic:
    """The exact array `ints * 2**exp` (ints: numpy object array of Python ints). A matrix may
    instead hold its integers as an fmpz_mat, converted to Python ints only when they are read,
    so that chains of products stay in FLINT."""

    __slots__ = ("_ints", "_mat", "exp", "_bits")

    def __init__(self, ints: np.ndarray | None, exp: int, mat: fmpz_mat | None = None, bits: int | None = None):
        self._ints, self._mat, self.exp, self._bits = ints, mat, exp, bits

    @property
    def bits(self) -> int:
        """An upper bound on the bit length of every integer (exact when computed from them)."""
        if self._bits is None:
            self._bits = int(np.abs(self.ints).max(initial=0)).bit_length()
        return self._bits

    @property
    def ints(self) -> np.ndarray:
        if self._ints is None:
            ints = int_array(self._mat.entries(), (self._mat.nrows(), self._mat.ncols()))
            ints.flags.writeable = False  # a view of the matrix, which may be shared (memo.py)
            self._ints = ints
        return self._ints

    def _fmpz(self) -> fmpz_mat:
        if self._mat is None:
            r, k = self.ints.shape
            self._mat = fmpz_mat(r, k, self.ints.ravel().tolist())
        return self._mat

    @classmethod
    def from_floats(cls, array: np.ndarray) -> "Dyadic":
        """The exact value of a finite float array: x_i = odd_i 2^f_i, and the shared exponent is
        the smallest min(0, f_i) (0 for zeros), so entries are integers as small as that allows."""
        x = np.asarray(array, dtype=np.float64)  # float32 -> float64 is exact
        mantissa, e = np.frexp(x)  # x = mantissa 2^e, 1/2 <= |mantissa| < 1
        m53 = (mantissa * 2.0**53).astype(np.int64)  # exact: |m53| < 2^53
        low = np.frexp((m53 & -m53).astype(np.float64))[1] - 1  # trailing zero bits of m53 (a power of two)
        odd_exp = e.astype(np.int64) - 53 + np.maximum(low, 0)
        nonzero = m53 != 0
        exp = int(np.where(nonzero, np.minimum(odd_exp, 0), 0).min(initial=0))
        bits = int(np.where(nonzero, e, exp).max(initial=exp)) - exp
        cost.add(x.size, x.size * _limbs(bits))  # pragma: no mutate (accounting)
        odd = np.where(nonzero, m53 >> np.maximum(low, 0), 0)
        ints = odd.astype(object) << np.where(nonzero, odd_exp - exp, 0).astype(object)
        return cls(np.asarray(ints, dtype=object).reshape(x.shape), exp, bits=max(bits, 0))

    @classmethod
    def zeros(cls, *shape: int) -> "Dyadic":
        return cls(int_array([0] * int(np.prod(shape, dtype=np.int64)), shape), 0)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._ints.shape if self._ints is not None else (self._mat.nrows(), self._mat.ncols())

    def at_exp(self, exp: int) -> np.ndarray:
        """The integers representing self with the (smaller or equal) exponent `exp`."""
        if exp > self.exp:
            raise ValueError("can only lower the exponent exactly")
        return self.ints * (1 << (self.exp - exp)) if exp < self.exp else self.ints

    def _binary(self, other: "Dyadic", op) -> "Dyadic":
        exp = min(self.exp, other.exp)
        bits = max(self.bits + self.exp - exp, other.bits + other.exp - exp) + 1
        out = Dyadic(op(self.at_exp(exp), other.at_exp(exp)), exp, bits=bits)
        cost.add(out.ints.size)
        return out

    def __add__(self, other: "Dyadic") -> "Dyadic":
        return self._binary(other, np.add)

    def __sub__(self, other: "Dyadic") -> "Dyadic":
        return self._binary(other, np.subtract)

    def __getitem__(self, index) -> "Dyadic":
        return Dyadic(self.ints[index], self.exp, bits=self._bits)

    @property
    def T(self) -> "Dyadic":
        if self._ints is None:
            return Dyadic(None, self.exp, self._mat.transpose(), bits=self._bits)
        return Dyadic(self.ints.T, self.exp, bits=self._bits)

    def __matmul__(self, other: "Dyadic") -> "Dyadic":
        (r, k), (k2, c) = self.shape, other.shape
        if k != k2:
            raise ValueError("shape mismatch in matmul")
        if r * k * c == 0:
            return Dyadic(int_array([0] * (r * c), (r, c)), 0, bits=0)
        work = r * k * c * _limbs(self.bits) * _limbs(other.bits)
        if work > MAX_PRODUCT_WORK:
            raise ResourceLimit("exact", f"a {r}x{k} by {k}x{c} product of {self.bits}- and {other.bits}-bit integers "
                                f"exceeds the work limit ({work:.3g} > {MAX_PRODUCT_WORK} limb operations)")
        cost.add(r * c * (2 * k - 1))
        bits = self.bits + other.bits + k.bit_length()
        return Dyadic(None, self.exp + other.exp, self._fmpz() * other._fmpz(), bits=bits)

    def digest(self) -> str:
        """A sha256 of the exact value (shape, exponent and integers), for memo.py's keys."""
        text = f"{self.shape}:{self.exp}:" + ",".join(map(str, self.ints.ravel().tolist()))
        return hashlib.sha256(text.encode()).hexdigest()

    def __abs__(self) -> "Dyadic":
        return Dyadic(np.abs(self.ints), self.exp, bits=self._bits)

    def reshape(self, *shape: int) -> "Dyadic":
        return Dyadic(self.ints.reshape(*shape), self.exp, bits=self._bits)

    def spread(self) -> "Dyadic":
        """Per row: max - min (the row's range)."""
        return self.max(axis=1) - self.min(axis=1)

    def max(self, axis=None) -> "Dyadic":
        return self._reduce(np.max, axis)

    def min(self, axis=None) -> "Dyadic":
        return self._reduce(np.min, axis)

    def _reduce(self, op, axis) -> "Dyadic":
        out = np.asarray(op(self.ints, axis=axis), dtype=object)
        cost.add(self.ints.size - out.size)
        return Dyadic(out, self.exp, bits=self._bits)

    def fraction(self, index=()) -> Fraction:
        return Fraction(int(self.ints[index])) * Fraction(2) ** self.exp

    def to_float(self, saturate: bool = False) -> np.ndarray:
        """float64 nearest to every entry (correctly rounded, also when subnormal). Beyond the
        float range: OverflowError, or +-inf with saturate=True."""
        ints = self.ints
        magnitudes = np.abs(ints)
        top = int(magnitudes.max(initial=0))
        low = int(np.where(magnitudes != 0, magnitudes, top).min(initial=top))  # the smallest nonzero magnitude
        if top.bit_length() <= 1023 and top.bit_length() + self.exp <= 1023 and (top == 0 or low.bit_length() - 1 + self.exp >= -1022):
            # every integer is a finite float, and every nonzero entry scales to a normal float:
            # float(int) rounds correctly, and scaling by 2^exp is then exact (and commutes with the rounding)
            return np.ldexp(ints.astype(np.float64), self.exp).reshape(self.shape)
        if self.exp >= 0:
            convert = lambda v: float(int(v) << self.exp)  # noqa: E731
        else:
            den = 1 << -self.exp
            convert = lambda v: int(v) / den  # noqa: E731  (int true division is correctly rounded)
        if saturate:
            exact = convert

            def convert(v):
                try:
                    return exact(v)
                except OverflowError:
                    return np.inf if v > 0 else -np.inf
        flat = [convert(v) for v in self.ints.ravel()]
        return np.array(flat, dtype=np.float64).reshape(self.shape)


def align(*arrays: Dyadic) -> tuple[list[np.ndarray], int]:
    """Integer parts of several dyadic arrays at one shared exponent."""
    exp = min(a.exp for a in arrays)
    return [a.at_exp(exp) for a in arrays], exp


def concat(arrays: list[Dyadic], axis: int) -> Dyadic:
    ints, exp = align(*arrays)
    return Dyadic(np.concatenate(ints, axis=axis), exp)


def mean_rows(array: Dyadic) -> Dyadic:
    """The mean of the rows, rounded to float64 (a dyadic row vector [1, n]); 0 where the mean is
    beyond the float range. Exactness is never needed: it is only used as a centre, and any
    centre is sound."""
    total = array.ints.sum(axis=0)
    rows = array.shape[0]

    def centre(t) -> float:
        try:
            return float(Fraction(int(t)) * Fraction(2) ** array.exp / rows)
        except OverflowError:
            return 0.0

    return Dyadic.from_floats(np.array([[centre(t) for t in total]]))

"""The certificate's tensors on the second path: strict decoding to Python numbers, nesting, and
the model digest (schema/certificate-v1.md: dtypes, shapes, limits; the fast path's rules)."""

from __future__ import annotations

import hashlib
import struct
from typing import Callable

from compact_proofs.checker.pure import msgpack_lite
from compact_proofs.checker.pure.errors import Malformed

MAX_ELEMENTS, MAX_NDIM = 1 << 27, 6


def decode(value, what: str) -> tuple[list, tuple]:
    """(flat values, shape) of a v1 tensor map {dtype, shape, data}; floats finite."""
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data"}:
        raise Malformed(f"{what} is not a tensor")
    codes = {"<f4": "f", "<f8": "d", "<i8": "q", "|u1": "B"}
    if not isinstance(value["dtype"], str) or value["dtype"] not in codes or not isinstance(value["shape"], list) \
            or len(value["shape"]) > MAX_NDIM:
        raise Malformed(f"{what} has an unsupported dtype or shape")
    count = 1
    for size in value["shape"]:
        if type(size) is not int or not 0 <= size <= MAX_ELEMENTS:
            raise Malformed(f"{what} has an invalid shape")
        count *= size
        if count > MAX_ELEMENTS:
            raise Malformed(f"{what} has more than {MAX_ELEMENTS} elements")
    code = codes[value["dtype"]]
    if not isinstance(value["data"], bytes) or len(value["data"]) != count * struct.calcsize(code):
        raise Malformed(f"{what} data length does not match its shape")
    flat = list(struct.unpack(f"<{count}{code}", value["data"]))
    if code in "fd" and any(x != x or x in (float("inf"), float("-inf")) for x in flat):
        raise Malformed(f"{what} contains NaN or infinity")
    return flat, tuple(value["shape"])


def nest(flat: list, shape: tuple):
    """Row-major nested lists of the given shape (the last axis stays flat)."""
    if len(shape) <= 1:
        return flat
    step = len(flat) // shape[0] if shape[0] else 0
    return [nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def digest(weights: dict, head_axis_first: Callable[[str], int]) -> str:
    """sha256 of the canonical encoding of the weight tensors, each with its head axis present:
    head_axis_first(key) is the number of axes a key has without its (omittable) head axis, or 0."""
    def restored(key: str, value: dict) -> dict:
        without = head_axis_first(key)
        return dict(value, shape=[1] + value["shape"]) if without and len(value["shape"]) == without else value
    return "sha256:" + hashlib.sha256(msgpack_lite.encode({k: restored(k, v) for k, v in weights.items()})).hexdigest()

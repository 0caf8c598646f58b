"""The certificate's tensors on the second path: strict decoding to Python numbers, nesting, and
the model digest (schema/certificate-v1.md: dtypes, shapes, limits; the fast path's rules)."""

from __future__ import annotations

import hashlib
import struct
from typing import Callable

from compact_proofs.checker.pure import msgpack_lite
from compact_proofs.checker.pure.errors import Malformed

MAX_ELEMENTS, MAX_NDIM = 1 << 27, 6


CODES = {"<f4": "f", "<f8": "d", "<i8": "q", "|u1": "B"}


def header(value, what: str) -> tuple[str, tuple, int]:
    """(struct code, shape, element count) of a v1 tensor map {dtype, shape, data}, its data's
    length checked; nothing is read from the data."""
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data"}:
        raise Malformed(f"{what} is not a tensor")
    if not isinstance(value["dtype"], str) or value["dtype"] not in CODES or not isinstance(value["shape"], list) \
            or len(value["shape"]) > MAX_NDIM:
        raise Malformed(f"{what} has an unsupported dtype or shape")
    count = 1
    for size in value["shape"]:
        if type(size) is not int or not 0 <= size <= MAX_ELEMENTS:
            raise Malformed(f"{what} has an invalid shape")
        count *= size
        if count > MAX_ELEMENTS:
            raise Malformed(f"{what} has more than {MAX_ELEMENTS} elements")
    code = CODES[value["dtype"]]
    if not isinstance(value["data"], bytes) or len(value["data"]) != count * struct.calcsize(code):
        raise Malformed(f"{what} data length does not match its shape")
    return code, tuple(value["shape"]), count


# A little-endian IEEE float is NaN or infinite iff its exponent bits are all ones: for float32
# the top byte's low 7 bits and the next byte's top bit; for float64 the top byte's low 7 bits and
# the next byte's top 4 bits. Tables mapping a byte to 1 when its bits of the exponent are all set:
_TOP = bytes(int(b & 0x7F == 0x7F) for b in range(256))
_NEXT = {"f": bytes(int(b & 0x80 == 0x80) for b in range(256)), "d": bytes(int(b & 0xF0 == 0xF0) for b in range(256))}
_SCAN = 1 << 20  # elements per step: memory stays a few MB whatever the tensor's size


def all_finite(data: bytes, code: str) -> bool:
    """Whether every float of `data` (code "f" or "d", little-endian) is finite, read a chunk at a
    time, without building a number per element (bytes.translate and one big-integer AND a chunk)."""
    size = struct.calcsize(code)
    for start in range(0, len(data), size * _SCAN):
        chunk = data[start : start + size * _SCAN]
        top = chunk[size - 1 :: size].translate(_TOP)
        below = chunk[size - 2 :: size].translate(_NEXT[code])
        if int.from_bytes(top, "little") & int.from_bytes(below, "little"):
            return False
    return True


def validate(value, what: str) -> tuple[str, tuple, int]:
    """header(), and floats finite; no list of values is built (the parse of a large file stays small)."""
    code, shape, count = header(value, what)
    if code in "fd" and not all_finite(value["data"], code):
        raise Malformed(f"{what} contains NaN or infinity")
    return code, shape, count


def decode(value, what: str) -> tuple[list, tuple]:
    """(flat values, shape) of a v1 tensor map {dtype, shape, data}; floats finite."""
    code, shape, count = validate(value, what)
    return list(struct.unpack(f"<{count}{code}", value["data"])), shape


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

"""A strict msgpack decoder and encoder for the certificate subset, in the standard library only.

Subset: nil, bool, integers (to 64 bits), str, bin, array, map. Floats, extension types and
trailing bytes are errors. encode(decode(b)) == b exactly when b is canonical (sorted maps,
shortest integer and length encodings), which is how the certificate format defines canonical.
"""

from __future__ import annotations

import struct


class Malformed(ValueError):
    pass


MAX_STR, MAX_ITEMS = 1 << 16, 1 << 10  # bytes of one str; entries of one array or map


def decode(data: bytes, max_depth: int = 16):
    value, end = _decode(memoryview(data), 0, max_depth)
    if end != len(data):
        raise Malformed("trailing bytes")
    return value


def _take(data, i: int, n: int) -> bytes:
    if i + n > len(data):
        raise Malformed("truncated")
    return bytes(data[i : i + n])


def _uint(data, i: int, n: int) -> int:
    return int.from_bytes(_take(data, i, n), "big")


def _decode(data, i: int, depth: int):
    if depth < 0:
        raise Malformed("nested too deeply")
    if i >= len(data):
        raise Malformed("truncated")
    b = data[i]
    i += 1
    if b <= 0x7F:
        return b, i
    if b >= 0xE0:
        return b - 0x100, i
    if 0xA0 <= b <= 0xBF:
        return _text(data, i, b & 0x1F)
    if 0x90 <= b <= 0x9F:
        return _array(data, i, b & 0x0F, depth)
    if 0x80 <= b <= 0x8F:
        return _map(data, i, b & 0x0F, depth)
    if b == 0xC0:
        return None, i
    if b in (0xC2, 0xC3):
        return b == 0xC3, i
    sizes = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
    if b in sizes:
        return _uint(data, i, sizes[b]), i + sizes[b]
    signed = {0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
    if b in signed:
        n = signed[b]
        return int.from_bytes(_take(data, i, n), "big", signed=True), i + n
    lengths = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4, 0xDC: 2, 0xDD: 4, 0xDE: 2, 0xDF: 4}
    if b in lengths:
        n = lengths[b]
        size, i = _uint(data, i, n), i + n
        if b in (0xC4, 0xC5, 0xC6):
            return _take(data, i, size), i + size
        if b in (0xD9, 0xDA, 0xDB):
            return _text(data, i, size)
        if b in (0xDC, 0xDD):
            return _array(data, i, size, depth)
        return _map(data, i, size, depth)
    raise Malformed(f"unsupported msgpack type 0x{b:02x}")


def _text(data, i: int, size: int):
    if size > MAX_STR:
        raise Malformed("string too long")
    try:
        return _take(data, i, size).decode("utf-8"), i + size
    except UnicodeDecodeError:
        raise Malformed("invalid utf-8") from None


def _array(data, i: int, size: int, depth: int):
    if size > MAX_ITEMS:
        raise Malformed("array too long")
    out = []
    for _ in range(size):
        value, i = _decode(data, i, depth - 1)
        out.append(value)
    return out, i


def _map(data, i: int, size: int, depth: int):
    if size > MAX_ITEMS:
        raise Malformed("map too long")
    out = {}
    for _ in range(size):
        key, i = _decode(data, i, depth - 1)
        if not isinstance(key, str) or key in out:
            raise Malformed("map keys must be distinct strings")
        out[key], i = _decode(data, i, depth - 1)
    return out, i


def _head(small: int, small_max: int, codes: tuple[int, int, int], size: int) -> bytes:
    if size <= small_max and small is not None:
        return bytes([small | size])
    for code, width in zip(codes, (1, 2, 4)):
        if code is not None and size < 1 << (8 * width):
            return bytes([code]) + size.to_bytes(width, "big")
    raise Malformed("too long")


def encode(value) -> bytes:
    """Canonical msgpack: maps sorted by key, shortest forms."""
    if value is None:
        return b"\xc0"
    if value is True or value is False:
        return b"\xc3" if value else b"\xc2"
    if isinstance(value, int):
        if 0 <= value <= 0x7F or -32 <= value < 0:
            return struct.pack("b" if value < 0 else "B", value)
        if value >= 0:
            for code, fmt, top in ((0xCC, ">B", 1 << 8), (0xCD, ">H", 1 << 16), (0xCE, ">I", 1 << 32), (0xCF, ">Q", 1 << 64)):
                if value < top:
                    return bytes([code]) + struct.pack(fmt, value)
        for code, fmt, low in ((0xD0, ">b", -(1 << 7)), (0xD1, ">h", -(1 << 15)), (0xD2, ">i", -(1 << 31)), (0xD3, ">q", -(1 << 63))):
            if value >= low:
                return bytes([code]) + struct.pack(fmt, value)
        raise Malformed("integer out of range")
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _head(0xA0, 31, (0xD9, 0xDA, 0xDB), len(raw)) + raw
    if isinstance(value, bytes):
        return _head(None, -1, (0xC4, 0xC5, 0xC6), len(value)) + value
    if isinstance(value, list):
        return _head(0x90, 15, (None, 0xDC, 0xDD), len(value)) + b"".join(encode(v) for v in value)
    if isinstance(value, dict):
        return _head(0x80, 15, (None, 0xDE, 0xDF), len(value)) + b"".join(encode(k) + encode(value[k]) for k in sorted(value))
    raise Malformed(f"cannot encode {type(value).__name__}")

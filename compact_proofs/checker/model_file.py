"""The digest of a model file, for `compact-proofs-check --model FILE` (is a certificate about it?).

Reads .npz (numpy, no pickle) and .safetensors (parsed here: an 8-byte header length, a JSON
header of dtypes, shapes and offsets, then raw little-endian data) TransformerLens state dicts,
as generator/weights_io.py does: buffers (attn.mask, attn.IGNORE) dropped, float16 and bfloat16
widened to float32 (exact), the head axis restored. .pt files need torch: use `compact-proofs check`.
This decides only the --model comparison, never a bound.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from compact_proofs.checker.errors import InvalidCertificate
from compact_proofs.checker.weights import model_digest

BUFFERS = ("attn.mask", "attn.IGNORE")
MAX_BYTES = 1 << 30
SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                      "U8": np.uint8, "BOOL": np.bool_}


class ModelFileError(ValueError):
    pass


def _safetensors(raw: bytes) -> dict[str, np.ndarray]:
    if len(raw) < 8:
        raise ModelFileError("truncated safetensors file")
    (size,) = struct.unpack("<Q", raw[:8])
    if size > len(raw) - 8:
        raise ModelFileError("truncated safetensors header")
    try:
        header = json.loads(raw[8 : 8 + size])
    except ValueError:
        raise ModelFileError("unreadable safetensors header") from None
    if not isinstance(header, dict):
        raise ModelFileError("the safetensors header is not a map")
    data, out = raw[8 + size :], {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = (int(n) for n in entry["data_offsets"])
            shape = tuple(int(n) for n in entry["shape"])
            dtype = str(entry["dtype"])
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(f"malformed safetensors entry {name!r}") from None
        if dtype == "BF16":  # the top half of a float32
            halves = np.frombuffer(data[start:end], dtype="<u2")
            array = (halves.astype("<u4") << 16).view("<f4")
        elif dtype in SAFETENSORS_DTYPES:
            array = np.frombuffer(data[start:end], dtype=np.dtype(SAFETENSORS_DTYPES[dtype]).newbyteorder("<"))
        else:
            raise ModelFileError(f"unsupported safetensors dtype {dtype}")
        if array.size != int(np.prod(shape, dtype=np.int64)):
            raise ModelFileError(f"safetensors entry {name!r} does not match its shape")
        out[name] = array.reshape(shape)
    return out


def read(path: str | os.PathLike) -> dict[str, np.ndarray]:
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory, not a weights file")
    if suffix not in (".npz", ".safetensors"):
        hint = " (.pt needs torch: use `compact-proofs check --model`)" if suffix == ".pt" else ""
        raise ModelFileError(f"{path}: not a weights file; --model reads .npz and .safetensors files here{hint}")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ModelFileError(f"{path}: larger than {MAX_BYTES} bytes")
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        return _safetensors(path.read_bytes())
    except ModelFileError:
        raise
    except Exception as exc:  # any malformed file: one line, never a traceback
        detail = "it holds pickled objects, which are never loaded" if "pickle" in str(exc) else \
            getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: cannot read weights ({detail})") from None


def digest_of_file(path: str | os.PathLike) -> str:
    """compact_proofs.checker.weights.model_digest of the model a weights file holds."""
    try:
        state = {k: np.asarray(v) for k, v in read(path).items() if not k.endswith(BUFFERS)}
        state = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in state.items()}
        return model_digest(state)
    except InvalidCertificate as exc:
        raise ModelFileError(f"{path}: {exc.reason}") from None

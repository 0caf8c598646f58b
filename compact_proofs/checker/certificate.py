"""Strict decoding (and canonical encoding) of certificate formats v1, v2 and v3; spec:
schema/certificate-v1.md, -v2.md (v2 adds the top-level key `task`) and -v3.md (v3's `task` is a
map, with a data file for the task `data`, and it adds `architecture`).

Decoding is part of the trusted base. It bounds every size before allocating, accepts exactly the
documented keys and types, and requires the canonical byte encoding, so that one certificate has
one byte string and one sha256 digest.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from compact_proofs.checker.errors import InvalidCertificate

FORMAT = "compact-proofs/certificate"
VERSION = 1
VERSIONS = (1, 2, 3)
MAX_FILE_BYTES = 1 << 30
MAX_TENSOR_ELEMENTS = 1 << 27
MAX_NDIM = 6
MAX_DECIMAL_DIGITS = 1000
MAX_DEPTH = 16  # maps and arrays nested at most this deep (a valid certificate needs 5)
MAX_STR = 1 << 16
MAX_ITEMS = 1 << 10  # entries of one map or array
DTYPES = ("<f4", "<f8", "<i8", "|u1")
TOP_KEYS = {"format", "version", "strategy", "params", "claim", "weights", "evidence", "generator", "digest"}
TOP_KEYS_V2 = TOP_KEYS | {"task"}
TOP_KEYS_V3 = TOP_KEYS_V2 | {"architecture"}
TASK_KEYS_V3 = ({"name"}, {"name", "file", "sha256"})  # the second for the task `data` (schema/certificate-v3.md)
MAX_TASK_FILE = 1 << 28
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)\Z")
_NAME = re.compile(r"[A-Za-z0-9_.+/-]{1,200}\Z")


def _fail(reason: str) -> InvalidCertificate:
    return InvalidCertificate("parse", reason)


@dataclass(frozen=True)
class Certificate:
    strategy: str
    params: dict[str, Any]
    claimed_correct: int
    claimed_total: int
    weights: dict[str, np.ndarray]
    evidence: dict[str, Any]
    generator: dict[str, str]
    digest: str
    raw_size: int = field(default=0, compare=False)
    version: int = 1
    task: str = "max"  # format v1 has no task key: its task is max
    architecture: dict[str, str] = field(default_factory=dict)  # format v3 only (checker/v3/architecture.py reads it)
    task_file: bytes | None = field(default=None, repr=False)  # format v3, task `data`: the file's bytes
    task_sha256: str | None = None  # ... and the sha256 the certificate states for them (checked against the bytes)


# ---------------------------------------------------------------------------------------------
# canonical encoding


def _sorted(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _sorted(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [_sorted(v) for v in obj]
    return obj


def canonical_bytes(obj: dict) -> bytes:
    """msgpack with maps sorted by key, minimal integer widths and bin (not str) for bytes."""
    return msgpack.packb(_sorted(obj), use_bin_type=True)


def digest_of(body: dict) -> str:
    return "sha256:" + hashlib.sha256(canonical_bytes({k: v for k, v in body.items() if k != "digest"})).hexdigest()


def weights_digest(weights: dict[str, np.ndarray]) -> str:
    """The sha256 of the weights' canonical encoding (names, dtypes, shapes, bytes): the name of a
    model, the same in a certificate, a weights file, a sweep row and the models manifest."""
    return "sha256:" + hashlib.sha256(canonical_bytes({k: tensor(v) for k, v in weights.items()})).hexdigest()


def tensor(array: np.ndarray) -> dict:
    """The v1 tensor encoding: dtype, shape and raw little-endian bytes."""
    array = np.ascontiguousarray(array)
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    code = np.dtype(dtype).str
    if code not in DTYPES:
        raise ValueError(f"unsupported tensor dtype {code}")
    return {"dtype": code, "shape": list(array.shape), "data": array.astype(dtype, copy=False).tobytes()}


def encode(
    *, strategy: str, params: dict, claimed_correct: int, total: int, weights: dict, evidence: dict, generator: dict,
    task: str | None = None, architecture: dict | None = None, task_file: bytes | None = None,
) -> bytes:
    """Format v1, or v2 when a task is named, or v3 when an architecture is given (task_file: the
    bytes of the task `data`'s file, carried with their sha256)."""
    body = {
        "format": FORMAT,
        "version": VERSION if task is None else 2 if architecture is None else 3,
        "strategy": strategy,
        "params": params,
        "claim": {"correct": str(claimed_correct), "total": str(total)},
        "weights": {k: tensor(v) for k, v in weights.items()},
        "evidence": {k: tensor(v) if isinstance(v, np.ndarray) else v for k, v in evidence.items()},
        "generator": generator,
    }
    if task is not None:
        body["task"] = task
    if architecture is not None:
        body["architecture"] = dict(architecture)
        body["task"] = {"name": task} if task_file is None else {
            "name": task, "file": task_file, "sha256": "sha256:" + hashlib.sha256(task_file).hexdigest()}
    body["digest"] = digest_of(body)
    return canonical_bytes(body)


# ---------------------------------------------------------------------------------------------
# strict decoding


def _map(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise _fail(f"{what} must be a map")
    return value


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise _fail(f"{what} must be a short name of letters, digits and _.+/-")
    return value


def _decimal(value: Any, what: str) -> int:
    if not isinstance(value, str) or len(value) > MAX_DECIMAL_DIGITS or not _DECIMAL.match(value):
        raise _fail(f"{what} must be a non-negative decimal integer string")
    return int(value)


def _decode_tensor(value: Any, what: str) -> np.ndarray:
    value = _map(value, what)
    if set(value) != {"dtype", "shape", "data"}:
        raise _fail(f"{what} must have exactly the keys dtype, shape, data")
    dtype, shape, data = value["dtype"], value["shape"], value["data"]
    if dtype not in DTYPES:
        raise _fail(f"{what} has unsupported dtype {dtype!r}")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM:
        raise _fail(f"{what} shape must be a list of at most {MAX_NDIM} sizes")
    count = 1
    for size in shape:
        if type(size) is not int or not 0 <= size <= MAX_TENSOR_ELEMENTS:
            raise _fail(f"{what} has an invalid size in its shape")
        count *= size
        if count > MAX_TENSOR_ELEMENTS:
            raise _fail(f"{what} declares more than {MAX_TENSOR_ELEMENTS} elements")
    if not isinstance(data, bytes) or len(data) != count * np.dtype(dtype).itemsize:
        raise _fail(f"{what} data length does not match dtype and shape")
    array = np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise _fail(f"{what} contains NaN or infinity")
    return array


def _decode_evidence_value(value: Any, what: str) -> Any:
    if isinstance(value, dict):
        return _decode_tensor(value, what)
    if isinstance(value, bool) or (isinstance(value, int) and -(2**63) <= value < 2**64):
        return value
    if isinstance(value, str) and len(value) <= MAX_DECIMAL_DIGITS:
        return value
    raise _fail(f"{what} must be a tensor, an integer, a boolean or a short string")


def _reject_ext(code: int, data: bytes) -> Any:
    raise _fail("msgpack extension types are not allowed")


def _check_tree(root: Any) -> None:
    """The container rules of schema/certificate-v1.md, before anything else reads the document:
    only nil, bool, int, str, bin, array and map; map keys are strings; no value deeper than
    MAX_DEPTH (the document itself at depth 0). (msgpack itself bounds lengths, rejects extension
    types and, in canonical form, duplicate keys.)"""
    stack = [(root, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _fail(f"values nested more than {MAX_DEPTH} deep")
        if isinstance(value, dict):
            if not all(type(key) is str for key in value):
                raise _fail("map keys must be strings")
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif value is not None and not isinstance(value, (bool, int, str, bytes)):
            raise _fail(f"msgpack {type(value).__name__} values are not allowed")


def decode(raw: bytes) -> Certificate:
    """Parse and validate the container; the strategy's own checks come later."""
    if len(raw) > MAX_FILE_BYTES:
        raise _fail(f"file larger than {MAX_FILE_BYTES} bytes")
    try:
        obj = msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_reject_ext,
            max_str_len=MAX_STR,
            max_bin_len=MAX_FILE_BYTES,
            max_array_len=MAX_ITEMS,
            max_map_len=MAX_ITEMS,
            max_ext_len=0,
        )
    except InvalidCertificate:
        raise
    except Exception as exc:  # msgpack raises several unrelated types for malformed input
        raise _fail(f"not a msgpack document ({type(exc).__name__})") from None
    _check_tree(obj)
    body = _map(obj, "certificate")
    if body.get("format") != FORMAT:
        raise _fail(f"format must be {FORMAT!r}")
    if type(body.get("version")) is not int or body["version"] not in VERSIONS:
        raise _fail(f"unsupported version {body.get('version')!r} (this checker reads versions 1, 2 and 3)")
    keys = {1: TOP_KEYS, 2: TOP_KEYS_V2, 3: TOP_KEYS_V3}[body["version"]]
    if set(body) != keys:
        missing, extra = keys - set(body), set(body) - keys
        raise _fail(f"top-level keys: missing {sorted(missing)}, unknown {sorted(map(str, extra))}")
    try:
        canonical = canonical_bytes(body)
    except Exception as exc:  # the tree check above should make this unreachable; never a traceback
        raise _fail(f"cannot re-encode the document ({type(exc).__name__})") from None
    if canonical != raw:
        raise _fail("not in canonical encoding (sorted maps, minimal integers, bin for bytes)")
    if body["digest"] != digest_of(body):
        raise _fail("digest does not match the content")
    params = _map(body["params"], "params")
    for key, value in params.items():
        _name(key, "a params key")
        if not isinstance(value, (bool, int, str)) or (isinstance(value, int) and not -(2**63) <= value < 2**64):
            raise _fail(f"param {key} must be an integer, a boolean or a string")
    claim = _map(body["claim"], "claim")
    if set(claim) != {"correct", "total"}:
        raise _fail("claim must have exactly the keys correct, total")
    generator = _map(body["generator"], "generator")
    if not all(isinstance(k, str) and isinstance(v, str) and len(v) < 4096 for k, v in generator.items()):
        raise _fail("generator must map names to strings")
    weights = {_name(k, "a weight name"): _decode_tensor(v, f"weight {k}") for k, v in _map(body["weights"], "weights").items()}
    for key, array in weights.items():
        if array.dtype.kind != "f":
            raise _fail(f"weight {key} must be float32 or float64")
    evidence = {
        _name(k, "an evidence name"): _decode_evidence_value(v, f"evidence {k}")
        for k, v in _map(body["evidence"], "evidence").items()
    }
    task_name, task_file, task_sha256, architecture = "max", None, None, {}
    if body["version"] == 2:
        task_name = _name(body["task"], "task")
    elif body["version"] == 3:
        task_name, task_file, task_sha256 = _task_v3(body["task"])
        architecture = _map(body["architecture"], "architecture")
        if not all(_NAME.match(k) and isinstance(v, str) and _NAME.match(v) for k, v in architecture.items()) \
                or len(architecture) > 8:
            raise _fail("architecture must map at most 8 names to short names")
    return Certificate(
        strategy=_name(body["strategy"], "strategy"),
        params=params,
        claimed_correct=_decimal(claim["correct"], "claim.correct"),
        claimed_total=_decimal(claim["total"], "claim.total"),
        weights=weights,
        evidence=evidence,
        generator=generator,
        digest=body["digest"],
        raw_size=len(raw),
        version=body["version"],
        task=task_name,
        architecture=architecture,
        task_file=task_file,
        task_sha256=task_sha256,
    )


def _task_v3(task: Any) -> tuple[str, bytes | None, str | None]:
    """Format v3's task map: {name} or, for a task given as data, {name, file, sha256}; the
    sha256 must be that of the file's bytes (so the digest reported is the file's own)."""
    task = _map(task, "task")
    if set(task) not in TASK_KEYS_V3:
        raise _fail("task must have the keys name, or name, file and sha256")
    name = _name(task["name"], "task name")
    if "file" not in task:
        return name, None, None
    data, stated = task["file"], task["sha256"]
    if not isinstance(data, bytes) or len(data) > MAX_TASK_FILE:
        raise _fail(f"task file must be bytes, at most {MAX_TASK_FILE} of them")
    if not isinstance(stated, str) or stated != "sha256:" + hashlib.sha256(data).hexdigest():
        raise _fail("task sha256 is not the sha256 of the task file's bytes")
    return name, data, stated


def load(path: str | os.PathLike) -> Certificate:
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise _fail(f"file larger than {MAX_FILE_BYTES} bytes")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InvalidCertificate("read", f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from None
    return decode(raw)

"""The digest of a model file, for `compact-proofs-check --model FILE` (is a certificate about it?).

Reads .npz (numpy, no pickle), .safetensors (parsed here: an 8-byte header length, a JSON
header of dtypes, shapes and offsets, then raw little-endian data) and .pt/.pth (torch.save's zip
archive, read without torch: its data.pkl is unpickled by a restricted unpickler that builds only
an OrderedDict and tensors from the archive's raw storages, as torch.load(weights_only=True)
allows; any other class or function refuses the file) TransformerLens state dicts, as
generator/weights_io.py does: buffers (attn.mask, attn.IGNORE) and the description `train` writes
(the .npz array ABOUT_KEY) dropped, float16 and bfloat16 widened to float32 (exact), the head axis
restored. This decides only the --model comparison, never a bound.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from compact_proofs.checker.errors import InvalidCertificate
from compact_proofs.checker.weights import model_digest

BUFFERS = ("attn.mask", "attn.IGNORE")
ABOUT_KEY = "__compact_proofs__"  # generator/weights_io.py: the model's description in an .npz file, not a weight
MAX_BYTES = 1 << 30
MAX_PICKLE_BYTES = 1 << 20  # a state dict's data.pkl is a few kB
SUFFIXES = (".npz", ".safetensors", ".pt", ".pth")
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


class _Storage:
    """A torch storage class named in data.pkl (torch.FloatStorage, ...): only its element type."""

    def __init__(self, dtype: str):
        self.dtype = dtype


TORCH_STORAGES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "bf16",
                  "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "|i1",
                  "ByteStorage": "|u1", "BoolStorage": "|b1"}


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *_ignored) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2: a view of `storage` (checked to lie inside it), copied."""
    try:
        offset, size, stride = int(offset), tuple(int(n) for n in size), tuple(int(n) for n in stride)
    except (TypeError, ValueError):
        raise ModelFileError("malformed tensor in the .pt file") from None
    if len(size) != len(stride) or len(size) > 8 or offset < 0 or any(n < 0 for n in size + stride):
        raise ModelFileError("malformed tensor in the .pt file")
    if 0 in size:
        return np.zeros(size, dtype=storage.dtype)
    if offset + sum((n - 1) * st for n, st in zip(size, stride)) >= storage.size:
        raise ModelFileError("a tensor of the .pt file reaches beyond its storage")
    view = np.lib.stride_tricks.as_strided(storage[offset:], size, tuple(st * storage.itemsize for st in stride), writeable=False)
    return np.array(view)


class _StateDictUnpickler(pickle.Unpickler):
    """Builds what torch.save writes for a state dict, and nothing else."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in TORCH_STORAGES:
            return _Storage(TORCH_STORAGES[name])
        raise ModelFileError(f"the .pt file asks for {module}.{name}, which is never loaded (only tensors and dicts are)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _Storage)
                and isinstance(pid[2], str) and pid[2].isdigit()):
            raise ModelFileError("the .pt file refers to an unknown kind of storage")
        try:
            raw = self.archive.read(f"{self.prefix}data/{pid[2]}")
        except KeyError:
            raise ModelFileError(f"the .pt file lacks its storage {pid[2]}") from None
        if pid[1].dtype == "bf16":  # the top half of a float32
            halves = np.frombuffer(raw, dtype="<u2")
            return (halves.astype("<u4") << 16).view("<f4")
        dtype = np.dtype(pid[1].dtype)
        if len(raw) % dtype.itemsize:
            raise ModelFileError("a storage of the .pt file does not hold whole elements")
        return np.frombuffer(raw, dtype=dtype)


def _torch_zip(path: Path) -> dict[str, np.ndarray]:
    """The state dict of a torch.save zip archive (the format since torch 1.6), without torch."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ModelFileError(f"{path}: not a torch.save zip archive (the legacy format needs torch: use `compact-proofs check`)") from None
    with archive:
        entries = archive.infolist()
        if sum(entry.file_size for entry in entries) > MAX_BYTES:
            raise ModelFileError(f"{path}: its archive holds more than {MAX_BYTES} bytes")
        pickles = [entry for entry in entries if entry.filename.endswith("data.pkl") and entry.filename.count("/") == 1]
        if len(pickles) != 1 or pickles[0].file_size > MAX_PICKLE_BYTES:
            raise ModelFileError(f"{path}: not a torch.save archive of a state dict")
        prefix = pickles[0].filename[: -len("data.pkl")]
        if f"{prefix}byteorder" in archive.namelist() and archive.read(f"{prefix}byteorder").strip() != b"little":
            raise ModelFileError(f"{path}: a big-endian archive")
        try:
            state = _StateDictUnpickler(archive.read(pickles[0]), archive, prefix).load()
        except ModelFileError as exc:
            raise ModelFileError(f"{path}: {exc}") from None
        except Exception as exc:  # any malformed pickle: one line
            raise ModelFileError(f"{path}: cannot read its state dict ({type(exc).__name__})") from None
    for wrapper in ("state_dict", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items()):
        raise ModelFileError(f"{path}: expected a state dict (a mapping of names to tensors)")
    return dict(state)


def read(path: str | os.PathLike) -> dict[str, np.ndarray]:
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory, not a weights file")
    if suffix not in SUFFIXES:
        raise ModelFileError(f"{path}: not a weights file; --model reads {', '.join(SUFFIXES)} files")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ModelFileError(f"{path}: larger than {MAX_BYTES} bytes")
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files if k != ABOUT_KEY}
        if suffix in (".pt", ".pth"):
            return _torch_zip(path)
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

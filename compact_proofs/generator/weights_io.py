"""Reading and writing model weights: TransformerLens-style state dicts in .npz, .pt or .safetensors.

Any of these files may come from other tools (a HookedTransformer's `state_dict()`, a plain dict
of arrays). Buffers that are not parameters (attn.mask, attn.IGNORE) are dropped; every other key
must be a parameter of SEMANTICS.md, or loading fails. float16 and bfloat16 tensors are widened
to float32, which is exact.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from compact_proofs.checker import transformer
from compact_proofs.checker.errors import InvalidCertificate
from compact_proofs.checker.weights import SHAPES, normalise

SUFFIXES = (".npz", ".pt", ".pth", ".safetensors")
BUFFERS = ("attn.mask", "attn.IGNORE")


class WeightsError(ValueError):
    """A weights file that cannot be read as a model of SEMANTICS.md."""


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        import torch

        value = value.detach().cpu()
        if value.dtype in (torch.float16, torch.bfloat16):
            value = value.to(torch.float32)
        return value.numpy()
    array = np.asarray(value)
    return array.astype(np.float32) if array.dtype == np.float16 else array


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise WeightsError(f"{path}: unsupported file type {suffix or '(none)'}; use one of {', '.join(SUFFIXES)}")
    return suffix


def _read(path: Path) -> Mapping:
    suffix = _suffix(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
    except WeightsError:
        raise
    except Exception as exc:
        detail = "it holds pickled objects, which are never loaded" if "pickle" in str(exc) else \
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path}: cannot read weights ({detail})") from None
    for wrapper in ("state_dict", "model_state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path}: expected a state dict (a mapping of names to tensors)")
    return state


def from_state_dict(state: Mapping) -> dict[str, np.ndarray]:
    """Validated weights in TransformerLens shapes (head axis restored), float32 or float64."""
    params = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise WeightsError(f"state dict key {key!r} is not a string")
        if key.endswith(BUFFERS):
            continue
        try:
            params[key] = _to_numpy(value)
        except Exception:
            raise WeightsError(f"{key}: not a numeric tensor") from None
    try:
        normalise(params)
    except InvalidCertificate as v1_error:  # perhaps a format-v2 model: two layers or several heads
        try:
            transformer.from_weights(params)
        except InvalidCertificate as exc:
            raise WeightsError((exc if is_v2(params) else v1_error).reason) from None
        return {k: (v[None] if k.startswith("blocks.") and v.ndim == len(transformer.LAYER[k.rsplit(".", 1)[1]]) - 1 else v)
                for k, v in params.items()}
    return {k: (v[None] if SHAPES[k][0] == "1" and v.ndim == len(SHAPES[k]) - 1 else v) for k, v in params.items()}


def is_v2(weights: Mapping[str, np.ndarray]) -> bool:
    """Whether weights need certificate format v2: a second layer or more than one head."""
    return any(k.startswith("blocks.1.") for k in weights) or any(
        k.endswith("attn.W_Q") and np.ndim(v) == 3 and np.shape(v)[0] > 1 for k, v in weights.items())


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The weights a file holds, checked (WeightsError names the file)."""
    state = _read(Path(path))
    try:
        return from_state_dict(state)
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None


def save(path: str | os.PathLike, weights: Mapping[str, np.ndarray]) -> None:
    """Write weights atomically in the format the suffix names."""
    path = Path(path)
    suffix = _suffix(path)
    arrays = {k: np.ascontiguousarray(v) for k, v in weights.items()}
    if suffix == ".npz":
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        data = buffer.getvalue()
    elif suffix == ".safetensors":
        from safetensors.numpy import save as save_safetensors

        data = save_safetensors(arrays)
    else:
        import torch

        buffer = io.BytesIO()
        torch.save({k: torch.from_numpy(v.copy()) for k, v in arrays.items()}, buffer)
        data = buffer.getvalue()
    atomic_write(path, data)

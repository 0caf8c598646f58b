"""Reading and writing model weights: TransformerLens-style state dicts in .npz, .pt or .safetensors.

Any of these files may come from other tools (a HookedTransformer's `state_dict()`, a plain dict
of arrays). Buffers that are not parameters (attn.mask, attn.IGNORE) are dropped; every other key
must be a parameter of SEMANTICS.md, or loading fails. float16 and bfloat16 tensors are widened
to float32, which is exact.

A file `train` writes also says what the model is (`about`: the task it was trained on, the seed,
the architecture and the recipe), so that `prove` certifies the task the model was trained for.
It travels as JSON in each format's own place for it, where other tools ignore it: .safetensors'
`__metadata__` (key "compact_proofs"), a .pt state dict's `_metadata` (the attribute torch keeps
for module versions; key "compact_proofs"), and in .npz the array ABOUT_KEY (uint8 bytes).
Files without it (from other tools, or older ones) load as before; `about` is then None.
"""

from __future__ import annotations

import io
import json
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
ABOUT_KEY = "__compact_proofs__"  # .npz: the JSON of `about` as uint8 bytes (checker/model_file.py skips it)
ABOUT_FORMAT = "compact-proofs/model"
MAX_ABOUT_BYTES = 1 << 16


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


def _read(path: Path) -> tuple[Mapping, str | None]:
    """The state dict a file holds, and the JSON text of its `about`, if it has one."""
    suffix = _suffix(path)
    if path.is_dir():
        raise WeightsError(f"{path}: is a directory, not a weights file")
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    about = None
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                state = {k: data[k] for k in data.files if k != ABOUT_KEY}
                if ABOUT_KEY in data.files:
                    about = _about_text(data[ABOUT_KEY])
            return state, about
        if suffix == ".safetensors":
            from safetensors import safe_open
            from safetensors.torch import load_file

            with safe_open(str(path), framework="pt") as handle:
                about = (handle.metadata() or {}).get("compact_proofs")
            return load_file(str(path)), about
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
    entry = (getattr(state, "_metadata", None) or {}).get("compact_proofs")
    if isinstance(entry, Mapping):
        about = entry.get("json")
    return state, about


def _about_text(array: np.ndarray) -> str:
    """The JSON text of an .npz file's ABOUT_KEY array ("" if it is not bytes: _parse_about refuses it)."""
    if array.dtype != np.uint8 or array.ndim != 1 or array.size > MAX_ABOUT_BYTES:
        return ""
    return array.tobytes().decode("utf-8", errors="replace")


def _parse_about(text: str | None) -> dict | None:
    """The `about` a file carries, checked: a JSON object of ABOUT_FORMAT naming a known task."""
    if text is None:
        return None
    from compact_proofs.checker.tasks import TASKS

    try:
        about = json.loads(text) if isinstance(text, str) and len(text) <= MAX_ABOUT_BYTES else None
    except ValueError:
        about = None
    if not isinstance(about, dict) or about.get("format") != ABOUT_FORMAT:
        raise WeightsError(f"its compact-proofs description is not a JSON object of format {ABOUT_FORMAT}")
    if "architecture" in about:  # a format-v3 model (SEMANTICS.md, version 3)
        from compact_proofs.checker.v3.tasks import NAMES

        if about.get("task") not in NAMES + (None,) or not isinstance(about["architecture"], dict):
            raise WeightsError(f"its description names the task {about.get('task')!r} (known: {', '.join(NAMES)}) or a "
                               "malformed architecture")
        return about
    if about.get("task") not in TASKS:
        raise WeightsError(f"its description names the task {about.get('task')!r}; known: {', '.join(TASKS)}")
    return about


def _arrays(state: Mapping) -> dict[str, np.ndarray]:
    """The state dict's parameters as numpy arrays (buffers dropped); WeightsError on a key that is
    not a string or a value that is not a numeric tensor."""
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
    return params


def from_state_dict(state: Mapping) -> dict[str, np.ndarray]:
    """Validated weights in TransformerLens shapes (head axis restored), float32 or float64."""
    params = _arrays(state)
    try:
        normalise(params)
    except InvalidCertificate as v1_error:  # perhaps a format-v2 model: two layers or several heads
        try:
            transformer.from_weights(params)
        except InvalidCertificate as exc:
            raise WeightsError((exc if is_v2(params) or transformer.NOT_CERTIFIED in exc.reason else v1_error).reason) from None
        return {k: (v[None] if k.startswith("blocks.") and v.ndim == len(transformer.LAYER[k.rsplit(".", 1)[1]]) - 1 else v)
                for k, v in params.items()}
    return {k: (v[None] if SHAPES[k][0] == "1" and v.ndim == len(SHAPES[k]) - 1 else v) for k, v in params.items()}


def from_state_dict_v3(state: Mapping, architecture: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Validated format-v3 weights (SEMANTICS.md, version 3) in TransformerLens shapes (head axis
    restored), for the given architecture map; buffers dropped. WeightsError names what is wrong."""
    from compact_proofs.checker.v3 import architecture as v3

    params = _arrays(state)
    try:
        arch = v3.architecture(dict(architecture))
        out, _, _ = v3.validated(params, arch)
    except InvalidCertificate as exc:
        raise WeightsError(exc.reason) from None
    return out


def needs_v3(weights: Mapping) -> bool:
    """Whether a state dict has MLP or LayerNorm weights (format v3)."""
    return any({"mlp", "ln1", "ln2", "ln_final"} & set(k.split(".")) for k in weights)


def is_v2(weights: Mapping[str, np.ndarray]) -> bool:
    """Whether weights need certificate format v2: a second layer or more than one head."""
    return any(k.startswith("blocks.1.") for k in weights) or any(
        k.endswith("attn.W_Q") and np.ndim(v) == 3 and np.shape(v)[0] > 1 for k, v in weights.items())


def load_with_about(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict | None]:
    """The weights a file holds, checked, and what the file says about the model (None if nothing:
    a file from another tool or an older version). WeightsError names the file."""
    state, about = _read(Path(path))
    try:
        about = _parse_about(about)
        if about is not None and "architecture" in about:
            return from_state_dict_v3(state, about["architecture"]), about
        return from_state_dict(state), about
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None


def load_state(path: str | os.PathLike) -> dict:
    """A file's state dict as it is (no validation: format v3's is made with the architecture)."""
    return dict(_read(Path(path))[0])


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The weights a file holds, checked (WeightsError names the file)."""
    return load_with_about(path)[0]


def save(path: str | os.PathLike, weights: Mapping[str, np.ndarray], about: Mapping | None = None) -> None:
    """Write weights atomically in the format the suffix names, with `about` (a JSON object: the
    task, seed, architecture and recipe; "format" is set here) where the format keeps metadata."""
    path = Path(path)
    suffix = _suffix(path)
    arrays = {k: np.ascontiguousarray(v) for k, v in weights.items()}
    text = None if about is None else json.dumps({"format": ABOUT_FORMAT, **about}, sort_keys=True)
    if suffix == ".npz":
        buffer = io.BytesIO()
        extra = {} if text is None else {ABOUT_KEY: np.frombuffer(text.encode(), dtype=np.uint8)}
        np.savez(buffer, **arrays, **extra)
        data = buffer.getvalue()
    elif suffix == ".safetensors":
        from safetensors.numpy import save as save_safetensors

        data = save_safetensors(arrays, metadata=None if text is None else {"compact_proofs": text})
    else:
        from collections import OrderedDict

        import torch

        state = OrderedDict((k, torch.from_numpy(v.copy())) for k, v in arrays.items())
        if text is not None:
            state._metadata = OrderedDict(compact_proofs={"json": text})  # what torch keeps beside a state dict
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
    atomic_write(path, data)

"""The model's parameters, validated against SEMANTICS.md and held as exact dyadic matrices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from checker import memo
from checker.certificate import weights_digest
from checker.errors import InvalidCertificate
from checker.exact import Dyadic

MAX_VOCAB, MAX_CTX, MAX_WIDTH = 4096, 1024, 4096
MAX_PATH_WORK = 1 << 31  # d_vocab^2 max(d_model, d_head): the cost of the exact path matrices

# key -> (role, shape in terms of V=d_vocab, N=n_ctx, D=d_model, H=d_head); "1" is the head axis
REQUIRED = {
    "embed.W_E": ("V", "D"),
    "pos_embed.W_pos": ("N", "D"),
    "blocks.0.attn.W_Q": ("1", "D", "H"),
    "blocks.0.attn.W_K": ("1", "D", "H"),
    "blocks.0.attn.W_V": ("1", "D", "H"),
    "blocks.0.attn.W_O": ("1", "H", "D"),
    "unembed.W_U": ("D", "V"),
}
OPTIONAL = {
    "blocks.0.attn.b_Q": ("1", "H"),
    "blocks.0.attn.b_K": ("1", "H"),
    "blocks.0.attn.b_V": ("1", "H"),
    "blocks.0.attn.b_O": ("D",),
    "unembed.b_U": ("V",),
}
SHAPES = {**REQUIRED, **OPTIONAL}


def _error(reason: str) -> InvalidCertificate:
    return InvalidCertificate("weights", reason)


def normalise(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check keys, shapes, dtypes and finiteness; drop the leading head axis. Raises on anything else."""
    missing = sorted(set(REQUIRED) - set(weights))
    unknown = sorted(set(weights) - set(SHAPES))
    if missing or unknown:
        raise _error(f"missing {missing}, unsupported {unknown}" if missing and unknown else
                     f"missing {missing}" if missing else f"unsupported parameter(s) {unknown}")
    dims: dict[str, int] = {}
    out = {}
    for key, array in weights.items():
        array = np.asarray(array)
        if array.dtype not in (np.float32, np.float64):
            raise _error(f"{key} must be float32 or float64, not {array.dtype}")
        pattern = SHAPES[key]
        if array.ndim == len(pattern) - 1 and pattern[0] == "1":
            array = array[None]  # the head axis may be omitted
        if array.ndim != len(pattern):
            raise _error(f"{key} has shape {list(array.shape)}, expected {len(pattern)} axes {list(pattern)}")
        for size, role in zip(array.shape, pattern):
            expected = 1 if role == "1" else dims.setdefault(role, size)
            if size != expected:
                what = "one attention head" if role == "1" else f"{role} = {expected}"
                raise _error(f"{key} has shape {list(array.shape)}, inconsistent with {what}")
        if not np.isfinite(array).all():
            raise _error(f"{key} contains NaN or infinity")
        out[key] = array[0] if pattern[0] == "1" else array
    limits = {"V": MAX_VOCAB, "N": MAX_CTX, "D": MAX_WIDTH, "H": MAX_WIDTH}
    for role, size in dims.items():
        if not 1 <= size <= limits[role]:
            raise _error(f"dimension {role} = {size} outside 1..{limits[role]}")
    if dims["V"] ** 2 * max(dims["D"], dims["H"]) > MAX_PATH_WORK:
        raise _error(f"d_vocab^2 max(d_model, d_head) exceeds {MAX_PATH_WORK}: the path matrices would take too long")
    return out


@dataclass(frozen=True)
class Model:
    """Exact parameters; biases absent from the weights are zero. `key`: the sha256 of the exact
    weights (with the head axis dropped), under which memo.py stores what is derived from them."""

    key: str
    d_vocab: int
    n_ctx: int
    d_model: int
    d_head: int
    W_E: Dyadic
    W_pos: Dyadic
    W_Q: Dyadic
    W_K: Dyadic
    W_V: Dyadic
    W_O: Dyadic
    W_U: Dyadic
    b_Q: Dyadic
    b_K: Dyadic
    b_V: Dyadic
    b_O: Dyadic
    b_U: Dyadic

    @property
    def total_inputs(self) -> int:
        return self.d_vocab**self.n_ctx


def model_from_weights(weights: dict[str, np.ndarray]) -> Model:
    w = normalise(weights)
    key = weights_digest(w)
    return memo.cached(("model", key), lambda: _exact_model(key, w))


def _exact_model(key: str, w: dict[str, np.ndarray]) -> Model:
    V, D = w["embed.W_E"].shape
    N, H = w["pos_embed.W_pos"].shape[0], w["blocks.0.attn.W_Q"].shape[1]
    zeros = {"b_Q": (1, H), "b_K": (1, H), "b_V": (1, H), "b_O": (1, D), "b_U": (1, V)}

    def exact(key: str) -> Dyadic:
        name = key.rsplit(".", 1)[1]
        if key not in w:
            return Dyadic.zeros(*zeros[name])
        array = w[key]
        return Dyadic.from_floats(array.reshape(1, -1) if name in zeros else array)

    return Model(key, V, N, D, H, *(exact(k) for k in SHAPES))

"""The model's parameters, validated against SEMANTICS.md and held as exact dyadic matrices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compact_proofs.checker import memo, transformer
from compact_proofs.checker.certificate import weights_digest
from compact_proofs.checker.errors import InvalidCertificate
from compact_proofs.checker.exact import Dyadic

MAX_VOCAB, MAX_CTX, MAX_WIDTH = 4096, 1024, 4096
MAX_PATH_WORK = 1 << 31  # multiply-adds of the largest product the checker forms from the weights


def largest_product(V: int, N: int, D: int, H: int) -> int:
    """rows x inner x columns of the largest matrix product of the path matrices (paths.py) and
    the subcubic factorisations (at most one more row or column: D + 1, H + 1). Each product is
    checked again, with its integers' bit lengths, when it is formed (exact.MAX_PRODUCT_WORK)."""
    V, N, D, H = V + 1, N + 1, D + 1, H + 1
    return max(V * D * H, N * D * H, H * D * V, V * H * V, V * H * N, N * H * V, V * D * V, D * V * D, H * V * H)

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
    layers = [k for k in unknown if {"mlp", "ln1", "ln2", "ln_final"} & set(k.split("."))]
    if layers:
        raise _error(f"{', '.join(layers[:4])}{' ...' if len(layers) > 4 else ''}: {transformer.NOT_CERTIFIED}")
    beyond = [k for k in unknown if k.startswith("blocks.") and not k.startswith("blocks.0.")]
    if beyond:
        raise _error(f"{', '.join(beyond[:4])}{' ...' if len(beyond) > 4 else ''}: a second layer needs certificate format v2 "
                     "(SEMANTICS.md, version 2); format v1 is one attention-only layer of one head")
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
    if largest_product(dims["V"], dims["N"], dims["D"], dims["H"]) > MAX_PATH_WORK:
        raise _error(f"the path matrices need a product of more than {MAX_PATH_WORK} multiply-adds: too large to check")
    return out


@dataclass(frozen=True)
class Model:
    """Exact parameters; biases absent from the weights are zero. `key`: the weights digest
    (`key_of`), under which memo.py stores what is derived from them."""

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


def key_of(normalised: dict[str, np.ndarray]) -> str:
    """The weights digest (certificate.weights_digest) of normalised weights, taken in
    TransformerLens shapes (head axis present), as training and weights files hold them."""
    return weights_digest({k: array[None] if SHAPES[k][0] == "1" else array for k, array in normalised.items()})


def model_digest(weights: dict[str, np.ndarray]) -> str:
    """The digest that names a model: of the validated weights in TransformerLens shapes (key_of).
    The same in a certificate's verdict, a weights file, a sweep row and the models manifest.
    A format-v2 model (two layers, several heads) is named the same way (transformer.py)."""
    try:
        return key_of(normalise(weights))
    except InvalidCertificate as v1_error:
        try:
            return transformer.from_weights(weights).key
        except InvalidCertificate:
            if any({"mlp", "ln1", "ln2", "ln_final"} & set(k.split(".")) for k in weights):
                return _v3_digest(weights)
            raise v1_error from None


def _v3_digest(weights: dict[str, np.ndarray]) -> str:
    """A format-v3 model's digest (v3/architecture.py's key): the weights with the head axis of
    W_Q, W_K, W_V, W_O and b_Q, b_K, b_V restored where it is omitted (the architecture map, which
    a weights file may not hold, is not needed for it)."""
    from compact_proofs.checker.v3.architecture import ATTN

    def restored(key: str, array: np.ndarray) -> np.ndarray:
        name = key.rsplit(".", 1)[-1]
        head = ".attn." in key and name in ATTN and ATTN[name][0] == "H" and np.ndim(array) == len(ATTN[name]) - 1
        return np.asarray(array)[None] if head else np.asarray(array)

    return weights_digest({k: restored(k, v) for k, v in weights.items()})


def model_from_weights(weights: dict[str, np.ndarray]) -> Model:
    w = normalise(weights)
    key = key_of(w)
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

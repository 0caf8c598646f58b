"""Format v3's model (SEMANTICS.md, version 3), validated and held as data.

The certificate's `architecture` map says what the weights alone cannot (TransformerLens keeps it
in the model's config): {"activation": relu | gelu | gelu_new | none, "normalization": none | LN |
LNPre, "eps": a decimal, present iff normalization is not none}. Weights use TransformerLens names:

    embed.W_E [V, D], pos_embed.W_pos [N, D], unembed.W_U [D, V_out], unembed.b_U [V_out] (optional)
    blocks.{l}.attn.W_Q, W_K, W_V [H, D, E], W_O [H, E, D]; b_Q, b_K, b_V [H, E], b_O [D] (optional)
    blocks.{l}.mlp.W_in [D, M], W_out [M, D]; b_in [M], b_out [D] (optional)   iff activation != none
    blocks.{l}.ln1.w, .b, blocks.{l}.ln2.w, .b (with an MLP), ln_final.w, .b [D]   iff normalization == LN

for l = 0 .. L-1, 1 <= L <= 4 (every block has the same H, E and, with an MLP, M). A missing
optional bias is zero. Nothing else is accepted: an unknown key, a missing one, a wrong shape or
dtype, NaN or infinity make the certificate invalid, with the key named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from compact_proofs.checker.certificate import weights_digest
from compact_proofs.checker.errors import InvalidCertificate
from compact_proofs.checker.transformer import conformed

ACTIVATIONS = ("relu", "gelu", "gelu_new", "none")
NORMALIZATIONS = ("none", "LN", "LNPre")
MAX_LAYERS = 4
LIMITS = {"V": 1 << 17, "O": 1 << 17, "N": 1024, "D": 4096, "E": 4096, "H": 64, "M": 16384}
ROLES = {"V": "d_vocab", "O": "d_vocab_out", "N": "n_ctx", "D": "d_model", "E": "d_head", "H": "the number of heads",
         "M": "d_mlp"}
TOP = {"embed.W_E": "VD", "pos_embed.W_pos": "ND", "unembed.W_U": "DO", "unembed.b_U": "O"}
ATTN = {"W_Q": "HDE", "W_K": "HDE", "W_V": "HDE", "W_O": "HED", "b_Q": "HE", "b_K": "HE", "b_V": "HE", "b_O": "D"}
MLP = {"W_in": "DM", "W_out": "MD", "b_in": "M", "b_out": "D"}
LN = {"w": "D", "b": "D"}
OPTIONAL = {"unembed.b_U", "b_Q", "b_K", "b_V", "b_O", "b_in", "b_out"}
_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?\Z")


def _error(reason: str) -> InvalidCertificate:
    return InvalidCertificate("weights", reason)


@dataclass(frozen=True)
class Architecture:
    activation: str
    normalization: str
    eps: Fraction | None  # the exact value of the decimal the certificate states
    eps_text: str = ""  # that decimal, as written

    def as_map(self) -> dict[str, str]:
        out = {"activation": self.activation, "normalization": self.normalization}
        return out | ({"eps": self.eps_text} if self.eps is not None else {})


def architecture(given: dict[str, str]) -> Architecture:
    """The certificate's `architecture` map, checked: known names, eps iff a normalization."""
    if not {"activation", "normalization"} <= set(given) <= {"activation", "normalization", "eps"}:
        raise InvalidCertificate("architecture", f"needs activation and normalization (and eps with a normalization), "
                                                 f"got {sorted(given)}")
    activation, normalization = given["activation"], given["normalization"]
    if activation not in ACTIVATIONS:
        raise InvalidCertificate("architecture", f"activation {activation!r} is outside the semantics ({', '.join(ACTIVATIONS)})")
    if normalization not in NORMALIZATIONS:
        raise InvalidCertificate("architecture", f"normalization {normalization!r} is outside the semantics "
                                                 f"({', '.join(NORMALIZATIONS)})")
    if ("eps" in given) != (normalization != "none"):
        raise InvalidCertificate("architecture", "eps is stated exactly when there is a normalization")
    eps = None
    if "eps" in given:
        match = _DECIMAL.match(given["eps"])
        if match is None:
            raise InvalidCertificate("architecture", f"eps {given['eps']!r} is not a decimal such as 1e-05")
        eps = Fraction(given["eps"])
        if not 0 < eps <= 1:
            raise InvalidCertificate("architecture", f"eps {given['eps']} must lie in (0, 1]")
    return Architecture(activation, normalization, eps, given.get("eps", ""))


@dataclass(frozen=True)
class Block:
    """One block's parameters (float64 arrays, exact): attn[name] for ATTN's names (head axis
    first), mlp[name] for MLP's (empty without an MLP), ln1 and ln2 as (w, b) or None."""

    attn: dict[str, np.ndarray]
    mlp: dict[str, np.ndarray]
    ln1: tuple[np.ndarray, np.ndarray] | None
    ln2: tuple[np.ndarray, np.ndarray] | None


@dataclass(frozen=True)
class Model3:
    key: str  # the weights digest (certificate.weights_digest), as for every format
    arch: Architecture
    d_vocab: int
    d_vocab_out: int
    n_ctx: int
    d_model: int
    d_head: int
    n_heads: int
    d_mlp: int  # 0 without an MLP
    W_E: np.ndarray
    W_pos: np.ndarray
    W_U: np.ndarray
    b_U: np.ndarray
    blocks: tuple[Block, ...]
    ln_final: tuple[np.ndarray, np.ndarray] | None

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @property
    def has_mlp(self) -> bool:
        return self.arch.activation != "none"

    @property
    def normalized(self) -> bool:
        return self.arch.normalization != "none"


def _expected(weights: dict, arch: Architecture) -> tuple[dict[str, str], list[str]]:
    """The keys (and their axes) the weights must have, and the layer ids found."""
    layer_ids = sorted({k.split(".")[1] for k in weights if k.startswith("blocks.")}, key=lambda s: (len(s), s))
    if layer_ids not in ([str(i) for i in range(n)] for n in range(1, MAX_LAYERS + 1)):
        raise _error(f"blocks {layer_ids}: format v3 takes blocks.0 to blocks.{{L-1}}, 1 <= L <= {MAX_LAYERS}")
    shapes = dict(TOP)
    for l in layer_ids:
        shapes |= {f"blocks.{l}.attn.{n}": axes for n, axes in ATTN.items()}
        if arch.activation != "none":
            shapes |= {f"blocks.{l}.mlp.{n}": axes for n, axes in MLP.items()}
        if arch.normalization == "LN":
            shapes |= {f"blocks.{l}.ln1.{n}": axes for n, axes in LN.items()}
            if arch.activation != "none":
                shapes |= {f"blocks.{l}.ln2.{n}": axes for n, axes in LN.items()}
    if arch.normalization == "LN":
        shapes |= {f"ln_final.{n}": axes for n, axes in LN.items()}
    return shapes, layer_ids


def _why_unknown(key: str, arch: Architecture) -> str:
    parts = set(key.split("."))
    if parts & {"mlp", "ln2"} and arch.activation == "none":
        return f"{key}: MLP weights (or its LayerNorm) with activation none"
    if parts & {"ln1", "ln2", "ln_final"} and arch.normalization != "LN":
        return f"{key}: LayerNorm weights with normalization {arch.normalization} (LNPre and none have none)"
    return f"{key}: not a parameter of format v3"


def validated(weights: dict[str, np.ndarray], arch: Architecture) -> tuple[dict[str, np.ndarray], dict[str, int], list[str]]:
    """Names, shapes, dtypes and finiteness checked (a head axis may be omitted when H = 1):
    (the arrays, head axis restored; the dimensions by role; the layer ids). Nothing is converted."""
    shapes, layer_ids = _expected(weights, arch)
    unknown = sorted(set(weights) - set(shapes))
    if unknown:
        unknown.sort(key=lambda k: "mlp" not in k.split("."))  # the most telling first
        raise _error(_why_unknown(unknown[0], arch) + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
    missing = sorted(k for k in shapes if k not in weights and k.rsplit(".", 1)[1] not in OPTIONAL and k not in OPTIONAL)
    if missing:
        raise _error(f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}")
    out, dims = conformed({key: weights[key] for key in sorted(weights)}, shapes, ROLES)
    for role, size in dims.items():
        if not 1 <= size <= LIMITS[role]:
            raise _error(f"{ROLES[role]} = {size} outside 1..{LIMITS[role]}")
    return out, dims, layer_ids


def dimensions(weights: dict[str, np.ndarray], arch: Architecture) -> dict[str, int]:
    """{V, O, N, D, E, H, M, L} of validated weights (M = 0 without an MLP), nothing converted."""
    _, dims, layer_ids = validated(weights, arch)
    return {"M": 0, **dims, "L": len(layer_ids)}


def from_weights(weights: dict[str, np.ndarray], arch: Architecture) -> Model3:
    """Validate, and hold the weights exactly as float64 arrays (absent biases zero)."""
    out, dims, layer_ids = validated(weights, arch)
    size = {"M": 0, **dims}
    f64 = lambda key, axes: out[key].astype(np.float64) if key in out else np.zeros([size[a] for a in axes])  # noqa: E731
    ln = lambda prefix: (f64(f"{prefix}.w", "D"), f64(f"{prefix}.b", "D")) if arch.normalization == "LN" else None  # noqa: E731
    blocks = []
    for l in layer_ids:
        attn = {n: f64(f"blocks.{l}.attn.{n}", axes) for n, axes in ATTN.items()}
        mlp = {n: f64(f"blocks.{l}.mlp.{n}", axes) for n, axes in MLP.items()} if arch.activation != "none" else {}
        blocks.append(Block(attn, mlp, ln(f"blocks.{l}.ln1"), ln(f"blocks.{l}.ln2") if mlp else None))
    return Model3(weights_digest(out), arch, dims["V"], dims["O"], dims["N"], dims["D"], dims["E"], dims["H"], size["M"],
                  f64("embed.W_E", "VD"), f64("pos_embed.W_pos", "ND"), f64("unembed.W_U", "DO"), f64("unembed.b_U", "O"),
                  tuple(blocks), ln("ln_final"))

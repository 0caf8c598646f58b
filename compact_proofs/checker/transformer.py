"""Format v2's model (SEMANTICS.md, version 2): 1 or 2 attention-only layers of H heads each,
causal mask, no LayerNorm, no MLP, read at the last position. Weights are validated here, and the
logits of every input sharing a prefix are enclosed in balls (ball.py) in one vectorised pass.

Causality makes a position's residual stream a function of the tokens up to it, so each layer's
queries, keys and values at position j are computed once per distinct prefix x_0..x_j (for the
first layer: once per (token, position)), not once per input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compact_proofs.checker.ball import Ball, contract
from compact_proofs.checker.certificate import weights_digest
from compact_proofs.checker.errors import InvalidCertificate
from compact_proofs.checker.interval import rsqrt

MAX_LAYERS = 2
MAX_HEADS = 64
MAX_VOCAB, MAX_CTX = 256, 64
MAX_WIDTH = 4096  # d_model and d_head, as in format v1 (weights.MAX_WIDTH)
TOP = {"embed.W_E": ("V", "D"), "pos_embed.W_pos": ("N", "D"), "unembed.W_U": ("D", "V"), "unembed.b_U": ("V",)}
LAYER = {"W_Q": ("H", "D", "E"), "W_K": ("H", "D", "E"), "W_V": ("H", "D", "E"), "W_O": ("H", "E", "D"),
         "b_Q": ("H", "E"), "b_K": ("H", "E"), "b_V": ("H", "E"), "b_O": ("D",)}
OPTIONAL = {"unembed.b_U", "b_Q", "b_K", "b_V", "b_O"}
NOT_CERTIFIED = ("LayerNorm and MLP weights are outside what is certified: attention-only transformers of one or two layers "
                 "(SEMANTICS.md; two layers or several heads in certificate format v2), no LayerNorm, no MLP")
ROLES = {"V": "d_vocab", "N": "n_ctx", "D": "d_model", "E": "d_head", "H": "the number of heads"}


@dataclass(frozen=True)
class Transformer:
    """Exact parameters as float64 arrays (every float32 or float64 is an exact dyadic); absent
    biases are zero. layers[l][name] for the LAYER names, head axis first."""

    key: str
    d_vocab: int
    n_ctx: int
    d_model: int
    d_head: int
    n_heads: int
    W_E: np.ndarray
    W_pos: np.ndarray
    W_U: np.ndarray
    b_U: np.ndarray
    layers: tuple[dict[str, np.ndarray], ...]

    @property
    def n_layers(self) -> int:
        return len(self.layers)


def _error(reason: str) -> InvalidCertificate:
    return InvalidCertificate("weights", reason)


def conformed(weights: dict[str, np.ndarray], shapes: dict[str, str], roles: dict[str, str]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Each array float32 or float64, finite, with the axes its shape pattern names (a head axis "H"
    may be omitted), every role one size throughout: (the arrays, head axis restored; the sizes by
    role). Raises InvalidCertificate naming the first array that is not."""
    dims: dict[str, int] = {}
    out: dict[str, np.ndarray] = {}
    for key, array in weights.items():
        array, pattern = np.asarray(array), shapes[key]
        if array.dtype not in (np.float32, np.float64):
            raise _error(f"{key} must be float32 or float64, not {array.dtype}")
        if pattern[0] == "H" and array.ndim == len(pattern) - 1:
            array = array[None]  # one head, its axis omitted
        if array.ndim != len(pattern):
            raise _error(f"{key} has shape {list(array.shape)}, expected {len(pattern)} axes {list(pattern)}")
        for size, role in zip(array.shape, pattern):
            if size != dims.setdefault(role, size):
                raise _error(f"{key} has shape {list(array.shape)}, inconsistent with {roles[role]} = {dims[role]}")
        if not np.isfinite(array).all():
            raise _error(f"{key} contains NaN or infinity")
        out[key] = array
    return out, dims


def _validated(weights: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, int], list[str]]:
    """Names, shapes, dtypes and finiteness checked (a head axis may be omitted when H = 1):
    (the arrays, head axis restored; the dimensions by role; the layer ids). Nothing is converted."""
    layer_ids = sorted({k.split(".")[1] for k in weights if k.startswith("blocks.")})
    beyond = [k for k in weights if {"mlp", "ln1", "ln2", "ln_final"} & set(k.split("."))]
    if beyond:
        raise _error(f"{', '.join(sorted(beyond)[:4])}: {NOT_CERTIFIED}")
    if layer_ids not in ([str(i) for i in range(n)] for n in range(1, MAX_LAYERS + 1)):
        raise _error(f"layers {layer_ids}: format v2 takes blocks.0 and optionally blocks.1")
    shapes = dict(TOP) | {f"blocks.{l}.attn.{name}": shape for l in layer_ids for name, shape in LAYER.items()}
    missing = sorted(k for k in shapes if k not in weights and not {k, k.rsplit(".", 1)[1]} & OPTIONAL)
    unknown = sorted(set(weights) - set(shapes))
    if missing or unknown:
        raise _error(f"missing {missing}, unsupported {unknown}")
    out, dims = conformed(weights, shapes, ROLES)
    limits = {"V": MAX_VOCAB, "N": MAX_CTX, "D": MAX_WIDTH, "E": MAX_WIDTH, "H": MAX_HEADS}
    for role, size in dims.items():
        if not 1 <= size <= limits[role]:
            raise _error(f"dimension {role} = {size} outside 1..{limits[role]}")
    return out, dims, layer_ids


def dimensions(weights: dict[str, np.ndarray]) -> dict[str, int]:
    """The validated weights' dimensions, {V, N, D, E, H, L} (d_vocab, n_ctx, d_model, d_head,
    heads, layers), without converting anything: what the work and memory are planned from."""
    _, dims, layer_ids = _validated(weights)
    return {**dims, "L": len(layer_ids)}


def from_weights(weights: dict[str, np.ndarray]) -> Transformer:
    """Validate names, shapes, dtypes and finiteness (a head axis may be omitted when H = 1), and
    hold the weights exactly as float64 arrays."""
    out, dims, layer_ids = _validated(weights)
    V, N, D, E, H = (dims[r] for r in "VNDEH")
    f64 = lambda key, shape: out[key].astype(np.float64) if key in out else np.zeros(shape)  # noqa: E731
    layers = tuple({name: f64(f"blocks.{l}.attn.{name}", [{"H": H, "D": D, "E": E}[r] for r in pattern])
                    for name, pattern in LAYER.items()} for l in layer_ids)
    return Transformer(weights_digest(out), V, N, D, E, H, f64("embed.W_E", (V, D)), f64("pos_embed.W_pos", (N, D)),
                       f64("unembed.W_U", (D, V)), f64("unembed.b_U", (V,)), layers)


def _mix(weights: Ball, values: Ball) -> Ball:
    """sum_j w_j v_j / sum_j w_j for rows c: weights [c, j] (positive), values [c, j, d]."""
    total = contract(weights, np.ones(weights.shape[1]), "cj,j->c")
    return contract(contract(values, weights, "cjd,cj->cd"), total.reciprocal(), "cd,c->cd")  # the large operand first


def _softmax_weights(scores: Ball) -> Ball:
    """e^(s - t) for scores [c, j], t the largest midpoint of the row (any float t: the softmax does
    not change; this one keeps the largest weight near 1, so none of a row's weights all underflow)."""
    shift = np.nan_to_num(scores.mid.max(axis=1, keepdims=True), posinf=0.0, neginf=0.0)
    return (scores - shift).exp()


def _gather(ball: Ball, *index) -> Ball:
    return Ball(ball.mid[index], ball.rad[index])


@dataclass(frozen=True)
class FirstLayer:
    """The first layer as a function of (token, position) pairs: r0 [V, N, D] and, per head, the
    scaled scores [V (query token), N, V (key token), N] and the values through W_O [V, N, D];
    scale encloses 1/sqrt(d_head)."""

    r0: Ball
    heads: tuple[tuple[Ball, Ball], ...]
    scale: Ball


def first_layer(model: Transformer) -> FirstLayer:
    first, interval = model.layers[0], rsqrt(model.d_head)
    scale = Ball.of_interval(interval.lo, interval.hi)
    r0 = Ball(model.W_E[:, None, :]) + model.W_pos[None, :, :]
    heads = []
    for h in range(model.n_heads):
        q, k = (contract(r0, first[f"W_{x}"][h], "tnd,de->tne") + first[f"b_{x}"][h] for x in "QK")
        vo = contract(contract(r0, first["W_V"][h], "tnd,de->tne") + first["b_V"][h], first["W_O"][h], "tne,ed->tnd")
        heads.append((contract(contract(q, k, "tie,uje->tiuj"), scale, "tiuj,->tiuj"), vo))
    return FirstLayer(r0, tuple(heads), scale)


def enclose_logits(model: Transformer, prefix: tuple[int, ...], table: FirstLayer | None = None) -> Ball:
    """Balls [V^r, d_vocab] holding the logits at the last position of every input that starts
    with `prefix` (r = n_ctx - len(prefix) free positions, in lexicographic order). `table`:
    first_layer(model), computed once for all prefixes."""
    V, N, H = model.d_vocab, model.n_ctx, model.n_heads
    p = len(prefix)
    # level j: the distinct prefixes x_0..x_j of these inputs, lexicographic; tokens[j] [count_j, j + 1]
    tokens = []
    for j in range(N):
        free = max(j + 1 - p, 0)
        grid = np.indices((V,) * free).reshape(free, -1).T if free else np.zeros((1, 0), dtype=np.int64)
        fixed = np.broadcast_to(np.array(prefix[: min(j + 1, p)], dtype=np.int64), (len(grid), min(j + 1, p)))
        tokens.append(np.concatenate([fixed, grid], axis=1))
    table = table or first_layer(model)
    first, r0, scale = model.layers[0], table.r0, table.scale
    residual = {}
    for j in (range(N) if model.n_layers > 1 else [N - 1]):
        x, before = tokens[j], np.arange(j + 1)
        out = _gather(r0, x[:, j], j) + first["b_O"]
        for scores, vo in table.heads:  # the input's own keys only (the mask: positions <= j)
            out = out + _mix(_softmax_weights(_gather(scores, x[:, j : j + 1], j, x, before)), _gather(vo, x, before))
        residual[j] = out
    # the second layer, at the last position: inputs are in lexicographic order, so those sharing
    # a level-i prefix form consecutive blocks, and each block meets that prefix's key and value
    count = len(tokens[N - 1])
    for w in model.layers[1:]:
        out = residual[N - 1] + w["b_O"]
        for h in range(H):
            q = contract(residual[N - 1], w["W_Q"][h], "cd,de->ce") + w["b_Q"][h]
            keys = [contract(residual[i], w["W_K"][h], "cd,de->ce") + w["b_K"][h] for i in range(N)]
            scores = _stack([contract(q.reshape(len(k.mid), count // len(k.mid), -1), k, "rbe,re->rb").reshape(count)
                             for k in keys])  # [c, i]
            weights = _softmax_weights(contract(scores, scale, "cj,->cj"))
            mixed = None
            for i in range(N):
                vo = contract(contract(residual[i], w["W_V"][h], "cd,de->ce") + w["b_V"][h], w["W_O"][h], "ce,ed->cd")
                rows = len(vo.mid)
                term = contract(weights[:, i].reshape(rows, count // rows), vo, "rb,rd->rbd").reshape(count, -1)
                mixed = term if mixed is None else mixed + term
            total = contract(weights, np.ones(N), "cj,j->c")
            out = out + contract(mixed, total.reciprocal(), "cd,c->cd")
        residual[N - 1] = out
    return contract(residual[N - 1], model.W_U, "cd,dv->cv") + model.b_U


def _stack(balls: list[Ball]) -> Ball:
    return Ball(np.stack([b.mid for b in balls], axis=1), np.stack([b.rad for b in balls], axis=1))

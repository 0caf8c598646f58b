"""Format v2 on the second path: the weights of SEMANTICS.md version 2 (1-2 attention-only
layers, H heads, causal mask), its tasks, and brute force in fixed-point interval arithmetic.

Written independently of the fast path (checker/transformer.py, ball.py, brute_force_v2.py): no
floats after decoding. A quantity is an interval [lo, hi] / 2^bits with integer endpoints; every
operation rounds outward (products are summed exactly and rounded once), exp is arith's series
enclosure and 1/sqrt(d_head) arith's integer square root. An input counts as correct when every
margin logit[label] - logit[o] has a positive lower end; it is wrong when one margin's upper end
is at most zero or when the label's and o's unembedding columns and biases are identical (a tie).
What 64 bits leave open is recomputed at 256, 1024 and 4096 bits; what stays open is not counted.
"""

from __future__ import annotations

from fractions import Fraction
from math import prod

from compact_proofs.checker.pure import tensors
from compact_proofs.checker.pure.arith import exp_bounds, rsqrt_bounds
from compact_proofs.checker.pure.errors import Malformed

PRECISIONS = (64, 256, 1024, 4096)  # absolute precision: huge weights need the last step
MAX_INPUTS = 1 << 20  # the same cap as the pure brute force of format v1
LIMITS = {"V": 256, "N": 64, "D": 4096, "E": 4096, "H": 64}  # schema/certificate-v2.md
TOP = {"embed.W_E": "VD", "pos_embed.W_pos": "ND", "unembed.W_U": "DV", "unembed.b_U": "V"}
LAYER = {"W_Q": "HDE", "W_K": "HDE", "W_V": "HDE", "W_O": "HED", "b_Q": "HE", "b_K": "HE", "b_V": "HE", "b_O": "D"}
OPTIONAL = {"b_U", "b_Q", "b_K", "b_V", "b_O"}


# ---------------------------------------------------------------------------------------------
# tasks: (domain size, label or None outside the domain)


def _induction_label(x: tuple[int, ...]) -> int | None:
    earlier = [p for p in range(len(x) - 1) if x[p] == x[-1]]
    return x[earlier[-1] + 1] if earlier else None


TASKS = {
    "max": (lambda V, N: V**N, max),
    "min": (lambda V, N: V**N, min),
    "induction": (lambda V, N: V**N - V * (V - 1) ** (N - 1), _induction_label),
}


# ---------------------------------------------------------------------------------------------
# the weights


def _shapes(weights: dict) -> tuple[dict, dict[str, int], list[str]]:
    """Keys, dtypes, shapes and limits from the tensors' headers (their data were checked when the
    file was parsed): ({key: (shape with the head axis, count)}, dimensions, layer ids)."""
    beyond = [k for k in weights if {"mlp", "ln1", "ln2", "ln_final"} & set(k.split("."))]
    if beyond:
        raise Malformed("weights: LayerNorm and MLP weights are outside format v2")
    layers = sorted({k.split(".")[1] for k in weights if k.startswith("blocks.")})
    if layers not in (["0"], ["0", "1"]):
        raise Malformed("weights: format v2 takes blocks.0 and optionally blocks.1")
    shapes = dict(TOP) | {f"blocks.{l}.attn.{name}": axes for l in layers for name, axes in LAYER.items()}
    if set(weights) - set(shapes) or any(k not in weights and k.rsplit(".", 1)[1] not in OPTIONAL for k in shapes):
        raise Malformed("weights: missing or unsupported keys")
    dims: dict[str, int] = {}
    found = {}
    for key, value in weights.items():
        _, shape, count = tensors.header(value, key)
        axes = shapes[key]
        if value["dtype"] not in ("<f4", "<f8"):
            raise Malformed(f"{key} must be float32 or float64")
        if axes[0] == "H" and len(shape) == len(axes) - 1:
            shape = (1,) + shape
        if len(shape) != len(axes) or any(size != dims.setdefault(axis, size) for size, axis in zip(shape, axes)):
            raise Malformed(f"{key} has the wrong or an inconsistent shape")
        found[key] = (shape, count)
    if any(not 1 <= dims[axis] <= limit for axis, limit in LIMITS.items()):
        raise Malformed("weights: a dimension is outside the format's limits")
    return found, dims, layers


def dimensions(weights: dict) -> dict[str, int]:
    """{V, N, D, E, H, L} and "elements" (of the weights, absent biases included), validated by
    schema/certificate-v2.md from the headers alone: nothing is converted."""
    _, dims, layers = _shapes(weights)
    size = {axis: dims[axis] for axis in LIMITS}
    elements = sum(prod(size[a] for a in axes) for axes in TOP.values())
    elements += len(layers) * sum(prod(size[a] for a in axes) for axes in LAYER.values())
    return {**size, "L": len(layers), "elements": elements}


def memory_bytes(dims: dict[str, int], per_number: int) -> int:
    """What the brute force holds at once, planned: the weights as Fractions and, at one precision,
    as intervals (two integers each, twice while the columns are laid out: 5 numbers a weight,
    counted as 6); the walk's columns (per position, layer and head a key and a value, and a
    residual stream); and the inputs left open (at most every input, a tuple each)."""
    V, N, D, E, H, L = (dims[r] for r in "VNDEHL")
    numbers = 6 * dims["elements"] + 2 * N * (L * H * (E + D) + 2 * D) + 2 * V
    return numbers * per_number + V**N * 8 * (N + 8)


def model(weights: dict) -> dict:
    """Dimensions and exact weights (nested lists of Fractions, head axis first; absent biases
    zero), validated by schema/certificate-v2.md."""
    found, dims, layers = _shapes(weights)
    size = {axis: dims[axis] for axis in LIMITS}

    def exact(key: str, axes: str):
        if key in found:
            return tensors.nest([Fraction(x) for x in tensors.decode(weights[key], key)[0]], found[key][0])
        return tensors.nest([Fraction(0)] * prod(size[a] for a in axes), tuple(size[a] for a in axes))

    return {"V": size["V"], "N": size["N"], "D": size["D"], "E": size["E"], "H": size["H"],
            **{key.split(".")[1]: exact(key, axes) for key, axes in TOP.items()},
            "layers": [{name: exact(f"blocks.{l}.attn.{name}", axes) for name, axes in LAYER.items()} for l in layers]}


def weights_digest(weights: dict) -> str:
    """The model digest (the fast path's certificate.weights_digest)."""
    def without_head(key: str) -> int:
        axes = TOP.get(key) or LAYER[key.rsplit(".", 1)[1]]
        return axes[0] == "H" and len(axes) - 1
    return tensors.digest(weights, without_head)


# ---------------------------------------------------------------------------------------------
# fixed-point intervals: (lo, hi) stands for [lo / 2^bits, hi / 2^bits]


def _ceil_shift(x: int, bits: int) -> int:
    return -((-x) >> bits)


def _point(x: Fraction, bits: int) -> tuple[int, int]:
    """The narrowest fixed-point interval containing x."""
    scaled = x.numerator << bits
    return scaled // x.denominator, -((-scaled) // x.denominator)


def _dot(a: list, b: list, bits: int) -> tuple[int, int]:
    """An interval containing sum_i a_i b_i: exact products summed, rounded outward once."""
    lo = hi = 0
    for (a0, a1), (b0, b1) in zip(a, b):
        p = (a0 * b0, a0 * b1, a1 * b0, a1 * b1)
        lo, hi = lo + min(p), hi + max(p)
    return lo >> bits, _ceil_shift(hi, bits)


def _add(*vectors: list) -> list:
    return [(sum(x[0] for x in column), sum(x[1] for x in column)) for column in zip(*vectors)]


def _vm(v: list, columns: list, bits: int) -> list:
    """v times a matrix given by its columns."""
    return [_dot(v, column, bits) for column in columns]


def _softmax(scores: list, bits: int) -> list:
    """Intervals containing e^(s_j) / sum_k e^(s_k), each within [0, 1]: exponents shifted by the
    largest upper end t (the softmax does not change), so every exp argument is at most 0."""
    t = max(hi for _, hi in scores)
    weights = []
    for lo, hi in scores:
        e_lo, _ = exp_bounds(Fraction(lo - t, 1 << bits), bits)
        _, e_hi = exp_bounds(Fraction(hi - t, 1 << bits), bits)
        weights.append((_point(e_lo, bits)[0], _point(e_hi, bits)[1]))
    total_lo, total_hi = sum(w[0] for w in weights), sum(w[1] for w in weights)
    one = 1 << bits
    return [(max(0, (lo << bits) // total_hi) if total_hi > 0 else 0,
             min(one, -((-hi << bits) // total_lo)) if total_lo > 0 else one) for lo, hi in weights]


class Enclosure:
    """The model's weights as fixed-point intervals at one precision, and the forward pass."""

    def __init__(self, w: dict, bits: int):
        self.w, self.bits = w, bits
        iv = lambda matrix: [[_point(x, bits) for x in row] for row in matrix]  # noqa: E731
        columns = lambda matrix: [list(column) for column in zip(*iv(matrix))]  # noqa: E731
        self.W_E, self.W_pos = iv(w["W_E"]), iv(w["W_pos"])
        self.W_U, self.b_U = columns(w["W_U"]), [_point(x, bits) for x in w["b_U"]]
        self.layers = [{**{n: [columns(m) for m in layer[n]] for n in ("W_Q", "W_K", "W_V", "W_O")},
                        **{n: iv(layer[n]) for n in ("b_Q", "b_K", "b_V")}, "b_O": [_point(x, bits) for x in layer["b_O"]]}
                       for layer in w["layers"]]
        r_lo, r_hi = rsqrt_bounds(w["E"], bits)
        self.scale = (_point(r_lo, bits)[0], _point(r_hi, bits)[1])

    def position(self, earlier: list, token: int) -> tuple[list, list]:
        """The next position's column: per layer and head its key and value (through W_O), and
        its last residual stream; `earlier` holds the columns of the positions before it."""
        bits, i = self.bits, len(earlier)
        residual = _add(self.W_E[token], self.W_pos[i])
        layers = []
        for l, layer in enumerate(self.layers):
            out, heads = [residual, layer["b_O"]], []
            for h in range(self.w["H"]):
                query, key = (_add(_vm(residual, layer[f"W_{x}"][h], bits), layer[f"b_{x}"][h]) for x in "QK")
                value = _vm(_add(_vm(residual, layer["W_V"][h], bits), layer["b_V"][h]), layer["W_O"][h], bits)
                heads.append((key, value))
                keys = [column[0][l][h][0] for column in earlier] + [key]
                values = [column[0][l][h][1] for column in earlier] + [value]
                scores = [_dot([_dot(query, k, bits)], [self.scale], bits) for k in keys]
                attention = _softmax(scores, bits)
                out.append([_dot(attention, [v[d] for v in values], bits) for d in range(self.w["D"])])
            layers.append(heads)
            residual = _add(*out)
        return layers, residual

    def logits(self, residual: list) -> list:
        return _add(_vm(residual, self.W_U, self.bits), self.b_U)

    def walk(self, prefix: tuple = (), earlier: tuple = ()):
        """(x, logits) for every x in {0..V-1}^N, in lexicographic order, sharing prefixes."""
        for token in range(self.w["V"]):
            column = self.position(list(earlier), token)
            if len(prefix) + 1 == self.w["N"]:
                yield prefix + (token,), self.logits(column[1])
            else:
                yield from self.walk(prefix + (token,), earlier + (column,))


def _decide(logits: list, label: int, tied: set) -> int | None:
    """1 correct, -1 wrong, None open."""
    margins = [(logits[label][0] - hi, logits[label][1] - lo) for o, (lo, hi) in enumerate(logits) if o != label]
    if all(lo > 0 for lo, _ in margins):
        return 1
    if any(hi <= 0 for _, hi in margins) or tied:
        return -1
    return None


def brute_force(w: dict, task: str, progress=lambda stage, done, total: None) -> tuple[int, dict]:
    """The count of domain inputs certainly correct, and how many stayed undecided."""
    V, N = w["V"], w["N"]
    label_of = TASKS[task][1]
    same = {(a, b) for a in range(V) for b in range(V)
            if a != b and w["b_U"][a] == w["b_U"][b] and all(row[a] == row[b] for row in w["W_U"])}
    tied = lambda label: {b for a, b in same if a == label}  # noqa: E731
    correct, still_open = 0, []
    for index, (x, logits) in enumerate(Enclosure(w, PRECISIONS[0]).walk()):
        if index % V ** (N - 1) == 0:
            progress("brute force (pure)", index // V ** (N - 1), V)
        label = label_of(x)
        if label is None:
            continue
        decision = _decide(logits, label, tied(label))
        correct += decision == 1
        if decision is None:
            still_open.append(x)
    progress("brute force (pure)", V, V)
    opened = len(still_open)
    for bits in PRECISIONS[1:]:
        enclosure, left = Enclosure(w, bits), []
        for x in still_open:
            earlier = []
            for token in x:
                earlier.append(enclosure.position(earlier, token))
            decision = _decide(enclosure.logits(earlier[-1][1]), label_of(x), tied(label_of(x)))
            correct += decision == 1
            if decision is None:
                left.append(x)
        still_open = left
    return correct, {"open_at_low_precision": opened, "undecided": len(still_open)}


def estimated_seconds(dims: dict) -> float:
    """A rough forecast from the dimensions (measured on a 2-core machine; any machine within 10x)."""
    per_position = dims["L"] * dims["H"] * (3 * dims["D"] * dims["E"] + dims["E"] * dims["D"] + dims["N"] * (dims["E"] + dims["D"] + 40))
    return dims["V"] ** dims["N"] * 1.2 * per_position * 2e-6


def domain(task: str, V: int, N: int) -> int:
    return TASKS[task][0](V, N)


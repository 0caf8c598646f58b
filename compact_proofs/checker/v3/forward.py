"""The forward pass of SEMANTICS.md version 3, twice: in float64 balls for a chunk of inputs at
once (`enclose_logits`), and in arb for one input at a time (`exact_logits`).

Causality makes position j's residual stream a function of the prefix x_0..x_j, so a chunk's
inputs are reduced to their distinct prefixes per position (`Prefixes`), and every quantity at
position j is computed once per distinct prefix. Before the first block, position j's stream
depends on the token x_j alone: it is held once per distinct token and indexed from the prefixes.
Every block but the last is computed at every position up to the last one read; the last block
only at the positions read.

Per block (TransformerLens' order): h = N1(r); attention over h as in version 2 (causal, scale
1/sqrt(d_head), every head, + b_O); r_mid = r + attention; with an MLP,
r' = r_mid + act(N2(r_mid) W_in + b_in) W_out + b_out. logits = NF(r) W_U + b_U at each position
read. N1, N2, NF are LN, LNPre or the identity (numerics.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from flint import arb, arb_mat

from compact_proofs.checker import cost
from compact_proofs.checker.ball import Ball, contract, contract_exact
from compact_proofs.checker.interval import rsqrt
from compact_proofs.checker.v3 import numerics
from compact_proofs.checker.v3.architecture import Model3


@dataclass(frozen=True)
class Prefixes:
    """The distinct prefixes of inputs X [n, T]: per position j, the token of each distinct prefix
    x_0..x_j (tokens[j]), the id of its prefix at j - 1 (parent[j]), and each input's prefix id (row[j])."""

    tokens: list[np.ndarray]
    parent: list[np.ndarray]
    row: list[np.ndarray]

    def ancestors(self, j: int, i: int) -> np.ndarray:
        """For each distinct prefix at j, the id of its prefix at i <= j."""
        ids = np.arange(len(self.tokens[j]))
        for level in range(j, i, -1):
            ids = self.parent[level][ids]
        return ids


def prefixes(X: np.ndarray) -> Prefixes:
    tokens, parent, row = [], [], []
    previous = np.zeros(len(X), dtype=np.int64)
    base = int(X.max()) + 1 if X.size else 1
    for j in range(X.shape[1]):
        key = previous * base + X[:, j]  # < n 2^17: no overflow
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        tokens.append(X[first, j])
        parent.append(previous[first])
        row.append(inverse.reshape(-1))
        previous = inverse.reshape(-1)
    return Prefixes(tokens, parent, row)


# ---------------------------------------------------------------------------------------------
# balls


def _norm(model: Model3, x: Ball, ln: tuple[np.ndarray, np.ndarray] | None) -> Ball:
    if model.arch.normalization == "none":
        return x
    return numerics.layer_norm(x, model.arch.eps, *(ln or (None, None)))


def _softmax_weights(scores: Ball) -> Ball:
    """e^(s - t) along the last axis, t the largest midpoint there (the softmax is unchanged)."""
    shift = np.nan_to_num(scores.mid.max(axis=-1, keepdims=True), posinf=0.0, neginf=0.0)
    return (scores - shift).exp()


class _Stream:
    """A position's residual streams: rows (a ball [rows, D]) and, per distinct prefix, its row."""

    def __init__(self, rows: Ball, index: np.ndarray):
        self.rows, self.index = rows, index


def enclose_logits(model: Model3, X: np.ndarray, readout: tuple[int, ...]) -> list[Ball]:
    """Per position read, balls [n, d_vocab_out] holding the logits of every input of X [n, T]."""
    P = prefixes(X)
    top = max(readout) + 1
    scale = Ball.of_interval(*(lambda i: (i.lo, i.hi))(rsqrt(model.d_head)))
    streams = []
    for j in range(top):
        tokens, index = np.unique(P.tokens[j], return_inverse=True)
        streams.append(_Stream(Ball(model.W_E[tokens]) + model.W_pos[j], index.reshape(-1)))
    for l, block in enumerate(model.blocks):
        a = block.attn
        positions = readout if l == model.n_layers - 1 else range(top)
        normed = [_norm(model, s.rows, block.ln1) for s in streams[: max(positions) + 1]]
        keys = [contract_exact(h, a["W_K"], "cd,hde->che") + a["b_K"] for h in normed]
        values = [contract_exact(contract_exact(h, a["W_V"], "cd,hde->che") + a["b_V"], a["W_O"], "che,hed->chd") for h in normed]
        new = {}
        for j in positions:
            query = (contract_exact(normed[j], a["W_Q"], "cd,hde->che") + a["b_Q"])[streams[j].index]  # [c, H, E]
            ids = [streams[i].index[P.ancestors(j, i)] for i in range(j + 1)]  # each key's row, per prefix at j
            scores = [contract(contract(query, keys[i][ids[i]], "che,che->ch"), scale, "ch,->ch") for i in range(j + 1)]
            weights = _softmax_weights(Ball(np.stack([s.mid for s in scores], -1), np.stack([s.rad for s in scores], -1)))
            total = contract(weights, np.ones(j + 1), "chi,i->ch").reciprocal()
            out = streams[j].rows[streams[j].index] + a["b_O"]
            for i in range(j + 1):
                share = contract(weights[:, :, i], total, "ch,ch->ch")
                out = out + contract(values[i][ids[i]], share, "chd,ch->cd")  # the large operand first
            if block.mlp:
                m = block.mlp
                pre = contract_exact(_norm(model, out, block.ln2), m["W_in"], "cd,dm->cm") + m["b_in"]
                out = out + (contract_exact(numerics.ACTIVATION[model.arch.activation](pre), m["W_out"], "cm,md->cd") + m["b_out"])
            new[j] = _Stream(out, np.arange(len(P.tokens[j])))
        streams = [new.get(j) for j in range(top)]
    logits = []
    for j in readout:
        final = _norm(model, streams[j].rows, model.ln_final)
        logits.append((contract_exact(final, model.W_U, "cd,do->co") + model.b_U)[P.row[j]])
    cost.add(len(X) * len(readout))  # pragma: no mutate (accounting)
    return logits


# ---------------------------------------------------------------------------------------------
# arb


class ArbModel:
    """The weights as arb matrices (exact: every float is), built once per model."""

    def __init__(self, model: Model3):
        self.model = model
        mat = lambda a: arb_mat([[arb(float(v)) for v in row] for row in np.atleast_2d(a)])  # noqa: E731
        vec = lambda a: [arb(float(v)) for v in a]  # noqa: E731
        self.W_E, self.W_pos, self.W_U, self.b_U = model.W_E, mat(model.W_pos), mat(model.W_U), vec(model.b_U)
        self.blocks = []
        for block in model.blocks:
            a = block.attn
            heads = [{n: mat(a[n][h]) for n in ("W_Q", "W_K", "W_V", "W_O")} | {n: vec(a[n][h]) for n in ("b_Q", "b_K", "b_V")}
                     for h in range(model.n_heads)]
            mlp = {n: (mat(v) if v.ndim == 2 else vec(v)) for n, v in block.mlp.items()}
            ln = lambda pair: None if pair is None else (vec(pair[0]), vec(pair[1]))  # noqa: E731
            self.blocks.append((heads, vec(a["b_O"]), mlp, ln(block.ln1), ln(block.ln2)))
        self.ln_final = None if model.ln_final is None else (vec(model.ln_final[0]), vec(model.ln_final[1]))


def _arb_norm(model: Model3, row: list[arb], ln) -> list[arb]:
    if model.arch.normalization == "none":
        return row
    D = len(row)
    eps = arb(model.arch.eps.numerator) / model.arch.eps.denominator
    mean = sum(row, arb(0)) / D
    y = [v - mean for v in row]
    var = sum((v * v for v in y), arb(0)) / D
    inv = 1 / (var + eps).sqrt()  # var + eps > 0: arb's sqrt of a positive ball
    out = [v * inv for v in y]
    return [v * w + b for v, w, b in zip(out, *ln)] if ln is not None else out


def _arb_act(name: str, x: arb) -> arb:
    if name == "relu":
        if x > 0:
            return x
        if x < 0:
            return arb(0)
        return arb(0).union(x.upper())  # [0, upper]: contains max(v, 0) for every v in the ball
    if name == "gelu":
        return x * (1 + (x / arb(2).sqrt()).erf()) / 2
    return x * (1 + ((2 / arb.pi()).sqrt() * (x + arb(44715) / 1000000 * x * x * x)).tanh()) / 2


def _row(m: arb_mat, i: int) -> list[arb]:
    return [m[i, d] for d in range(m.ncols())]


def _vecmat(v: list[arb], m: arb_mat) -> list[arb]:
    return _row(arb_mat([v]) * m, 0)


def exact_logits(arb_model: ArbModel, tokens: list[int], readout: tuple[int, ...]) -> list[list[arb]]:
    """Balls holding the logits at each position read, at the working precision."""
    model = arb_model.model
    T = max(readout) + 1
    cost.add(T * T * model.d_model * model.n_heads * model.n_layers * 8 + T * model.d_mlp * model.d_model * 2)  # pragma: no mutate
    resid = [[arb(float(e)) + p for e, p in zip(model.W_E[tokens[i]], _row(arb_model.W_pos, i))] for i in range(T)]
    scale = arb(model.d_head).rsqrt()
    for heads, b_O, mlp, ln1, ln2 in arb_model.blocks:
        normed = [_arb_norm(model, r, ln1) for r in resid]
        out = [[v + b for v, b in zip(r, b_O)] for r in resid]
        for w in heads:
            q = [[v + b for v, b in zip(_vecmat(h, w["W_Q"]), w["b_Q"])] for h in normed]
            k = [[v + b for v, b in zip(_vecmat(h, w["W_K"]), w["b_K"])] for h in normed]
            vo = [_vecmat([v + b for v, b in zip(_vecmat(h, w["W_V"]), w["b_V"])], w["W_O"]) for h in normed]
            for i in range(T):
                weights = [(sum((a * b for a, b in zip(q[i], k[j])), arb(0)) * scale).exp() for j in range(i + 1)]
                total = sum(weights, arb(0))
                for d in range(model.d_model):
                    out[i][d] += sum((weights[j] * vo[j][d] for j in range(i + 1)), arb(0)) / total
        if mlp:
            for i in range(T):
                pre = [v + b for v, b in zip(_vecmat(_arb_norm(model, out[i], ln2), mlp["W_in"]), mlp["b_in"])]
                post = _vecmat([_arb_act(model.arch.activation, v) for v in pre], mlp["W_out"])
                out[i] = [r + v + b for r, v, b in zip(out[i], post, mlp["b_out"])]
        resid = out
    return [[v + b for v, b in zip(_vecmat(_arb_norm(model, resid[j], arb_model.ln_final), arb_model.W_U), arb_model.b_U)]
            for j in readout]

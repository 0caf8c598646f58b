"""The two-layer model's tables, enclosed from the exact weights in balls (ball.py) and kept as
intervals. Layer-0 heads h, layer-1 heads g, s encloses 1/sqrt(d_head) (SEMANTICS.md, version 2):

    rb[t, j]          = W_E[t] + W_pos[j] + b_O^0          the residual stream before layer 0's heads
    s0[h][t, j, u, k] = (r[t,j] W_Q^h + b_Q^h) . (r[u,k] W_K^h + b_K^h) s
                                                            layer-0 score: query token t at j, key token u at k
    w[h][u, k]        = (r[u,k] W_V^h + b_V^h) W_O^h        what head h writes when it attends to (u, k)
    Qb[g][t]          = ((rb[t, n-1]) W_Q^g + b_Q^g) s      layer-1 query, residual part (t the query token)
    Qw[g][h][u, k]    = w[h][u, k] W_Q^g s                  layer-1 query, one layer-0 component
    Kb[g][t, j]       = rb[t, j] W_K^g + b_K^g              layer-1 key, residual part
    KW[g][h][u, k]    = w[h][u, k] W_K^g                    layer-1 key, one layer-0 component
    Zb[g][t, j]       = (rb[t, j] W_V^g + b_V^g) W_O^g W_U  layer-1 value through the unembedding
    ZW[g][h][u, k]    = w[h][u, k] W_V^g W_O^g W_U
    Db[t]             = (rb[t, n-1] + b_O^1) W_U + b_U      the direct path at the last position
    Dw[h][u, k]       = w[h][u, k] W_U

With r0 the residual at the last position after layer 0 (rb plus the heads' mixtures of w), the
layer-1 query is Qb + sum_h (mixture of Qw[g][h]) and likewise for keys and values: every quantity
of the proof is a fixed part plus softmax mixtures of these tables (mixture.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from compact_proofs.checker.ball import Ball, contract
from compact_proofs.checker.interval import Interval
from compact_proofs.checker.transformer import Transformer, first_layer


def _interval(ball: Ball) -> Interval:
    return Interval(ball.lower(), ball.upper())


@dataclass(frozen=True)
class Tables:
    d_vocab: int
    n_ctx: int
    s0: tuple[Interval, ...]  # per layer-0 head: [V (t), N (j), V (u), N (k)]
    Qb: tuple[Interval, ...]  # per layer-1 head: [V, E]
    Qw: tuple[tuple[Interval, ...], ...]  # [g][h]: [V, N, E]
    Kb: tuple[Interval, ...]  # [g]: [V, N, E]
    KW: tuple[tuple[Interval, ...], ...]  # [g][h]: [V, N, E]
    Zb: tuple[Interval, ...]  # [g]: [V, N, V]
    ZW: tuple[tuple[Interval, ...], ...]  # [g][h]: [V, N, V]
    Db: Interval  # [V (t), V (output)]
    Dw: tuple[Interval, ...]  # [h]: [V, N, V]

    @property
    def heads(self) -> tuple[int, int]:
        return len(self.s0), len(self.Qb)


def build(model: Transformer) -> Tables:
    """Every table above for a two-layer model (layer 0 from transformer.first_layer)."""
    first = first_layer(model)
    zero, one = model.layers
    N = model.n_ctx
    rb = first.r0 + zero["b_O"]
    values = [vo for _, vo in first.heads]
    to_logits = lambda x, spec: contract(x, model.W_U, spec)  # noqa: E731
    Qb, Qw, Kb, KW, Zb, ZW = [], [], [], [], [], []
    for g in range(one["W_Q"].shape[0]):
        ovu = contract(contract(one["W_V"][g], one["W_O"][g], "de,ef->df"), model.W_U, "df,fo->do")
        bias_v = contract(contract(one["b_V"][g], one["W_O"][g], "e,ef->f"), model.W_U, "f,fo->o")
        Qb.append(_interval(contract(contract(rb[:, N - 1], one["W_Q"][g], "td,de->te") + one["b_Q"][g], first.scale, "te,->te")))
        Qw.append(tuple(_interval(contract(contract(w, one["W_Q"][g], "ukd,de->uke"), first.scale, "uke,->uke")) for w in values))
        Kb.append(_interval(contract(rb, one["W_K"][g], "tjd,de->tje") + one["b_K"][g]))
        KW.append(tuple(_interval(contract(w, one["W_K"][g], "ukd,de->uke")) for w in values))
        Zb.append(_interval(contract(rb, ovu, "tjd,do->tjo") + bias_v))
        ZW.append(tuple(_interval(contract(w, ovu, "ukd,do->uko")) for w in values))
    Db = _interval(to_logits(rb[:, N - 1] + one["b_O"], "td,do->to") + model.b_U)
    Dw = tuple(_interval(to_logits(w, "ukd,do->uko")) for w in values)
    s0 = tuple(_interval(scores) for scores, _ in first.heads)
    return Tables(model.d_vocab, N, s0, tuple(Qb), tuple(Qw), tuple(Kb), tuple(KW), tuple(Zb), tuple(ZW), Db, Dw)

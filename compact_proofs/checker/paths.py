"""The model's path matrices, computed exactly from the weights.

With Ebar[q] = W_E[q] + W_pos[n-1] (the query's residual stream) and biases included:

    EQKE[q, t] = (Ebar[q] W_Q + b_Q) . (W_E[t] W_K + b_K)        query token x key token
    EQKP[q, i] = (Ebar[q] W_Q + b_Q) . (W_pos[i] W_K)             query token x key position
    EVOU[t, o] = ((W_E[t] W_V + b_V) W_O W_U)[o]                  key token x output
    PVOU[i, o] = (W_pos[i] W_V W_O W_U)[o]                        key position x output
    EUPU[q, o] = ((Ebar[q] + b_O) W_U + b_U)[o]                   direct path

so that, for every input x with query q = x_{n-1}, because the attention weights sum to one,

    score_i = EQKE[q, x_i] + EQKP[q, i]                                       (before 1/sqrt(d_head))
    logits[o] = EUPU[q, o] + sum_i a_i (EVOU[x_i, o] + PVOU[i, o]),  a = softmax(score / sqrt(d_head))

exactly as in SEMANTICS.md (tests check this identity against a direct evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compact_proofs.checker import memo
from compact_proofs.checker.exact import Dyadic
from compact_proofs.checker.weights import Model


@dataclass(frozen=True)
class Paths:
    EQKE: Dyadic
    EQKP: Dyadic
    EVOU: Dyadic
    PVOU: Dyadic
    EUPU: Dyadic
    d_head: int

    @property
    def d_vocab(self) -> int:
        return self.EQKE.shape[0]

    @property
    def n_ctx(self) -> int:
        return self.EQKP.shape[1]


def _rows(row: Dyadic, count: int) -> Dyadic:
    """`row` (shape [1, k]) repeated `count` times."""
    return Dyadic(np.repeat(row.ints, count, axis=0), row.exp)


def paths(model: Model) -> Paths:
    """The path matrices (computed once per model and process, memo.py)."""
    return memo.cached(("paths", model.key), lambda: _paths(model))


def _paths(model: Model) -> Paths:
    V, N = model.d_vocab, model.n_ctx
    e_bar = model.W_E + _rows(model.W_pos[N - 1 :], V)
    query = e_bar @ model.W_Q + _rows(model.b_Q, V)
    key_tok = model.W_E @ model.W_K + _rows(model.b_K, V)
    key_pos = model.W_pos @ model.W_K
    ou = model.W_O @ model.W_U
    value_tok = model.W_E @ model.W_V + _rows(model.b_V, V)
    return Paths(
        EQKE=query @ key_tok.T,
        EQKP=query @ key_pos.T,
        EVOU=value_tok @ ou,
        PVOU=(model.W_pos @ model.W_V) @ ou,
        EUPU=(e_bar + _rows(model.b_O, V)) @ model.W_U + _rows(model.b_U, V),
        d_head=model.d_head,
    )

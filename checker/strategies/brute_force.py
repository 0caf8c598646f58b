"""Brute force: decide every one of the d_vocab^n_ctx inputs under the strict semantics.

For an input x with query q = x_{n-1} and label m = max(x), and every output o != m,

    margin_o(x) = sum_i w_i (T_i[x_i, m] - T_i[x_i, o]),   T_i[t, o] = EVOU[t, o] + PVOU[i, o] + EUPU[q, o],
    w_i = exp((EQKE[q, x_i] + EQKP[q, i]) / sqrt(d_head)),

is a positive multiple of logits[m] - logits[o] (paths.py; the softmax normaliser is positive).
x is correct iff every margin_o(x) > 0. A float64 filter (float_filter, Lemma 2 with J = 2 n_ctx
terms, the weights shifted per query so that every w_i <= 1) settles almost every input; the rest are decided exactly (enclosure.exp_sum_sign), so
the verified count is the exact number of correct inputs. An input whose sign the exact path
cannot settle within its precision cap is counted as not correct and reported.

Evidence: none.
"""

from __future__ import annotations

import itertools

import numpy as np

from checker import cost, float_filter, memo
from checker.context import Context, Outcome
from checker.enclosure import exp_sum_sign, exp_table
from checker.errors import CheckError
from checker.exact import Dyadic, align
from checker.paths import Paths, paths

MAX_INPUTS = 1 << 32
CHUNK = 1 << 19  # floats per vectorised block


def _scaled_floats(tables: list[Dyadic]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Exact integer parts at one exponent, and their floats after scaling by a power of two so
    that every entry is below 1 in magnitude (a positive scale changes no sign)."""
    ints, _ = align(*tables)
    bits = max(max((abs(int(v)).bit_length() for v in t.ravel()), default=0) for t in ints)
    return ints, [Dyadic(t, -bits).to_float() for t in ints]


class _ExactDecider:
    """Decides single inputs exactly (the filter's fallback)."""

    def __init__(self, p: Paths):
        (self.eqke, self.eqkp), self.score_exp = align(p.EQKE, p.EQKP)
        (self.evou, self.pvou, self.eupu), _ = align(p.EVOU, p.PVOU, p.EUPU)
        self.d_head = p.d_head
        self.undecided = 0

    def correct(self, x: tuple[int, ...]) -> bool:
        q, m = x[-1], max(x)
        scores = [int(self.eqke[q, t] + self.eqkp[q, i]) for i, t in enumerate(x)]
        values = [self.evou[t] + self.pvou[i] + self.eupu[q] for i, t in enumerate(x)]
        for o in range(len(values[0])):
            if o == m:
                continue
            terms = [(s, int(v[m] - v[o])) for s, v in zip(scores, values)]
            try:
                if exp_sum_sign(terms, self.score_exp, self.d_head) <= 0:
                    return False
            except CheckError:
                self.undecided += 1
                return False
        return True


def count_correct(p: Paths, ctx: Context) -> tuple[int, dict]:
    V, N = p.d_vocab, p.n_ctx
    _, (evou, pvou, eupu) = _scaled_floats([p.EVOU, p.PVOU, p.EUPU])
    bound = float_filter.coefficient_bound(*(float(np.abs(t).max()) for t in (evou, pvou, eupu)))
    threshold = float_filter.Threshold.for_sums(2 * N, bound)  # margin_o: 2 n_ctx weighted terms
    w_tok, w_pos = exp_table(p.EQKE, p.d_head), exp_table(p.EQKP, p.d_head)
    exact = _ExactDecider(p)

    free = N - 1  # non-query positions
    r = 0  # trailing positions vectorised per block
    while r < free and V ** (r + 1) * V <= CHUNK:
        r += 1
    prefix_len = free - r
    block_tokens = np.array(list(itertools.product(range(V), repeat=r)), dtype=np.int64).reshape(V**r, r)
    block_max = block_tokens.max(axis=1, initial=0)
    rows = np.arange(len(block_tokens))

    correct = filtered = 0
    for q in range(V):
        ctx.progress("brute-force", q, V)  # pragma: no mutate (display)
        w = w_tok[q][:, None] * w_pos[q][None, :]  # [token, position], Lemma 3
        coeff = (evou[None, :, :] + pvou[:, None, :]) + eupu[q][None, None, :]  # [position, token, out]
        terms = w.T[:, :, None] * coeff  # [position, token, out]
        cost.add(4 * terms.size)  # pragma: no mutate (accounting)
        block_sum = np.zeros((len(block_tokens), V))
        block_weight = np.zeros(len(block_tokens))
        for j in range(r):
            block_sum += terms[prefix_len + j][block_tokens[:, j]]
            block_weight += w[block_tokens[:, j], prefix_len + j]
        for prefix in itertools.product(range(V), repeat=prefix_len):
            head, head_weight = terms[N - 1, q].copy(), w[q, N - 1]
            for i, t in enumerate(prefix):
                head += terms[i, t]
                head_weight += w[t, i]
            logits = block_sum + head
            weight = 2 * (block_weight + head_weight)  # each w_i enters margin_o twice
            label = np.maximum(block_max, max(prefix + (q,)))
            at_label = logits[rows, label]
            logits[rows, label] = -np.inf
            margin = at_label - logits.max(axis=1)
            positive, negative = threshold.classify(margin, weight)
            cost.add(logits.size * 2 + 4 * len(margin), logits.size * 2 + 8 * len(margin))  # pragma: no mutate (accounting)
            correct += int(np.count_nonzero(positive))
            for j in np.flatnonzero(~(positive | negative)):
                filtered += 1
                correct += exact.correct(prefix + tuple(int(t) for t in block_tokens[j]) + (q,))
    ctx.progress("brute-force", V, V)  # pragma: no mutate (display)
    return correct, {"exact_decisions": filtered, "undecided": exact.undecided, "filter_slope": threshold.slope}


def verify(ctx: Context) -> Outcome:
    model = ctx.model
    if model.total_inputs > MAX_INPUTS:
        raise CheckError("brute-force", f"{model.total_inputs} inputs exceed the brute-force limit {MAX_INPUTS}")
    correct, notes = memo.cached(("brute-force", model.key), lambda: count_correct(paths(model), ctx))
    return Outcome(verified_correct=correct, notes=dict(notes))

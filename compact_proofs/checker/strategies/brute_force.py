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

from compact_proofs.checker import cost, float_filter, memo
from compact_proofs.checker.context import Context, Outcome
from compact_proofs.checker.enclosure import exp_sum_sign, exp_table
from compact_proofs.checker.errors import CheckError, ResourceLimit
from compact_proofs.checker.exact import Dyadic, align
from compact_proofs.checker.paths import Paths, paths
from compact_proofs.checker.residues import Residues

MAX_INPUTS = 1 << 32
CHUNK = 1 << 19  # floats per vectorised block


def _scaled_floats(tables: list[Dyadic]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Exact integer parts at one exponent, and their floats after scaling by a power of two so
    that every entry is below 1 in magnitude (a positive scale changes no sign)."""
    ints, _ = align(*tables)
    bits = max(max((abs(int(v)).bit_length() for v in t.ravel()), default=0) for t in ints)
    return ints, [Dyadic(t, -bits).to_float() for t in ints]


class _ExactDecider:
    """Decides the inputs the filter leaves open, exactly, in bulk.

    For each open (input, output o) pair, margin_o = sum_i e^{u_i} d_i with integer scores s_i and
    coefficients d_i (u_i = s_i 2^e / sqrt(d_head)). Grouping positions with equal s_i, margin_o = 0
    iff every group's coefficient sum is zero (Lindemann-Weierstrass, as in exp_sum_sign). Scores
    are compared through exact class numbers, group sums through residues (residues.py; the
    moduli's product exceeds every sum's magnitude, so the test is exact), vectorised over all
    pairs: an exact zero makes the input wrong at once. A nonzero margin the filter could not sign is decided by
    exp_sum_sign, one pair at a time; one that stays unsettled makes the input not established.
    """

    def __init__(self, p: Paths):
        (self.eqke, self.eqkp), self.score_exp = align(p.EQKE, p.EQKP)
        (self.evou, self.pvou, self.eupu), _ = align(p.EVOU, p.PVOU, p.EUPU)
        self.d_head, self.n_ctx = p.d_head, p.n_ctx
        self.inputs = self.zeros = self.signed = self.undecided = 0
        self._residues = None

    def _tables(self):
        """Score classes and coefficient residues (computed when first needed). score_class[q, t, i]
        numbers the distinct exact values of EQKE[q, t] + EQKP[q, i] per query q, so two positions'
        scores are equal iff their classes are."""
        if self._residues is None:
            V, N = self.eqke.shape[0], self.n_ctx
            score_class = np.empty((V, V, N), dtype=np.int64)
            for q in range(V):
                scores = (self.eqke[q][:, None] + self.eqkp[q][None, :]).ravel().tolist()
                ids = {value: i for i, value in enumerate(sorted(set(scores)))}
                score_class[q] = np.array([ids[value] for value in scores], dtype=np.int64).reshape(V, N)
            top = lambda *tables: max(abs(int(v)) for t in tables for v in t.ravel())  # noqa: E731
            bits = (2 * self.n_ctx * (top(self.evou) + top(self.pvou) + top(self.eupu))).bit_length()  # |a group's sum|
            mod = Residues(bits)
            self._residues = (mod, score_class, *(mod.of(t) for t in (self.evou, self.pvou, self.eupu)))
        return self._residues

    def correct(self, inputs: np.ndarray, open_outputs: np.ndarray) -> np.ndarray:
        """Which of `inputs` [n, n_ctx] are correct, given that every output outside `open_outputs`
        [n, d_vocab] (the label's column included) has a certainly positive margin."""
        n, N = inputs.shape
        self.inputs += n
        wrong = np.zeros(n, dtype=bool)
        rows, outs = np.nonzero(open_outputs)
        if not len(rows):
            return ~wrong
        mod, score_class, evou, pvou, eupu = self._tables()
        cost.add(len(rows) * N * (N + 6) * len(mod.moduli))  # pragma: no mutate (accounting)
        x = inputs[rows]
        q, m, pos = x[:, -1], x.max(axis=1), np.arange(N)
        classes = score_class[q[:, None], x, pos[None, :]]  # [pairs, N]
        same = classes[:, :, None] == classes[:, None, :]  # [pairs, i, j]: s_i == s_j
        d = (evou[:, x, m[:, None]] - evou[:, x, outs[:, None]]) + (pvou[:, pos[None, :], m[:, None]] - pvou[:, pos[None, :], outs[:, None]])
        d = mod.reduce(d + (eupu[:, q, m] - eupu[:, q, outs])[:, :, None])  # [k, pairs, N], each in [0, M)
        grouped = np.flatnonzero(same.sum(axis=2).max(axis=1) > 1)  # pairs where two positions share a score
        if len(grouped):  # per position: the sum over its score group
            d[:, grouped] = mod.reduce(np.einsum("pij,kpj->kpi", same[grouped].astype(np.int64), d[:, grouped]))
        zero = ~(d != 0).any(axis=(0, 2))
        self.zeros += int(np.count_nonzero(zero))
        wrong[rows[zero]] = True
        for pair in np.flatnonzero(~zero):
            if not wrong[rows[pair]]:
                wrong[rows[pair]] = self._sign(x[pair], int(outs[pair])) != 1
        return ~wrong

    def _sign(self, x: np.ndarray, o: int) -> int | None:
        """The exact sign of margin_o(x), or None if not settled within the precision cap."""
        self.signed += 1
        q, m = int(x[-1]), int(x.max())
        terms = [(int(self.eqke[q, t] + self.eqkp[q, i]), int(self.evou[t, m] - self.evou[t, o] + self.pvou[i, m]
                  - self.pvou[i, o] + self.eupu[q, m] - self.eupu[q, o])) for i, t in enumerate(x)]
        try:
            return exp_sum_sign(terms, self.score_exp, self.d_head)
        except CheckError:
            self.undecided += 1
            return None

    def notes(self) -> dict:
        return {"exact_decisions": self.inputs, "exact_zeros": self.zeros, "signs_decided_exactly": self.signed,
                "undecided": self.undecided}


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

    correct = 0
    pending: list[tuple[np.ndarray, np.ndarray]] = []  # open inputs and their open outputs, decided in bulk

    def decide() -> int:
        if not pending:
            return 0
        inputs, open_outputs = (np.concatenate(parts) for parts in zip(*pending))
        pending.clear()
        return int(np.count_nonzero(exact.correct(inputs, open_outputs)))

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
            open_rows = np.flatnonzero(~(positive | negative))
            if len(open_rows):  # per output: which margins the filter does not certainly sign positive
                margins = at_label[open_rows, None] - logits[open_rows]
                certain = threshold.positive(margins, weight[open_rows, None])
                tokens = np.concatenate([np.tile(np.array(prefix, dtype=np.int64), (len(open_rows), 1)),
                                         block_tokens[open_rows], np.full((len(open_rows), 1), q)], axis=1)
                pending.append((tokens, ~certain))
                if sum(len(t) for t, _ in pending) >= 1 << 14:
                    correct += decide()
        correct += decide()
    ctx.progress("brute-force", V, V)  # pragma: no mutate (display)
    return correct, {**exact.notes(), "filter_slope": threshold.slope}


def verify(ctx: Context) -> Outcome:
    model = ctx.model
    if model.total_inputs > MAX_INPUTS:
        raise ResourceLimit("brute-force", f"{cost.quantity(model.total_inputs)} inputs exceed the brute-force limit {cost.quantity(MAX_INPUTS)}")
    correct, notes = memo.cached(("brute-force", model.key), lambda: count_correct(paths(model), ctx))
    return Outcome(verified_correct=correct, notes=dict(notes))

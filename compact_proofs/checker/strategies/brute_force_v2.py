"""Brute force for format v2 (any task of tasks.py; 1 or 2 layers, H heads): every input of the
task's domain is decided.

For each prefix of the inputs, transformer.enclose_logits encloses the logits of every input
with that prefix in float64 balls. An input is correct when, for every output o != label, the
ball of logit[label] - logit[o] lies strictly above zero, and wrong when one lies at or below
zero. The rest are decided one at a time:
- a margin that is structurally zero (the label's and o's unembedding columns and biases are
  identical, so the two logits are equal for every residual stream) makes the input a tie: wrong;
- otherwise the input's margins are evaluated in arb ball arithmetic (exp, sqrt and softmax
  included) at 64, 256 and 1024 bits; the first precision that settles every sign decides.
Whatever stays open (and every open input beyond the first MAX_EXACT) is not counted as correct
and is reported as `undecided`. With two layers a margin is not a sum of exponentials of
algebraic numbers, so an exact zero cannot be decided in general (SEMANTICS.md, version 2).

Evidence: none.
"""

from __future__ import annotations

import itertools

import numpy as np
from flint import arb, arb_mat

from compact_proofs.checker import cost, heap, memo
from compact_proofs.checker.enclosure import precision
from compact_proofs.checker.errors import ResourceLimit
from compact_proofs.checker.interval import next_down, next_up
from compact_proofs.checker.strategies import brute_force
from compact_proofs.checker.tasks import Task
from compact_proofs.checker.transformer import Transformer, enclose_logits, first_layer

MAX_INPUTS = brute_force.MAX_INPUTS
MAX_TABLE = 1 << 25  # balls: 16 bytes an entry
CHUNK = 1 << 15  # inputs per enclosure pass
MAX_EXACT = 1 << 12
PRECISIONS = (64, 256, 1024)


def count_correct(model: Transformer, task: Task, progress) -> tuple[int, dict]:
    V, N = model.d_vocab, model.n_ctx
    free = 0
    while free < N and V ** (free + 1) <= CHUNK:
        free += 1
    suffixes = np.indices((V,) * free).reshape(free, -1).T
    same_column = np.all(model.W_U[:, :, None] == model.W_U[:, None, :], axis=0) & (model.b_U[:, None] == model.b_U[None, :])
    table = first_layer(model)
    correct, opened, open_inputs = 0, 0, []
    prefixes = list(itertools.product(range(V), repeat=N - free))
    for done, prefix in enumerate(prefixes):
        progress("brute-force", done, len(prefixes))
        x = np.concatenate([np.broadcast_to(np.array(prefix, dtype=np.int64), (len(suffixes), N - free)), suffixes], axis=1)
        label, in_domain = task.labels(x)
        logits = enclose_logits(model, prefix, table)
        rows = np.arange(len(x))
        low, high = logits.lower(), logits.upper()
        others = np.arange(V)[None, :] != label[:, None]
        # margin_o in [low[label] - high[o], high[label] - low[o]], rounded outward
        with np.errstate(invalid="ignore", over="ignore"):
            above = next_down(low[rows, label][:, None] - high) > 0
            below = next_up(high[rows, label][:, None] - low) <= 0
        tie = same_column[label] & others
        settled_correct = np.where(others, above, True).all(axis=1)
        settled_wrong = (below & others).any(axis=1) | tie.any(axis=1)
        cost.add(4 * logits.mid.size)  # pragma: no mutate (accounting)
        correct += int(np.count_nonzero(in_domain & settled_correct))
        still_open = x[in_domain & ~settled_correct & ~settled_wrong]
        opened += len(still_open)
        open_inputs.extend(still_open[: MAX_EXACT - len(open_inputs)].tolist())  # the rest stay undecided
    progress("brute-force", len(prefixes), len(prefixes))
    decided = [_exact_sign(model, task, tokens) for tokens in open_inputs]
    correct += decided.count(1)
    settled = len(decided) - decided.count(None)
    return correct, {"open_after_float": opened, "decided_in_arb": settled, "undecided": opened - settled}


def _exact_sign(model: Transformer, task: Task, tokens: list[int]) -> int | None:
    """1 if the input is correct, -1 if not, None if no precision in PRECISIONS settles it."""
    label = int(task.labels(np.array([tokens]))[0][0])
    for bits in PRECISIONS:
        with precision(bits):
            logits = exact_logits(model, tokens)
            margins = [logits[label] - logits[o] for o in range(model.d_vocab) if o != label]
            if all(m > 0 for m in margins):
                return 1
            if any(m < 0 for m in margins):
                return -1
    return None


def _mat(array: np.ndarray) -> arb_mat:
    return arb_mat([[arb(float(v)) for v in row] for row in np.atleast_2d(array)])


def exact_logits(model: Transformer, tokens: list[int]) -> list[arb]:
    """Balls containing the logits at the last position, at the working precision (every float
    weight enters exactly; exp and rsqrt are arb's)."""
    N = model.n_ctx
    cost.add(N * N * model.d_model * model.n_heads * model.n_layers * 8)  # pragma: no mutate (accounting)
    residual = _mat(model.W_E[tokens]) + _mat(model.W_pos)
    scale = arb(model.d_head).rsqrt()
    for w in model.layers:
        out = residual + arb_mat([[arb(float(v)) for v in w["b_O"]]] * N)
        for h in range(model.n_heads):
            bias = lambda name: arb_mat([[arb(float(v)) for v in w[name][h]]] * N)  # noqa: E731
            q = residual * _mat(w["W_Q"][h]) + bias("b_Q")
            k = residual * _mat(w["W_K"][h]) + bias("b_K")
            vo = (residual * _mat(w["W_V"][h]) + bias("b_V")) * _mat(w["W_O"][h])
            scores = q * k.transpose()
            for i in range(N):
                weights = [(scores[i, j] * scale).exp() for j in range(i + 1)]
                total = sum(weights, arb(0))
                for d in range(model.d_model):
                    out[i, d] += sum((weights[j] * vo[j, d] for j in range(i + 1)), arb(0)) / total
        residual = out
    logits = residual * _mat(model.W_U)
    return [logits[N - 1, v] + arb(float(model.b_U[v])) for v in range(model.d_vocab)]


def verify(model: Transformer, task: Task, progress) -> tuple[int, dict]:
    if model.d_vocab**model.n_ctx > MAX_INPUTS:
        raise ResourceLimit("brute-force", f"{cost.quantity(model.d_vocab**model.n_ctx)} inputs exceed the brute-force limit {cost.quantity(MAX_INPUTS)}")
    V, N = model.d_vocab, model.n_ctx
    entries = model.n_heads * V * N * (V * N + model.d_model)  # the first layer's tables
    if entries > MAX_TABLE:
        raise ResourceLimit("brute-force", f"the first layer's tables need {cost.quantity(entries)} entries, above {cost.quantity(MAX_TABLE)}")
    with heap.retained():
        return memo.cached(("brute-force-v2", model.key, task.name), lambda: count_correct(model, task, progress))

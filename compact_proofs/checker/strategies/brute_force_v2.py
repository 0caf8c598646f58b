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
Open inputs are decided as each pass leaves them (memory bounded by the pass), up to MAX_EXACT
of them, 4x the pure path's largest domain, so that both paths settle the same inputs of every
file the pure path checks; the time limit bounds the work. Whatever stays open (and every open
input beyond the first MAX_EXACT) is not counted as correct and is reported as `undecided`. With two layers a margin is not a sum of exponentials of
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
CHUNK = 1 << 15  # inputs per enclosure pass, at most
MAX_PASS_BYTES = 1 << 30  # the arrays of one enclosure pass, planned (about half is used): its inputs are as many as fit
MAX_MEMORY = 3 << 30  # bytes held at once: the weights as float64, the first layer's tables, one pass
MAX_EXACT = 1 << 22  # inputs decided in arb, at most (4x the pure path's whole domain: tests/checker/test_pure.py)
PRECISIONS = (64, 256, 1024)


def bytes_per_input(V: int, N: int, D: int, E: int) -> int:
    """An upper bound on an enclosure pass's bytes per input (transformer.enclose_logits and the
    margins here). The largest arrays are balls (two float64 arrays) of every input's values at its
    N positions, [inputs, N, d_model], and their contraction's temporaries: measured peaks (numpy's
    allocations, tracemalloc) are at most about 36 N max(d_model, d_head) bytes an input; the
    logits and margins [inputs, d_vocab] and token arrays [inputs, N] add a few hundred.
    tests/checker/strategies/test_brute_force_v2.py checks the bound against measured peaks."""
    return 48 * N * (D + E) + 128 * V + 64 * N + 512


def plan(dims: dict[str, int]) -> tuple[int, int]:
    """(free positions per pass, the bytes the check holds at once), from the dimensions alone:
    each pass takes the last `free` positions of V^free inputs, as many as MAX_PASS_BYTES allow
    (at least one input); held at once are the weights as float64 (8 bytes each), the first
    layer's tables (balls: 16 bytes an entry, per head [V, N, V, N] and [V, N, D], with the
    [V, N, d_head] queries and keys and their temporaries while they are built), and one pass
    with its products by a weight matrix ([d_model, d_head] temporaries)."""
    V, N, D, E, H, L = (dims[r] for r in "VNDEHL")
    per_input = bytes_per_input(V, N, D, E)
    free = 0
    while free < N and V ** (free + 1) <= CHUNK and V ** (free + 1) * per_input <= MAX_PASS_BYTES:
        free += 1
    weights = 8 * (2 * V * D + N * D + V + L * (4 * H * D * E + 3 * H * E + D))
    table = 16 * H * V * N * (V * N + D) + 64 * V * N * (D + E)
    one_pass = V**free * per_input + 48 * D * E
    return free, weights + table + one_pass


def within_limits(dims: dict[str, int]) -> int:
    """The free positions per pass, after refusing (ResourceLimit) what exceeds the input count,
    the first layer's table size or the memory budget; called before any conversion or table."""
    V, N, D, H = dims["V"], dims["N"], dims["D"], dims["H"]
    if V**N > MAX_INPUTS:
        raise ResourceLimit("brute-force", f"{cost.quantity(V**N)} inputs exceed the brute-force limit {cost.quantity(MAX_INPUTS)}")
    entries = H * V * N * (V * N + D)  # the first layer's tables
    if entries > MAX_TABLE:
        raise ResourceLimit("brute-force", f"the first layer's tables need {cost.quantity(entries)} entries, above {cost.quantity(MAX_TABLE)}")
    free, need = plan(dims)
    if need > MAX_MEMORY:
        raise ResourceLimit("brute-force", f"the check would hold about {need >> 20} MiB at once (weights as float64, the first "
                            f"layer's tables, one pass), above the {MAX_MEMORY >> 20} MiB limit")
    return free


def count_correct(model: Transformer, task: Task, progress) -> tuple[int, dict]:
    V, N = model.d_vocab, model.n_ctx
    free = within_limits(dims_of(model))
    suffixes = np.indices((V,) * free).reshape(free, -1).T
    same_column = np.all(model.W_U[:, :, None] == model.W_U[:, None, :], axis=0) & (model.b_U[:, None] == model.b_U[None, :])
    table = first_layer(model)
    correct, opened, decided, settled = 0, 0, 0, 0
    passes = V ** (N - free)
    for done, prefix in enumerate(itertools.product(range(V), repeat=N - free)):  # lazily: there may be 2^32 prefixes
        progress("brute-force", done, passes)
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
        for tokens in still_open[: max(MAX_EXACT - decided, 0)].tolist():  # beyond MAX_EXACT: undecided
            sign = _exact_sign(model, task, tokens)
            decided += 1
            correct += sign == 1
            settled += sign is not None
    progress("brute-force", passes, passes)
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


def dims_of(model: Transformer) -> dict[str, int]:
    return {"V": model.d_vocab, "N": model.n_ctx, "D": model.d_model, "E": model.d_head, "H": model.n_heads, "L": model.n_layers}


def verify(model: Transformer, task: Task, progress) -> tuple[int, dict]:
    within_limits(dims_of(model))  # (verify.py also checks the weights' dimensions before converting them)
    with heap.retained():
        return memo.cached(("brute-force-v2", model.key, task.name), lambda: count_correct(model, task, progress))

"""Brute force for format v3 (SEMANTICS.md, version 3): every input of the task's domain decided.

The domain comes in chunks (v3/tasks.py); v3/forward.py encloses the logits of a chunk's inputs
at every position read, in float64 balls. At a position read, the input is right there when,
for every output o != label, the ball of logit[label] - logit[o] lies strictly above zero (the
lower end of label's ball minus the upper end of o's, rounded down), and wrong there when one
lies at or below zero, or when the label's and o's unembedding columns and biases are identical
(the two logits are then equal for every residual stream: a tie). An input is counted when it is
right at every position read; it is wrong when it is wrong at one. The rest are open and are
evaluated in arb (v3/forward.exact_logits: LayerNorm's square root, erf, tanh and exp are arb's)
at 64, 256 and 1024 bits, up to MAX_EXACT of them; what no precision settles is not counted and is
reported as `undecided` (with LayerNorm and MLPs a margin is not a sum of exponentials of
algebraic numbers: an exact zero cannot be decided in general).

Evidence: none.
"""

from __future__ import annotations

import numpy as np

from compact_proofs.checker import cost, heap, memo
from compact_proofs.checker.enclosure import precision
from compact_proofs.checker.errors import ResourceLimit
from compact_proofs.checker.interval import next_down, next_up
from compact_proofs.checker.v3.architecture import Model3
from compact_proofs.checker.v3.forward import ArbModel, enclose_logits, exact_logits
from compact_proofs.checker.v3.tasks import Task3

MAX_INPUTS = 1 << 32
MAX_PASS_BYTES = 1 << 30  # one chunk's arrays, planned (bytes_per_input), at most
MAX_CHUNK = 1 << 16
MAX_MEMORY = 3 << 30  # the weights as float64 and one chunk
MAX_EXACT = 1 << 16  # open inputs evaluated in arb, at most
PRECISIONS = (64, 256, 1024)


def bytes_per_input(dims: dict[str, int], task: Task3) -> int:
    """An upper bound on a chunk's bytes per input: balls are 16 bytes an entry. Per input and
    position held (every position up to the last read with two blocks or more, else the positions
    read): the stream and its normalised copy [D], the keys and values through W_O [H (E + D)];
    per position computed, the gathered queries, keys and values with their contraction's
    temporaries (3 H (E + D)) and the MLP's [M] (4 M with the activation's temporaries); and the
    logits and margins [O] per position read. Doubled for numpy's temporaries;
    tests/checker/strategies/test_brute_force_v3.py compares it with measured peaks."""
    D, E, H, M, O, L = (dims[r] for r in "DEHMOL")
    held = task.length if L > 1 else len(task.readout)
    per_position = 2 * D + H * (E + D)
    return 2 * 16 * (held * per_position + 3 * H * (E + D) + 4 * M + 2 * O * len(task.readout)) + 64 * task.length


def weight_bytes(dims: dict[str, int]) -> int:
    V, O, N, D, E, H, M, L = (dims[r] for r in "VONDEHML")
    return 8 * (V * D + N * D + D * O + O + L * (4 * H * D * E + 3 * H * E + D + 2 * D * M + M + D + 4 * D) + 2 * D)


def plan(dims: dict[str, int], task: Task3) -> tuple[int, int]:
    """(inputs per chunk, bytes held at once), from the dimensions alone."""
    per_input = bytes_per_input(dims, task)
    chunk = int(max(1, min(MAX_CHUNK, MAX_PASS_BYTES // per_input, task.size or 1)))
    return chunk, weight_bytes(dims) + chunk * per_input


def within_limits(dims: dict[str, int], task: Task3) -> int:
    """Inputs per chunk, after refusing (ResourceLimit) a domain or a plan beyond the limits;
    called before any weight is converted."""
    if task.size > MAX_INPUTS:
        raise ResourceLimit("brute-force", f"{cost.quantity(task.size)} inputs exceed the brute-force limit {cost.quantity(MAX_INPUTS)}")
    chunk, need = plan(dims, task)
    if need > MAX_MEMORY:
        raise ResourceLimit("brute-force", f"the check would hold about {need >> 20} MiB at once (the weights as float64 and "
                            f"one chunk of inputs), above the {MAX_MEMORY >> 20} MiB limit")
    return chunk


def _decide(logits, labels: np.ndarray, same_column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right at every position read, wrong at one) for the inputs of a chunk."""
    right = np.ones(len(labels), dtype=bool)
    wrong = np.zeros(len(labels), dtype=bool)
    rows = np.arange(len(labels))
    for ball, label in zip(logits, labels.T):
        low, high = ball.lower(), ball.upper()
        others = np.arange(low.shape[1])[None, :] != label[:, None]
        with np.errstate(invalid="ignore", over="ignore"):
            above = next_down(low[rows, label][:, None] - high) > 0
            below = next_up(high[rows, label][:, None] - low) <= 0
        right &= np.where(others, above, True).all(axis=1)
        wrong |= (below & others).any(axis=1) | (same_column[label] & others).any(axis=1)
        cost.add(4 * low.size)  # pragma: no mutate (accounting)
    return right, wrong


def _exact_sign(arb_model: ArbModel, task: Task3, tokens: list[int], labels: list[int]) -> int | None:
    """1 if the input is right at every position read, -1 if wrong at one, None if unsettled."""
    for bits in PRECISIONS:
        with precision(bits):
            logits = exact_logits(arb_model, tokens, task.readout)
            margins = [row[y] - row[o] for row, y in zip(logits, labels) for o in range(len(row)) if o != y]
            if all(m > 0 for m in margins):
                return 1
            if any(m < 0 for m in margins):
                return -1
    return None


def count_correct(model: Model3, task: Task3, chunk: int, progress) -> tuple[int, dict]:
    same_column = np.all(model.W_U[:, :, None] == model.W_U[:, None, :], axis=0) & (model.b_U[:, None] == model.b_U[None, :])
    correct, opened, settled, decided = 0, 0, 0, 0
    arb_model = None
    passes = -(-task.size // chunk)
    for done, (x, labels) in enumerate(task.chunks(chunk)):
        progress("brute-force", done, passes)
        if not len(x):
            continue
        right, wrong = _decide(enclose_logits(model, x, task.readout), labels, same_column)
        correct += int(np.count_nonzero(right))
        still_open = np.flatnonzero(~right & ~wrong)
        opened += len(still_open)
        for i in still_open[: max(MAX_EXACT - decided, 0)].tolist():
            arb_model = arb_model or ArbModel(model)
            sign = _exact_sign(arb_model, task, x[i].tolist(), labels[i].tolist())
            decided += 1
            correct += sign == 1
            settled += sign is not None
    progress("brute-force", passes, passes)
    return correct, {"open_after_float": opened, "decided_in_arb": settled, "undecided": opened - settled}


def verify(model: Model3, task: Task3, dims: dict[str, int], progress) -> tuple[int, dict]:
    chunk = within_limits(dims, task)
    with heap.retained():
        return memo.cached(("brute-force-v3", model.key, model.arch, task.name, task.size, _task_key(task)),
                           lambda: count_correct(model, task, chunk, progress))


def _task_key(task: Task3) -> str:
    """What identifies a task's inputs beyond its name and size (a data task: the digest of its inputs and labels)."""
    if task.name != "data":
        return ""
    import hashlib

    digest = hashlib.sha256()
    for x, y in task.chunks(MAX_CHUNK):
        digest.update(x.tobytes() + y.tobytes())
    return digest.hexdigest()

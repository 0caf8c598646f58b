"""Version 3's tasks (SEMANTICS.md, version 3): each an exact domain of inputs, the positions the
model is read at, and a label per position read. An input is correct when, at every position
read, the label's logit is strictly above every other logit.

With V = d_vocab, O = d_vocab_out and N = n_ctx (the rows of W_pos):
- max, min: every x in {0..V-1}^N, read at N - 1, label max(x) / min(x) (O >= V).
- induction: as in version 2 (tasks.py), read at N - 1 (O >= V).
- modular-addition: p = V - 1 (the token p is "="), N >= 3: the p^2 inputs (a, b, p), a, b < p,
  read at position 2, label (a + b) mod p (O >= p).
- sort: s = V - 1 values (the token s is the separator), k = floor(N / 2) >= 1: for every
  v in {0..s-1}^k (repeats allowed: s^k inputs), the input (v_0..v_{k-1}, s, w_0..w_{k-2}) of
  length 2k, w = sorted(v) ascending, read at positions k..2k-1 with labels w_0..w_{k-1}
  (teacher forcing: position k + i predicts w_i) (O >= s).
- data: the inputs and labels of a file the certificate carries (data.py): inputs of length
  n <= N with tokens < V, read at the last r positions, labels < O.
A certificate whose model cannot hold its task's labels (O too small, a token outside the
vocabulary) is invalid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from compact_proofs.checker import tasks as tasks_v2
from compact_proofs.checker.errors import InvalidCertificate
from compact_proofs.checker.v3 import data as data_file

NAMES = ("max", "min", "induction", "modular-addition", "sort", "data")
MAX_DOMAIN = 1 << 32


@dataclass(frozen=True)
class Task3:
    name: str
    length: int  # T, the inputs' length
    readout: tuple[int, ...]  # the positions read, increasing
    size: int  # the exact number of inputs in the domain
    chunks: Callable[[int], Iterator[tuple[np.ndarray, np.ndarray]]]  # (at most n inputs [m, T], labels [m, R]) in order


def _fail(reason: str) -> InvalidCertificate:
    return InvalidCertificate("task", reason)


def _grid(V: int, T: int, start: int, stop: int) -> np.ndarray:
    """Inputs start..stop-1 of {0..V-1}^T in lexicographic order."""
    index = np.arange(start, stop, dtype=np.int64)
    return np.stack([(index // V ** (T - 1 - j)) % V for j in range(T)], axis=1) if T else np.zeros((stop - start, 0), np.int64)


def _grid_task(name: str, V: int, N: int) -> Task3:
    labels_of = tasks_v2.TASKS[name].labels

    def chunks(n: int):
        for start in range(0, V**N, n):
            x = _grid(V, N, start, min(start + n, V**N))
            label, inside = labels_of(x)
            yield x[inside], label[inside][:, None]

    return Task3(name, N, (N - 1,), tasks_v2.TASKS[name].domain_size(V, N), chunks)


def _modular_addition(V: int, N: int) -> Task3:
    p = V - 1

    def chunks(n: int):
        for start in range(0, p * p, n):
            index = np.arange(start, min(start + n, p * p), dtype=np.int64)
            a, b = index // p, index % p
            yield np.stack([a, b, np.full_like(a, p)], axis=1), ((a + b) % p)[:, None]

    return Task3("modular-addition", 3, (2,), p * p, chunks)


def _sort(V: int, N: int) -> Task3:
    s, k = V - 1, N // 2

    def chunks(n: int):
        for start in range(0, s**k, n):
            v = _grid(s, k, start, min(start + n, s**k))
            w = np.sort(v, axis=1)
            yield np.concatenate([v, np.full((len(v), 1), s, dtype=np.int64), w[:, :-1]], axis=1), w

    return Task3("sort", 2 * k, tuple(range(k, 2 * k)), s**k, chunks)


def _data(inputs: np.ndarray, labels: np.ndarray) -> Task3:
    T, R = inputs.shape[1], labels.shape[1]

    def chunks(n: int):
        for start in range(0, len(inputs), n):
            yield inputs[start : start + n], labels[start : start + n]

    return Task3("data", T, tuple(range(T - R, T)), len(inputs), chunks)


def resolve(name: str, V: int, O: int, N: int, file: bytes | None) -> Task3:
    """The task `name` for a model of these dimensions (InvalidCertificate if it cannot be posed)."""
    if name not in NAMES:
        raise _fail(f"unknown task {name!r} (format v3 knows: {', '.join(NAMES)})")
    if (file is not None) != (name == "data"):
        raise _fail("a task file comes with the task data, and only with it")
    if name in ("max", "min", "induction"):
        if O < V:
            raise _fail(f"{name} labels are tokens: d_vocab_out {O} < d_vocab {V}")
        if V**N > MAX_DOMAIN:
            raise _fail(f"{name}: {V}^{N} inputs exceed {MAX_DOMAIN}")
        return _grid_task(name, V, N)
    if name == "modular-addition":
        if V < 2 or N < 3 or O < V - 1:
            raise _fail(f"modular-addition needs d_vocab = p + 1 >= 2, n_ctx >= 3 and d_vocab_out >= p; got {V}, {N}, {O}")
        return _modular_addition(V, N)
    if name == "sort":
        if V < 2 or N < 2 or O < V - 1 or (V - 1) ** (N // 2) > MAX_DOMAIN:
            raise _fail(f"sort needs d_vocab >= 2 (values and a separator), n_ctx >= 2, d_vocab_out >= d_vocab - 1 and at "
                        f"most {MAX_DOMAIN} inputs; got {V}, {N}, {O}")
        return _sort(V, N)
    inputs, labels = data_file.parse(file)
    if inputs.shape[1] > N:
        raise _fail(f"the data's inputs have {inputs.shape[1]} tokens, more than n_ctx = {N}")
    if inputs.max() >= V or labels.max() >= O:
        raise _fail(f"the data holds a token >= d_vocab {V} or a label >= d_vocab_out {O}")
    return _data(inputs, labels)

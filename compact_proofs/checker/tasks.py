"""The tasks of certificate format v2 (SEMANTICS.md, version 2): each an exact input domain and
label over sequences x in {0..d_vocab-1}^n_ctx. Correct means the label's logit at the last
position is strictly above every other logit.

- max: every x; label max(x) (format v1's only task).
- min: every x; label min(x).
- induction: the x whose last token occurs earlier (x_p = x_{n-1} for some p < n-1); label
  x_{p*+1} for the largest such p*. The domain has d_vocab^n - d_vocab (d_vocab-1)^(n-1) inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from compact_proofs.checker.errors import InvalidCertificate


@dataclass(frozen=True)
class Task:
    name: str
    domain_size: Callable[[int, int], int]  # (d_vocab, n_ctx) -> exact count
    labels: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # x [n, n_ctx] -> (label [n], in domain [n])


def _every(x: np.ndarray) -> np.ndarray:
    return np.ones(len(x), dtype=bool)


def _induction(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.shape[1] < 2:  # nothing occurs earlier
        return np.zeros(len(x), dtype=x.dtype), np.zeros(len(x), dtype=bool)
    earlier = x[:, :-1] == x[:, -1:]  # [n, n_ctx - 1]
    in_domain = earlier.any(axis=1)
    last = earlier.shape[1] - 1 - np.argmax(earlier[:, ::-1], axis=1)  # the largest p with x_p = x_{n-1}
    label = x[np.arange(len(x)), np.minimum(last + 1, x.shape[1] - 1)]
    return np.where(in_domain, label, 0), in_domain


TASKS = {
    "max": Task("max", lambda V, N: V**N, lambda x: (x.max(axis=1), _every(x))),
    "min": Task("min", lambda V, N: V**N, lambda x: (x.min(axis=1), _every(x))),
    "induction": Task("induction", lambda V, N: V**N - V * (V - 1) ** (N - 1), _induction),
}


def resolve(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise InvalidCertificate("task", f"unknown task {name!r} (known: {', '.join(TASKS)})") from None

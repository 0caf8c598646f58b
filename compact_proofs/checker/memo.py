"""Within one process, expensive pure functions of a model's exact weights are computed once.

A value is stored under its function's name, the model's key (the sha256 of its exact weights,
weights.Model.key) and any hint bytes it depends on. The same exact inputs give the same exact
results, so a hit is what recomputing would give: every certificate is still checked against its
own weights, nothing is taken from a certificate, and a sweep that checks 150 variants of one
model (or proves and then re-checks one certificate) derives the shared tables once.

- The work counted while computing a value is replayed on every hit, so a verdict's FLOPs and
  operation counts do not depend on what ran before it.
- Stored numpy arrays are made read-only: an accidental in-place change raises (REJECT) instead of
  changing later checks.
- Exceptions (a time limit, an invalid hint) are not stored. At most MAX_ENTRIES values are kept,
  the least recently used dropped first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Hashable, TypeVar

import numpy as np

from compact_proofs.checker import cost

T = TypeVar("T")
MAX_ENTRIES = 48
_store: OrderedDict[Hashable, tuple[Any, int, int]] = OrderedDict()


def cached(key: Hashable, compute: Callable[[], T]) -> T:
    """compute(), or the value stored under key (replaying the work it cost)."""
    hit = _store.get(key)
    if hit is not None:
        _store.move_to_end(key)
        value, flops, ops = hit
        cost.add(flops, ops)
        return value
    with cost.isolated() as used:
        value = compute()
    cost.add(used.flops, used.ops)
    _store[key] = (_freeze(value), used.flops, used.ops)
    while len(_store) > MAX_ENTRIES:
        _store.popitem(last=False)
    return value


def clear() -> None:
    _store.clear()


def _freeze(value: Any, depth: int = 0) -> Any:
    """Make every numpy array reachable through attributes, tuples, lists and dicts read-only."""
    if depth > 8:
        return value
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, (tuple, list)):
        for item in value:
            _freeze(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            _freeze(item, depth + 1)
    else:
        for name in getattr(type(value), "__slots__", ()):
            _freeze(getattr(value, name, None), depth + 1)
        for item in getattr(value, "__dict__", {}).values():
            _freeze(item, depth + 1)
    return value

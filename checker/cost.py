"""What a verification costs: FLOPs by the paper's rules, and the checker's own operations.

- flops: each real-number operation of the verification once, whatever arithmetic carries it:
  elementwise = size, matrix product = size(out) (2k - 1), reduction over n = n - 1 per output,
  an exp or a comparison = 1 each (so a sortedness check of n values is n - 1).
- ops: the element operations the checker actually executes: an interval operation counts its two
  endpoints, the float filter counts its error test, the exact fallback its terms.
Counts accumulate in the active Tally (a context variable), which verify.check opens per certificate.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator


@dataclass
class Tally:
    flops: int = 0
    ops: int = 0


_active: ContextVar[Tally | None] = ContextVar("tally", default=None)


def add(flops: int, ops: int | None = None) -> None:
    tally = _active.get()
    if tally is not None:
        tally.flops += int(flops)
        tally.ops += int(flops if ops is None else ops)


@contextmanager
def counting() -> Iterator[Tally]:
    tally = Tally()
    token = _active.set(tally)
    try:
        yield tally
    finally:
        _active.reset(token)

"""What a verification costs: FLOPs by the paper's rules, and the checker's own operations.

- flops: each real-number operation of the verification once, whatever arithmetic carries it:
  elementwise = size, matrix product = size(out) (2k - 1), reduction over n = n - 1 per output,
  an exp or a comparison = 1 each (so a sortedness check of n values is n - 1).
- ops: the element operations the checker actually executes: an interval operation counts its two
  endpoints, the float filter counts its error test, the exact fallback its terms.
Counts accumulate in the active Tally (a context variable), which verify.check opens per certificate;
it also carries the optional deadline of `--max-seconds`.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator

from compact_proofs.checker.errors import ResourceLimit


def quantity(n: int) -> str:
    """A count for a message: exact below 10^15 (and as 2^k for larger powers of two), else rounded."""
    if n < 10**15:
        return str(n)
    if n & (n - 1) == 0:
        return f"2^{n.bit_length() - 1}"
    return f"about {float(n):.3g}" if n < 2**1000 else f"about 2^{n.bit_length() - 1}"


@dataclass
class Tally:
    flops: int = 0
    ops: int = 0
    deadline: float | None = None  # time.monotonic() after which the check is abandoned (REJECT)


_active: ContextVar[Tally | None] = ContextVar("tally", default=None)


def add(flops: int, ops: int | None = None) -> None:
    """Count work; every step of a check passes here, so this is also where a time limit bites."""
    tally = _active.get()
    if tally is not None:
        tally.flops += int(flops)
        tally.ops += int(flops if ops is None else ops)
        if tally.deadline is not None and time.monotonic() > tally.deadline:
            raise ResourceLimit("resources", "time limit exceeded")


@contextmanager
def isolated() -> Iterator[Tally]:
    """Count the work inside apart (under the same deadline); the caller adds it back (memo.py)."""
    outer = _active.get()
    inner = Tally(deadline=None if outer is None else outer.deadline)
    token = _active.set(inner)
    try:
        yield inner
    finally:
        _active.reset(token)


@contextmanager
def counting(max_seconds: float | None = None) -> Iterator[Tally]:
    tally = Tally(deadline=None if max_seconds is None else time.monotonic() + max_seconds)
    token = _active.set(tally)
    try:
        yield tally
    finally:
        _active.reset(token)

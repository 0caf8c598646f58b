"""What a strategy's verify function receives, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from compact_proofs.checker.errors import InvalidCertificate
from compact_proofs.checker.weights import Model

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def no_progress(stage: str, done: int, total: int) -> None:
    pass


class Evidence:
    """Typed access to a certificate's evidence; every field must be read exactly as declared."""

    def __init__(self, items: dict[str, Any]):
        self._items = dict(items)
        self._used: set[str] = set()

    def _take(self, name: str) -> Any:
        if name not in self._items:
            raise InvalidCertificate("evidence", f"missing field {name!r}")
        self._used.add(name)
        return self._items[name]

    def present(self, name: str) -> bool:
        """Whether an optional field is there (reading it is still required, by `tensor`)."""
        return name in self._items

    def tensor(self, name: str, dtype: str, shape: tuple[int | None, ...]) -> np.ndarray:
        """A tensor of this dtype and shape (None: any size along that axis)."""
        value = self._take(name)
        if (not isinstance(value, np.ndarray) or value.dtype.str != dtype or value.ndim != len(shape)
                or any(want is not None and got != want for got, want in zip(value.shape, shape))):
            got = f"{value.dtype.str} {list(value.shape)}" if isinstance(value, np.ndarray) else type(value).__name__
            raise InvalidCertificate("evidence", f"{name} must be a {dtype} tensor of shape {list(shape)}, got {got}")
        return value

    def vectors(self, name: str, size: int, max_rows: int) -> np.ndarray:
        """A <f8 tensor of shape [size] (one vector) or [r, size] with 1 <= r <= max_rows, as [r, size]."""
        value = self._items.get(name)
        rows = isinstance(value, np.ndarray) and value.ndim == 2
        array = self.tensor(name, "<f8", (None, size) if rows else (size,))
        if rows and not 1 <= array.shape[0] <= max_rows:
            raise InvalidCertificate("evidence", f"{name} must hold 1 to {max_rows} vectors")
        return array.reshape(-1, size)

    def integer(self, name: str, low: int, high: int) -> int:
        value = self._take(name)
        if type(value) is not int or not low <= value <= high:
            raise InvalidCertificate("evidence", f"{name} must be an integer in [{low}, {high}]")
        return value

    def finish(self) -> None:
        unknown = sorted(set(self._items) - self._used)
        if unknown:
            raise InvalidCertificate("evidence", f"unknown field(s) {unknown}")


@dataclass
class Context:
    model: Model
    evidence: Evidence
    progress: Progress = no_progress


@dataclass(frozen=True)
class Outcome:
    """verified_correct: inputs the checker itself established as correct."""

    verified_correct: int
    notes: dict[str, Any] = field(default_factory=dict)

"""What a strategy's search hands the prover: a draft certificate (nothing in it is trusted)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Draft:
    """claimed_correct: the count the generator's own claims imply (None: let the checker find it)."""

    params: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    claimed_correct: int | None = None


Prover = Callable[..., Draft]  # (weights, progress, **options) -> Draft

"""The generator's proof strategies behind one interface: weights in, draft certificate out.

A draft holds the strategy's parameters and evidence (hints and claimed intermediate bounds).
Nothing in it is trusted: generator.prover has the checker establish the count and writes the
tightest claim the checker accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from compact_proofs.checker.context import Progress


@dataclass(frozen=True)
class Draft:
    """claimed_correct: the count the generator's own claims imply (None: let the checker find it)."""

    params: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    claimed_correct: int | None = None


Prover = Callable[..., Draft]  # (weights, progress, **options) -> Draft


def _brute_force(weights: dict[str, np.ndarray], progress: Progress) -> Draft:
    """Brute force needs no hints: the checker decides every input itself."""
    return Draft()


def _cubic(weights: dict[str, np.ndarray], progress: Progress, derived: bool | None = None) -> Draft:
    """derived: no per-case claims (None: above cubic.CLAIMS_UP_TO cases)."""
    from compact_proofs.generator.strategies import cubic

    return cubic.prove(weights, progress, derived=derived)


def _cubic_reference(weights: dict[str, np.ndarray], progress: Progress, derived: bool | None = None) -> Draft:
    from compact_proofs.generator.strategies import cubic

    return cubic.prove(weights, progress, reference=True, derived=derived)


def _subcubic(variant: str) -> Prover:
    def prove(weights: dict[str, np.ndarray], progress: Progress, rank: int = 1) -> Draft:
        """rank: the number of singular vector pairs the low-rank EQKE splits keep (1 in the paper)."""
        from compact_proofs.generator.strategies import subcubic

        return subcubic.prove(weights, progress, variant, rank)

    return prove


def _subcubic_names() -> list[str]:
    from compact_proofs.checker.strategies.subcubic import NAMES

    return NAMES


REGISTRY: dict[str, Prover] = {
    "brute-force": _brute_force,
    "cubic": _cubic,
    "cubic/reference": _cubic_reference,
    **{name: _subcubic(name) for name in _subcubic_names()},
}


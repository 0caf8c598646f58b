"""The generator's proof strategies behind one interface: weights in, draft certificate out.

A draft (draft.py) holds the strategy's parameters and evidence (hints and claimed intermediate
bounds). Nothing in it is trusted: proving/prover.py has the checker establish the count and
writes the tightest claim the checker accepts. REGISTRY maps each strategy name to its search;
a new strategy's search goes in a module here and its name in REGISTRY.
"""

from __future__ import annotations

import numpy as np

from compact_proofs.checker.context import Progress
from compact_proofs.generator.proving.strategies.draft import Draft, Prover

__all__ = ["Draft", "Prover", "REGISTRY"]


def _brute_force(weights: dict[str, np.ndarray], progress: Progress) -> Draft:
    """Brute force needs no hints: the checker decides every input itself."""
    return Draft()


def _cubic(weights: dict[str, np.ndarray], progress: Progress, derived: bool | None = None) -> Draft:
    """derived: no per-case claims (None: above cubic.CLAIMS_UP_TO cases)."""
    from compact_proofs.generator.proving.strategies import cubic

    return cubic.prove(weights, progress, derived=derived)


def _cubic_reference(weights: dict[str, np.ndarray], progress: Progress, derived: bool | None = None) -> Draft:
    from compact_proofs.generator.proving.strategies import cubic

    return cubic.prove(weights, progress, reference=True, derived=derived)


def _subcubic(variant: str) -> Prover:
    def prove(weights: dict[str, np.ndarray], progress: Progress, rank: int = 1) -> Draft:
        """rank: the number of singular vector pairs the low-rank EQKE splits keep (1 in the paper)."""
        from compact_proofs.generator.proving.strategies import subcubic

        return subcubic.prove(weights, progress, variant, rank)

    return prove


def _induction(variant: str) -> Prover:
    def prove(weights: dict[str, np.ndarray], progress: Progress, depth: int = 1) -> Draft:
        """depth: how many times a root cell may be split along one branch (tree variants only)."""
        from compact_proofs.generator.proving.strategies import induction

        return induction.prove(weights, progress, variant, depth)

    return prove


def _induction_names() -> list[str]:
    from compact_proofs.checker.strategies.induction import NAMES

    return NAMES


def _subcubic_names() -> list[str]:
    from compact_proofs.checker.strategies.subcubic import NAMES

    return NAMES


REGISTRY: dict[str, Prover] = {
    "brute-force": _brute_force,
    "cubic": _cubic,
    "cubic/reference": _cubic_reference,
    **{name: _subcubic(name) for name in _subcubic_names()},
    **{name: _induction(name) for name in _induction_names()},
}


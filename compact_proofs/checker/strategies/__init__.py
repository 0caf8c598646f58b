"""One verify function per strategy; the registry maps strategy names to them."""

from __future__ import annotations

from typing import Callable

from compact_proofs.checker.context import Context, Outcome
from compact_proofs.checker.errors import InvalidCertificate
from compact_proofs.checker.strategies import brute_force, cubic, subcubic

Verify = Callable[[Context], Outcome]

REGISTRY: dict[str, Verify] = {
    "brute-force": brute_force.verify,
    "cubic": cubic.verify,
    "cubic/reference": cubic.verify_reference,
    **{name: (lambda ctx, name=name: subcubic.verify(ctx, name)) for name in subcubic.NAMES},
}


def names() -> list[str]:
    return list(REGISTRY)


def resolve(name: str) -> Verify:
    try:
        return REGISTRY[name]
    except KeyError:
        raise InvalidCertificate("strategy", f"unknown strategy {name!r}") from None

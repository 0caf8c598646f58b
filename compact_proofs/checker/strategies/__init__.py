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


def evidence_fields(name: str) -> list[set[str]]:
    """The evidence field sets a strategy reads (one of them must be present exactly; checked
    before any work). The cubic strategies take per-case claims, or none (the derived format)."""
    if name == "brute-force":
        return [set()]
    if name.startswith("cubic"):
        base = {"candidates"} if name == "cubic" else set()
        return [base | {"claims"}, base]
    eupu_handling, attention, error = subcubic.axes(name)
    fields = {"gaps", "claims"} | ({"anchors"} if attention != subcubic.ATTENTION[1] else set())
    fields |= {"levels"} if attention == subcubic.TIERED else set()
    fields |= {"eupu_direction"} if eupu_handling == "svd_query+max_diff" else set()
    if error in subcubic.attention_error.HANDLINGS[:4]:
        fields |= {"eqke_u", "eqke_v"}
    elif error != "exact_EQKE+max_diff_exact":
        fields |= {f"peel{i}_{side}" for i in range(1, 5) for side in ("left", "right")}
    return [fields]


def resolve(name: str) -> Verify:
    try:
        return REGISTRY[name]
    except KeyError:
        raise InvalidCertificate("strategy", f"unknown strategy {name!r}") from None

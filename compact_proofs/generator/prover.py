"""Turn a draft into a certificate the checker accepts, with the tightest claim it accepts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compact_proofs.checker import certificate
from compact_proofs.checker.context import Progress, no_progress
from compact_proofs.checker.verify import Verdict, check
from compact_proofs.generator import __version__
from compact_proofs.generator.strategies import REGISTRY, Draft

GENERATOR = {"name": "compact-proofs", "version": __version__}


class ProofError(RuntimeError):
    """The checker did not accept what a strategy produced (nothing is written). `status` is the
    checker's: rejected (a generator bug), limit (the model is too large for the strategy) or invalid."""

    def __init__(self, message: str, status: str = "rejected"):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Proof:
    raw: bytes
    verdict: Verdict


def _encode(strategy: str, weights: dict[str, np.ndarray], draft: Draft, claimed: int) -> bytes:
    total = weights["embed.W_E"].shape[0] ** weights["pos_embed.W_pos"].shape[0]
    return certificate.encode(
        strategy=strategy, params=draft.params, claimed_correct=claimed, total=total,
        weights=weights, evidence=draft.evidence, generator=GENERATOR,
    )


BEST_SUBCUBIC = "subcubic/best"


def names() -> list[str]:
    """Every strategy name `prove` accepts."""
    return list(REGISTRY) + [BEST_SUBCUBIC]


def prove_best_subcubic(weights: dict[str, np.ndarray], progress: Progress = no_progress, **options) -> Proof:
    """Every subcubic variant; the certificate with the largest established count (first on ties)."""
    variants = [name for name in REGISTRY if name.startswith("subcubic/")]
    best = None
    for i, name in enumerate(variants):
        progress("subcubic/best", i, len(variants))
        proof = prove(weights, name, **options)
        if best is None or proof.verdict.verified_correct > best.verdict.verified_correct:
            best = proof
    progress("subcubic/best", len(variants), len(variants))
    return best


def estimated_seconds(strategy: str, weights: dict[str, np.ndarray]) -> float:
    """A rough forecast of prove's time on a 2-core machine (for a note before long work)."""
    return forecast_seconds(strategy, weights["embed.W_E"].shape[0], weights["pos_embed.W_pos"].shape[0])


def forecast_seconds(strategy: str, d_vocab: int, n_ctx: int) -> float:
    """The same forecast from the sizes alone."""
    from compact_proofs.checker.strategies.cubic import count_cases
    from compact_proofs.generator.strategies.cubic import CLAIMS_UP_TO

    V, N = d_vocab, n_ctx
    if strategy == "brute-force":
        return V**N / 5e6
    if strategy.startswith("cubic"):
        cases = count_cases(V, N)  # measured (docs/results/scaling): with claims about 4e-6 s per case; derived,
        return cases * 4e-6 if cases <= CLAIMS_UP_TO else V**3 / 3 * (2e-6 + 1e-7 * N)  # per (m, q, k) triple
    return V * V * N * 2e-6 * (150 if strategy == BEST_SUBCUBIC else 1)


def prove(weights: dict, strategy: str, progress: Progress = no_progress, **options) -> Proof:
    """Draft with `strategy` and claim the count its evidence implies (for brute force: the count
    the checker establishes on the draft). The verdict is the checker's on the returned bytes.
    `weights`: a TransformerLens-style state dict (numpy arrays or torch tensors; buffers such as
    attn.mask are dropped, as when a file is read). `options` go to the strategy's search (cubic:
    derived=True for the format without per-case claims; subcubic: rank=r for rank-r EQKE splits)."""
    from compact_proofs.generator.weights_io import from_state_dict

    if strategy not in names():
        raise ValueError(f"unknown strategy {strategy!r}; generator.prover.names() lists them")
    weights = from_state_dict(weights)
    if strategy == BEST_SUBCUBIC:
        return prove_best_subcubic(weights, progress, **options)
    draft = REGISTRY[strategy](weights, progress, **options)
    claimed = draft.claimed_correct
    if claimed is None:  # let the checker establish the count first
        verdict = check(certificate.decode(_encode(strategy, weights, draft, 0)), progress)
        if not verdict.accepted:
            raise ProofError(_refusal(strategy, "evidence", verdict), verdict.status)
        claimed = verdict.verified_correct
    raw = _encode(strategy, weights, draft, claimed)
    verdict = check(certificate.decode(raw), progress)
    if not verdict.accepted:
        raise ProofError(_refusal(strategy, "certificate", verdict), verdict.status)
    return Proof(raw, verdict)


def _refusal(strategy: str, what: str, verdict) -> str:
    """Why no certificate came out: a limit or an unsupported case is not a rejection."""
    if verdict.status in ("limit", "unsupported"):
        return f"{strategy} cannot be checked here ({verdict.status}): {verdict.reason}"
    return f"the checker did not accept the {strategy} {what}: {verdict.reason}"

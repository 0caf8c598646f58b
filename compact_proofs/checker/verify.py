"""The checker's entry point: certificate in, verdict out. Default verdict: REJECT."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from compact_proofs.checker import cost, metrics, strategies
from compact_proofs.checker.certificate import Certificate
from compact_proofs.checker.context import Context, Evidence, Progress, no_progress
from compact_proofs.checker.errors import CheckError, InvalidCertificate, ResourceLimit
from compact_proofs.checker.weights import model_from_weights


@dataclass
class Verdict:
    accepted: bool
    strategy: str
    claimed_correct: int | None
    verified_correct: int | None
    total: int | None
    reason: str
    seconds: float
    invalid: bool = False  # the file is not a valid certificate (as opposed to a false claim)
    limit: bool = False  # a size cap or the time limit stopped the check: nothing was decided
    unsupported: bool = False  # a valid certificate this checker (path) does not check
    digest: str | None = None  # the certificate's sha256
    weights_digest: str | None = None  # the digest of its weights (weights.key_of), as in the models manifest
    flops: int | None = None
    checker_ops: int | None = None
    unexplained_dimension: int | None = None
    complexity: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """accepted, rejected (the claim is not established), invalid, limit or unsupported."""
        if self.accepted:
            return "accepted"
        return "invalid" if self.invalid else "limit" if self.limit else "unsupported" if self.unsupported else "rejected"

    @property
    def bound(self) -> str | None:
        """The certified lower bound on accuracy, as "n/d", if accepted."""
        return f"{self.claimed_correct}/{self.total}" if self.accepted else None

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["bound"] = self.bound
        for key in ("claimed_correct", "verified_correct", "total", "flops", "checker_ops", "unexplained_dimension"):
            if out[key] is not None and out[key] >= 2**53:
                out[key] = str(out[key])  # exact beyond what JSON numbers carry
        return out


def check_bytes(raw: bytes, progress: Progress = no_progress, max_seconds: float | None = None) -> Verdict:
    """Decode and check a certificate's bytes (the Python API); an invalid file is a verdict too."""
    from compact_proofs.checker.certificate import decode

    try:
        cert = decode(raw)
    except InvalidCertificate as exc:
        return Verdict(False, "", None, None, None, str(exc), 0.0, invalid=True)
    return check(cert, progress, max_seconds)


def check(cert: Certificate, progress: Progress = no_progress, max_seconds: float | None = None) -> Verdict:
    """ACCEPT iff the claimed count is at most the count this checker establishes itself."""
    start = time.perf_counter()
    with cost.counting(max_seconds) as tally:
        verdict = _check(cert, progress, tally)
    verdict.seconds = time.perf_counter() - start
    return verdict


def _check(cert: Certificate, progress: Progress, tally: cost.Tally) -> Verdict:
    verdict = Verdict(False, cert.strategy, cert.claimed_correct, None, None, "", 0.0, digest=cert.digest)
    try:
        {1: _establish, 2: _establish_v2, 3: _establish_v3}[cert.version](cert, progress, verdict)
        verdict.flops, verdict.checker_ops = tally.flops, tally.ops
        verdict.complexity = metrics.complexity(cert.strategy)
        if cert.claimed_correct <= verdict.verified_correct:
            verdict.accepted = True
            verdict.reason = "claim established"
        else:
            verdict.reason = f"claimed {cert.claimed_correct} correct inputs, established only {verdict.verified_correct}"
    except InvalidCertificate as exc:
        verdict.invalid, verdict.reason = True, str(exc)
    except ResourceLimit as exc:
        verdict.limit, verdict.reason = True, str(exc)
    except CheckError as exc:
        verdict.reason = str(exc)
    except Exception as exc:  # a checker bug or resource failure is never an accept
        verdict.reason = f"internal error: {type(exc).__name__}: {exc}"
    return verdict


def _claim_within(cert: Certificate, total: int, what: str) -> None:
    if cert.claimed_total != total:
        raise CheckError("claim", f"claimed total {cert.claimed_total} is not {what} = {total}")
    if cert.claimed_correct > total:
        raise CheckError("claim", "claimed count exceeds the number of inputs")


def _establish(cert: Certificate, progress: Progress, verdict: Verdict) -> None:
    """Format v1: verdict.verified_correct is the count the strategy establishes."""
    verify = strategies.resolve(cert.strategy)
    if cert.params:
        raise InvalidCertificate("params", f"no strategy takes parameters; got {sorted(cert.params)}")
    allowed = strategies.evidence_fields(cert.strategy)
    if set(cert.evidence) not in allowed:
        nearest = min(allowed, key=lambda f: len(f ^ set(cert.evidence)))
        raise InvalidCertificate("evidence", f"{cert.strategy} reads exactly {sorted(nearest)}: missing "
                                 f"{sorted(nearest - set(cert.evidence))}, unknown {sorted(set(cert.evidence) - nearest)}")
    model = model_from_weights(cert.weights)
    verdict.total, verdict.weights_digest = model.total_inputs, model.key
    _claim_within(cert, model.total_inputs, "d_vocab^n_ctx")
    evidence = Evidence(cert.evidence)
    outcome = verify(Context(model, evidence, progress))
    evidence.finish()
    verdict.verified_correct, verdict.notes = outcome.verified_correct, outcome.notes
    hint = cert.evidence.get("eqke_u")
    rank = hint.shape[0] if getattr(hint, "ndim", 1) == 2 else 1
    verdict.unexplained_dimension = metrics.unexplained_dimension(cert.strategy, model.d_vocab, model.n_ctx, model.d_model, rank)


def _establish_v2(cert: Certificate, progress: Progress, verdict: Verdict) -> None:
    """Format v2: the task and the architecture of SEMANTICS.md, version 2; brute force, or the
    compact induction proofs (strategies/induction/)."""
    from compact_proofs.checker import tasks, transformer
    from compact_proofs.checker.strategies import brute_force_v2, induction

    if cert.strategy not in ("brute-force", *induction.NAMES):
        raise InvalidCertificate("strategy", f"format v2 takes the strategies brute-force and {', '.join(induction.NAMES)}, not {cert.strategy!r}")
    fields = set() if cert.strategy == "brute-force" else induction.evidence_fields(cert.strategy)
    if cert.params or set(cert.evidence) != fields:
        raise InvalidCertificate("evidence", f"{cert.strategy} takes no parameters and " + (f"exactly the evidence {sorted(fields)}" if fields else "no evidence"))
    task = tasks.resolve(cert.task)
    dims = transformer.dimensions(cert.weights)
    if cert.strategy == "brute-force":
        brute_force_v2.within_limits(dims)  # sizes and memory, before any conversion
    else:
        induction.within_limits(cert.strategy, task, dims)
    model = transformer.from_weights(cert.weights)
    verdict.total, verdict.weights_digest = task.domain_size(model.d_vocab, model.n_ctx), model.key
    _claim_within(cert, verdict.total, f"the {cert.task} domain's size")
    if cert.strategy == "brute-force":
        verdict.verified_correct, notes = brute_force_v2.verify(model, task, progress)
    else:
        tree = cert.evidence.get("tree")
        if tree is not None and (not isinstance(tree, np.ndarray) or tree.dtype.str != "<i8"):
            raise InvalidCertificate("evidence", "tree must be an <i8 tensor")
        verdict.verified_correct, notes = induction.verify(model, task, tree, cert.strategy, progress)
    verdict.notes = {"task": cert.task, "layers": model.n_layers, "heads": model.n_heads, **notes}


def _establish_v3(cert: Certificate, progress: Progress, verdict: Verdict) -> None:
    """Format v3: the architectures and tasks of SEMANTICS.md, version 3; brute force only."""
    from compact_proofs.checker.strategies import brute_force_v3
    from compact_proofs.checker.v3 import architecture, tasks

    if cert.strategy != "brute-force":
        raise InvalidCertificate("strategy", f"format v3 takes the strategy brute-force, not {cert.strategy!r}")
    if cert.params or cert.evidence:
        raise InvalidCertificate("evidence", "brute-force takes no parameters and no evidence")
    arch = architecture.architecture(cert.architecture)
    dims = architecture.dimensions(cert.weights, arch)  # names, shapes, limits: nothing converted yet
    task = tasks.resolve(cert.task, dims["V"], dims["O"], dims["N"], cert.task_file)
    brute_force_v3.within_limits(dims, task)  # sizes and memory, before any conversion
    model = architecture.from_weights(cert.weights, arch)
    verdict.total, verdict.weights_digest = task.size, model.key
    _claim_within(cert, task.size, f"the {cert.task} domain's size")
    verdict.verified_correct, notes = brute_force_v3.verify(model, task, dims, progress)
    verdict.notes = {"task": cert.task, "layers": model.n_layers, "heads": model.n_heads, **arch.as_map(),
                     **({"task_sha256": cert.task_sha256} if cert.task_sha256 else {}), **notes}

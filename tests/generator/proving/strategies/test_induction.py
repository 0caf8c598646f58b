"""The compact induction proofs' search: the tree it writes is valid, the claim it drafts is the
count the checker establishes, deeper searches certify at least as much, and prove() writes
certificates the standalone checker accepts."""

from __future__ import annotations

import numpy as np
import pytest

from compact_proofs.checker import certificate, tasks
from compact_proofs.checker.strategies.induction import cells
from compact_proofs.checker.verify import check
from compact_proofs.generator.proving import prover
from compact_proofs.generator.proving.strategies import induction
from tests.models import induction_circuit

TASK = tasks.resolve("induction")


def noisy_circuit(seed: int, noise: float = 0.15) -> dict:
    rng = np.random.default_rng(seed)
    return {k: (v + noise * rng.standard_normal(v.shape)).astype(np.float32) for k, v in induction_circuit(3, 4, strength=3.0).items()}


@pytest.mark.parametrize("variant", ["induction/exact/vertices", "induction/mixture/intervals"])
def test_the_draft_is_what_the_checker_establishes_and_depth_helps(variant):
    weights = noisy_circuit(1)
    counts = []
    for depth in (0, 1, 2):
        draft = induction.prove(weights, lambda *a: None, variant, depth=depth)
        tree = draft.evidence["tree"]
        assert sum(1 for _ in cells.leaves(3, 4, tree)) >= cells.root_count(3, 4)  # a valid tree
        proof = prover.prove(weights, variant, task="induction", depth=depth)
        assert proof.verdict.accepted and proof.verdict.verified_correct == draft.claimed_correct
        assert check(certificate.decode(proof.raw)).verified_correct == draft.claimed_correct
        counts.append(draft.claimed_correct)
    assert counts == sorted(counts) and counts[-1] <= TASK.domain_size(3, 4)


def test_split_order_follows_the_mechanism():
    """x_{n-2} first, then earlier occurrences of q (latest first), then the latest free position."""
    V, N = 3, 6
    root = next(c for c in cells.roots(V, N) if c.p == 2)
    assert induction.split_code(root, N) == N - 2
    fixed = cells.split(root, N - 2, N)[0]
    assert induction.split_code(fixed, N) == N + 1  # position 1 may hold q
    no_q = cells.split(fixed, N + 1, N)[1]
    assert induction.split_code(no_q, N) == N + 0
    none_before = cells.split(no_q, N + 0, N)[1]
    assert induction.split_code(none_before, N) == 1  # the latest position left with a choice (2, 3, 4, 5 are fixed)


def test_positions_needs_no_evidence_and_other_tasks_are_refused():
    weights = noisy_circuit(2)
    proof = prover.prove(weights, "induction/positions", task="induction")
    assert proof.verdict.accepted and certificate.decode(proof.raw).evidence == {}
    with pytest.raises(prover.ProofError) as refused:
        prover.prove(weights, "induction/positions", task="max")
    assert refused.value.status == "unsupported"

"""The checker's memo: a value derived from exact weights is computed once per process, and a
second check of the same weights gives the same verdict, counts and costs as the first."""

from __future__ import annotations

import numpy as np
import pytest

from compact_proofs.checker import cost, memo
from compact_proofs.checker.errors import CheckError
from compact_proofs.checker.paths import paths
from compact_proofs.checker.weights import model_from_weights
from tests.helpers import check_weights
from tests.models import build

STRATEGIES = ["brute-force", "cubic", "subcubic/max_diff_exact/per_output+chords/max_diff_subproduct"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_second_check_is_the_same_check(strategy):
    from compact_proofs.generator.proving.prover import prove

    weights = build("gaussian", 3, V=5, N=3, D=4, H=2, scale=1.0, biases=True, dtype=np.float32)
    proof = prove(weights, strategy)  # the generator's own work fills the memo
    memo.clear()
    cold = check_weights(weights, strategy, proof.verdict.claimed_correct, _evidence(proof.raw))
    warm = check_weights(weights, strategy, proof.verdict.claimed_correct, _evidence(proof.raw))
    assert cold.accepted and warm.accepted
    assert (cold.verified_correct, cold.flops, cold.checker_ops) == (warm.verified_correct, warm.flops, warm.checker_ops)


def _evidence(raw: bytes) -> dict:
    from compact_proofs.checker import certificate

    return certificate.decode(raw).evidence


def test_different_weights_are_never_served_each_others_values():
    a = build("gaussian", 1, V=4, N=3, D=4, H=2, scale=1.0, biases=False, dtype=np.float32)
    b = {k: v.copy() for k, v in a.items()}
    b["unembed.W_U"][0, 0] = np.nextafter(b["unembed.W_U"][0, 0], np.float32(np.inf))  # one ulp
    pa, pb = paths(model_from_weights(a)), paths(model_from_weights(b))
    assert pa is not pb and not (pa.EUPU.ints == pb.EUPU.ints).all()
    assert paths(model_from_weights(a)) is pa  # the same exact weights: the stored value


def test_stored_arrays_are_read_only():
    p = paths(model_from_weights(build("gaussian", 2, V=4, N=3, D=4, H=2, scale=1.0, biases=False, dtype=np.float64)))
    with pytest.raises(ValueError):
        p.EVOU.ints[0, 0] = 0


def test_replayed_costs_and_uncached_failures():
    calls = []

    def compute():
        calls.append(1)
        cost.add(7, 9)
        return np.zeros(3)

    with cost.counting() as first:
        memo.cached(("test", 1), compute)
    with cost.counting() as second:
        memo.cached(("test", 1), compute)
    assert len(calls) == 1 and (first.flops, first.ops) == (second.flops, second.ops) == (7, 9)

    def fail():
        calls.append(1)
        raise CheckError("resources", "time limit exceeded")

    for _ in range(2):
        with pytest.raises(CheckError):
            memo.cached(("test", 2), fail)
    assert len(calls) == 3


def test_the_store_is_bounded():
    for i in range(memo.MAX_ENTRIES + 10):
        memo.cached(("bounded", i), lambda: i)
    assert len(memo._store) == memo.MAX_ENTRIES and ("bounded", 0) not in memo._store

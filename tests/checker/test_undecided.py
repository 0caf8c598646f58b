"""An unsettled comparison never satisfies an accept condition, on either path, in any strategy.

Each path's precision cap for exact sign decisions is lowered until decisions stop settling;
then nothing undecided may be counted: the verified count stays at most the exact count (from
the reference evaluator in tests/reference), and a claim of the exact count is rejected as soon
as any decision was left open. Subcubic checks make no exact sign decisions (interval bounds,
where NaN and infinities are never accepted: tests/checker/strategies/test_subcubic.py).
"""

from __future__ import annotations

from contextlib import contextmanager
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given

from compact_proofs.checker import enclosure, memo
from compact_proofs.checker.pure import arith
from compact_proofs.checker.pure import check_bytes as pure_check
from compact_proofs.generator.proving.prover import prove
from tests.helpers import check_bytes, encode
from tests.models import build, near_tie_model, tiny_models
from tests.reference.evaluator import exact_correct_count

TIES = ("coarse", "uniform-attention", "tie", "near-tie", "equal-residual")


@contextmanager
def capped(bits: int):
    """Both paths' precision caps set to `bits` (below 64: only exact zeros and single merged
    terms still settle), with an empty memo so that nothing decided under other caps is reused."""
    with patch.object(enclosure, "MAX_PREC", bits), patch.object(arith, "MAX_BITS", bits):
        memo.clear()
        try:
            yield
        finally:
            memo.clear()


def check(path: str, raw: bytes):
    return check_bytes(raw) if path == "fast" else pure_check(raw)


@pytest.mark.parametrize("path", ["fast", "pure"])
@given(weights=tiny_models(max_vocab=4, max_ctx=3, max_inputs=64, kinds=TIES))
def test_brute_force_counts_nothing_undecided(path, weights):
    exact = exact_correct_count(weights)
    with capped(32):
        verdict = check(path, encode(weights, "brute-force", exact))
    assert verdict.verified_correct <= exact
    assert verdict.accepted == (verdict.verified_correct == exact)


@pytest.mark.parametrize("path", ["fast", "pure"])
@pytest.mark.parametrize("strategy", ["cubic", "cubic/reference"])
@given(weights=tiny_models(max_vocab=4, max_ctx=3, max_inputs=64, kinds=TIES))
def test_cubic_accepts_only_settled_claims(path, strategy, weights):
    proof = prove(weights, strategy)  # under the real caps
    with capped(32):
        verdict = check(path, proof.raw)
    assert not verdict.accepted or verdict.verified_correct <= exact_correct_count(weights)


def test_the_pure_brute_force_never_counts_an_unsettled_input(monkeypatch):
    """The independent review's finding: --pure read an unsettled sign as 'correct'."""
    weights = build("gaussian", 4, V=3, N=2, D=3, H=2, scale=1.0, biases=False, dtype=np.float64)
    exact = exact_correct_count(weights)
    assert pure_check(encode(weights, "brute-force", exact)).accepted

    def unsettled(terms, d_head):
        raise ArithmeticError("sign not settled")

    monkeypatch.setattr("compact_proofs.checker.pure.sign_of_exp_sum", unsettled)
    verdict = pure_check(encode(weights, "brute-force", 1))
    assert verdict.verified_correct == 0 and not verdict.accepted


@pytest.mark.parametrize("path", ["fast", "pure"])
@pytest.mark.parametrize("cap", [1 << 14, 64])
def test_a_margin_beyond_the_cap_is_not_counted(path, cap):
    weights = near_tie_model()
    assert exact_correct_count(weights) == 1
    with capped(cap):
        verdicts = [check(path, encode(weights, "brute-force", claim)) for claim in (0, 1, 2)]
    assert [v.verified_correct for v in verdicts] == [1 if cap > 64 else 0] * 3
    assert [v.accepted for v in verdicts] == [True, cap > 64, False]

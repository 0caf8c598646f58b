"""Format v2 on the standard-library second path (checker/pure/transformer.py): its count lies
within the mpmath reference evaluator's, agrees with the fast path's on random and adversarial
tiny models (planted ties, one-ulp near-ties), leaves open what its precisions cannot settle
(counted as not correct), and rejects tampered claims and weights outside the semantics."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compact_proofs.checker import certificate, tasks
from compact_proofs.checker.pure import check_bytes
from compact_proofs.checker.pure import transformer as pure_transformer
from compact_proofs.checker.verify import check
from tests.models import build_v2, tiny_models_v2
from tests.reference.evaluator_v2 import reference


def encode(weights: dict, task: str, claimed: int = 0, total: int | None = None, **overrides) -> bytes:
    V, N = weights["embed.W_E"].shape[0], weights["pos_embed.W_pos"].shape[0]
    size = tasks.resolve(task).domain_size(V, N) if total is None else total
    fields = dict(strategy="brute-force", params={}, claimed_correct=claimed, total=size, weights=weights, evidence={},
                  generator={"name": "test"}, task=task)
    return certificate.encode(**(fields | overrides))


@settings(max_examples=25)
@given(tiny_models_v2(), st.sampled_from(sorted(tasks.TASKS)))
def test_count_is_within_the_reference_and_agrees_with_the_fast_path(weights, task):
    raw = encode(weights, task)
    pure, fast = check_bytes(raw), check(certificate.decode(raw))
    assert pure.accepted and fast.accepted, pure.reason
    correct, unsettled = reference(weights, tasks.resolve(task))
    assert correct - pure.notes["undecided"] <= pure.verified_correct <= correct + unsettled
    assert pure.total == fast.total and pure.weights_digest == fast.weights_digest
    if unsettled == 0 and pure.notes["undecided"] == 0 and fast.notes["undecided"] == 0:
        assert pure.verified_correct == fast.verified_correct == correct


@pytest.mark.parametrize("kind", ["tie", "near-tie", "huge-scores", "uniform-attention"])
@pytest.mark.parametrize("task", sorted(tasks.TASKS))
def test_planted_ties_and_near_ties(kind, task):
    weights = build_v2(kind, 7, V=3, N=4, D=3, E=2, H=2, L=2, scale=1.0, biases=True, dtype=np.float64)
    correct, unsettled = reference(weights, tasks.resolve(task))
    exact = check_bytes(encode(weights, task, claimed=correct))
    assert unsettled == 0 and exact.accepted and exact.verified_correct == correct, exact.reason
    over = check_bytes(encode(weights, task, claimed=correct + 1))
    assert not over.accepted and not over.invalid and over.verified_correct == correct


def test_what_the_precisions_leave_open_is_not_counted(monkeypatch):
    """A float64 one-ulp near-tie is open at 64 bits and settled at 256; with the precisions
    lowered to 8 and 16 bits it stays open and is counted as not correct."""
    weights = build_v2("near-tie", 5, V=3, N=3, D=3, E=2, H=1, L=2, scale=1.0, biases=True, dtype=np.float64)
    correct, _ = reference(weights, tasks.resolve("max"))
    full = check_bytes(encode(weights, "max", claimed=correct))
    assert full.accepted and full.notes["open_at_low_precision"] > 0 and full.notes["undecided"] == 0
    monkeypatch.setattr(pure_transformer, "PRECISIONS", (8, 16))
    coarse = check_bytes(encode(weights, "max", claimed=correct))
    assert not coarse.accepted and coarse.notes["undecided"] > 0 and coarse.verified_correct < correct


def test_the_pure_model_is_the_semantics_forward_pass():
    """At 1024 bits every logit interval is narrow and contains the reference's."""
    from mpmath import iv, libmp

    from tests.reference.evaluator_v2 import _logits

    weights = build_v2("gaussian", 3, V=3, N=3, D=4, E=2, H=2, L=2, scale=1.0, biases=True, dtype=np.float32)
    w = pure_transformer.model({k: certificate.tensor(v) for k, v in weights.items()})
    enclosure = pure_transformer.Enclosure(w, 1024)
    iv.prec = 1200
    for x, logits in enclosure.walk():
        for (lo, hi), ref in zip(logits, _logits(weights, x)):
            a, b = (Fraction(*libmp.to_rational(end)) for end in ref._mpi_)
            assert Fraction(lo, 2**1024) <= b and a <= Fraction(hi, 2**1024) and hi - lo < 2**900


@pytest.mark.parametrize("edit, message", [
    (lambda w: w.update({"blocks.0.ln1.w": np.ones(4, np.float32)}), "LayerNorm"),
    (lambda w: w.update({"blocks.2.attn.W_Q": np.zeros((2, 4, 2), np.float32)}), "blocks.0"),
    (lambda w: w.pop("blocks.1.attn.W_V"), "missing"),
    (lambda w: w.update({"blocks.1.attn.W_K": np.zeros((3, 4, 2), np.float32)}), "shape"),
    (lambda w: w.update({"unembed.W_U": np.zeros((4, 3), np.int64)}), "float32"),
])
def test_weights_outside_the_semantics_are_invalid(edit, message):
    weights = build_v2("gaussian", 1, V=3, N=3, D=4, E=2, H=2, L=2, scale=1.0, biases=False, dtype=np.float32)
    edit(weights)
    verdict = check_bytes(encode(weights, "induction"))
    assert verdict.invalid and not verdict.accepted and message in verdict.reason, verdict.reason


@pytest.mark.parametrize("overrides, invalid", [
    (dict(task="sorting", total=27), True),
    (dict(strategy="cubic"), True),
    (dict(total=27), False),  # d_vocab^n_ctx is not the induction domain's size
    (dict(claimed=16), False),  # above the domain's 15 inputs
])
def test_wrong_claims_tasks_and_strategies_are_rejected(overrides, invalid):
    weights = build_v2("gaussian", 2, V=3, N=3, D=2, E=2, H=1, L=2, scale=1.0, biases=False, dtype=np.float32)
    verdict = check_bytes(encode(weights, **{"task": "induction"} | overrides))
    assert not verdict.accepted and verdict.invalid == invalid, verdict.reason


def test_a_model_beyond_the_pure_limit_is_refused_before_work(monkeypatch):
    weights = build_v2("gaussian", 2, V=3, N=3, D=2, E=2, H=1, L=1, scale=1.0, biases=False, dtype=np.float32)
    monkeypatch.setattr(pure_transformer, "MAX_INPUTS", 26)
    monkeypatch.setattr(pure_transformer, "brute_force", lambda *a, **k: pytest.fail("no work above the limit"))
    verdict = check_bytes(encode(weights, "max"))
    assert verdict.limit and not verdict.accepted


def test_huge_weights_are_settled_by_the_last_precision():
    """The fixed-point precision is absolute: with weights near 1e30 (the independent review's
    example) 1024 bits leave inputs open that 4096 bits settle, as arb does on the fast path."""
    weights = build_v2("huge-scores", 41, V=2, N=3, D=3, E=1, H=1, L=2, scale=1e30, biases=False, dtype=np.float64)
    raw = encode(weights, "induction")
    pure, fast = check_bytes(raw), check(certificate.decode(raw))
    assert pure.notes["open_at_low_precision"] > 0 and pure.notes["undecided"] == 0
    assert pure.verified_correct == fast.verified_correct

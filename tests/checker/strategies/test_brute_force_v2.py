"""Format v2 brute force (1-2 layers, H heads, causal mask, any task) against the mpmath-interval
reference evaluator: never more than the reference's correct inputs plus those it cannot settle,
never fewer than its correct inputs less those the checker reports undecided; planted exact ties
and one-ulp near-ties included. Tampered claims are rejected; a one-layer one-head `max` model
gets the same count as format v1's independent brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compact_proofs.checker import certificate, memo, tasks
from compact_proofs.checker.strategies import brute_force_v2
from compact_proofs.checker.transformer import from_weights
from compact_proofs.checker.verify import check
from tests.models import build, build_v2, tiny_models_v2
from tests.reference.evaluator_v2 import reference


def certify(weights: dict, task: str, claimed: int | None = None, total: int | None = None, **overrides):
    V, N = weights["embed.W_E"].shape[0], weights["pos_embed.W_pos"].shape[0]
    size = tasks.resolve(task).domain_size(V, N) if task in tasks.TASKS else V**N
    fields = dict(strategy="brute-force", params={}, claimed_correct=0 if claimed is None else claimed,
                  total=size if total is None else total, weights=weights, evidence={}, generator={"name": "test"}, task=task)
    return check(certificate.decode(certificate.encode(**(fields | overrides))))


@settings(max_examples=20)
@given(tiny_models_v2(), st.sampled_from(sorted(tasks.TASKS)))
def test_count_is_within_the_reference_on_random_and_adversarial_models(weights, task):
    verdict = certify(weights, task)
    assert verdict.accepted, verdict.reason
    correct, unsettled = reference(weights, tasks.resolve(task))
    assert correct - verdict.notes["undecided"] <= verdict.verified_correct <= correct + unsettled


@pytest.mark.parametrize("kind", ["tie", "near-tie", "coarse", "uniform-attention"])
def test_planted_ties_and_near_ties_two_layers(kind):
    weights = build_v2(kind, 3, V=3, N=4, D=3, E=2, H=2, L=2, scale=1.0, biases=True, dtype=np.float32)
    verdict = certify(weights, "induction")
    correct, unsettled = reference(weights, tasks.resolve("induction"))
    assert verdict.accepted and unsettled == 0
    assert verdict.verified_correct == correct


def test_near_ties_are_settled_in_arb(monkeypatch):
    """A one-ulp near-tie leaves float balls open; arb settles them (and a lowered precision list
    leaves them undecided, counted as not correct)."""
    weights = build_v2("near-tie", 5, V=3, N=3, D=3, E=2, H=1, L=2, scale=1.0, biases=True, dtype=np.float64)
    verdict = certify(weights, "max")
    correct, _ = reference(weights, tasks.resolve("max"))
    assert verdict.notes["open_after_float"] > 0 and verdict.notes["decided_in_arb"] == verdict.notes["open_after_float"]
    assert verdict.verified_correct == correct
    monkeypatch.setattr(brute_force_v2, "MAX_EXACT", 2)  # only two open inputs are kept for arb: the rest undecided
    memo.clear()
    capped = certify(weights, "max")
    assert capped.notes["decided_in_arb"] <= 2 and capped.notes["undecided"] == verdict.notes["open_after_float"] - capped.notes["decided_in_arb"]
    assert capped.verified_correct <= correct
    monkeypatch.setattr(brute_force_v2, "PRECISIONS", (8,))
    memo.clear()  # the count of these weights is memoised
    low = certify(weights, "max")
    assert low.notes["undecided"] > 0 and low.verified_correct <= correct


def test_one_layer_max_agrees_with_format_v1():
    for seed in range(4):
        weights = build("gaussian", seed, V=4, N=3, D=4, H=2, scale=1.0, biases=True, dtype=np.float32)
        v1 = check(certificate.decode(certificate.encode(strategy="brute-force", params={}, claimed_correct=0, total=64,
                                                         weights=weights, evidence={}, generator={})))
        assert certify(weights, "max").verified_correct == v1.verified_correct


def test_tampered_claims_are_rejected():
    weights = build_v2("gaussian", 1, V=3, N=4, D=4, E=2, H=2, L=2, scale=1.0, biases=False, dtype=np.float32)
    verdict = certify(weights, "induction")
    assert verdict.accepted
    assert not certify(weights, "induction", claimed=verdict.verified_correct + 1).accepted
    assert certify(weights, "induction", claimed=verdict.verified_correct).accepted
    wrong_total = certify(weights, "induction", claimed=0, total=3**4)
    assert not wrong_total.accepted and "domain" in wrong_total.reason
    for task, overrides, what in (("sorting", {}, "unknown task"), ("induction", dict(strategy="cubic"), "brute-force"),
                                  ("induction", dict(evidence={"hint": 1}), "no evidence")):
        bad = certify(weights, task, **overrides)
        assert not bad.accepted and bad.invalid and what in bad.reason, bad.reason


@pytest.mark.parametrize("edit, message", [
    (lambda w: w.update({"blocks.0.mlp.W_in": np.zeros((4, 4), np.float32)}), "MLP"),
    (lambda w: w.update({"blocks.2.attn.W_Q": np.zeros((2, 4, 2), np.float32)}), "layers"),
    (lambda w: w.pop("blocks.1.attn.W_K"), "missing"),
    (lambda w: w.update({"blocks.1.attn.W_K": np.zeros((3, 4, 2), np.float32)}), "inconsistent"),
])
def test_weights_outside_the_semantics_are_invalid(edit, message):
    weights = build_v2("gaussian", 1, V=3, N=4, D=4, E=2, H=2, L=2, scale=1.0, biases=False, dtype=np.float32)
    edit(weights)
    verdict = certify(weights, "induction")
    assert verdict.invalid and message in verdict.reason, verdict.reason


def test_from_weights_reads_both_layers_and_heads():
    model = from_weights(build_v2("gaussian", 1, V=3, N=4, D=4, E=2, H=2, L=2, scale=1.0, biases=False, dtype=np.float32))
    assert (model.n_layers, model.n_heads, model.d_head, model.d_model) == (2, 2, 2, 4)


def test_a_token_absent_from_the_input_does_not_shift_its_softmax():
    """Review 3, finding 1: the first layer's softmax was shifted by the largest score over every
    (token, position) key, absent tokens included; one token with a key score 2000 above the rest
    underflowed every other input's weights, which then went undecided (sound, but a false REJECT).
    Here the argmax is always the last token, so exactly the inputs whose last token is their
    maximum are correct."""
    V, N, D = 5, 7, 2
    W_E = np.zeros((V, D))
    W_E[:, 0] = np.arange(V)
    W_E[V - 1, 1] = 2000.0
    weights = {"embed.W_E": W_E, "pos_embed.W_pos": np.zeros((N, D)), "unembed.W_U": np.array([2.0 * np.arange(V), np.zeros(V)]),
               "unembed.b_U": -np.arange(V, dtype=float) ** 2, "blocks.0.attn.W_Q": np.zeros((D, 1)),
               "blocks.0.attn.b_Q": np.ones(1), "blocks.0.attn.W_K": np.array([[0.0], [1.0]]),
               "blocks.0.attn.W_V": np.array([[1.0], [0.0]]), "blocks.0.attn.W_O": np.array([[0.01, 0.0]])}
    truth = sum((v + 1) ** (N - 1) for v in range(V))
    verdict = certify(weights, "max", claimed=truth)
    assert verdict.accepted and verdict.verified_correct == truth and verdict.notes["undecided"] == 0, verdict.notes


def test_tables_beyond_the_limit_are_refused_before_work(monkeypatch):
    weights = build_v2("gaussian", 1, V=3, N=4, D=4, E=2, H=2, L=2, scale=1.0, biases=False, dtype=np.float32)
    monkeypatch.setattr(brute_force_v2, "MAX_TABLE", 10)
    verdict = certify(weights, "induction")
    assert verdict.limit and "tables" in verdict.reason

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


# --- memory: planned from the dimensions, before any conversion, and never exceeded -----------------


def _peak(run) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("V, N, D, E, H, L", [(2, 9, 64, 8, 1, 2), (2, 8, 8, 64, 2, 2), (3, 6, 32, 32, 2, 1), (2, 8, 8, 8, 4, 2),
                                              (12, 3, 8, 8, 1, 2)])
def test_a_check_holds_no_more_than_its_plan(monkeypatch, V, N, D, E, H, L):
    """The plan (weights, first-layer tables, one pass) bounds the measured peak of numpy's
    allocations over the whole brute force, with passes made small so that there are several."""
    monkeypatch.setattr(brute_force_v2, "MAX_PASS_BYTES", 1 << 18)
    model = from_weights(build_v2("gaussian", 1, V=V, N=N, D=D, E=E, H=H, L=L, scale=0.3, biases=True, dtype=np.float32))
    dims = brute_force_v2.dims_of(model)
    free, need = brute_force_v2.plan(dims)
    assert free < N  # several passes
    peak = _peak(lambda: brute_force_v2.count_correct(model, tasks.resolve("max"), lambda *a: None))
    assert peak <= need, (peak, need)


def test_a_pass_is_sized_by_its_bytes_not_only_its_inputs():
    """The issue's certificate: V = 2, n_ctx = 32, d_model = 4096 (within every format limit) had
    passes of 2^15 inputs, 32 GiB of arrays; its passes now fit MAX_PASS_BYTES."""
    dims = {"V": 2, "N": 32, "D": 4096, "E": 1, "H": 1, "L": 1}
    free, need = brute_force_v2.plan(dims)
    assert 2**free * brute_force_v2.bytes_per_input(2, 32, 4096, 1) <= brute_force_v2.MAX_PASS_BYTES and free < 15
    assert need <= brute_force_v2.MAX_MEMORY


def test_above_the_memory_budget_is_a_limit_before_any_conversion(monkeypatch):
    from compact_proofs.checker import transformer

    weights = build_v2("gaussian", 1, V=3, N=4, D=4, E=2, H=2, L=2, scale=1.0, biases=False, dtype=np.float32)
    monkeypatch.setattr(brute_force_v2, "MAX_MEMORY", 1 << 10)
    monkeypatch.setattr(transformer, "from_weights", lambda w: pytest.fail("converted before the limit"))
    verdict = certify(weights, "max")
    assert verdict.status == "limit" and "MiB" in verdict.reason


def test_the_issues_wide_certificate_is_checked_in_bounded_memory(tmp_path):
    """Before: MemoryError (internal error, exit 1) allocating 32 GiB. Now its passes are small;
    it runs until --max-seconds stops it (exit 4), holding well under a GiB (also not a list of its
    2^27 pass prefixes, which the check once built before its first pass)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    rng = np.random.default_rng(0)
    V, N, D = 2, 32, 4096
    weights = {"embed.W_E": rng.normal(size=(V, D)).astype(np.float32), "pos_embed.W_pos": rng.normal(size=(N, D)).astype(np.float32),
               "unembed.W_U": rng.normal(size=(D, V)).astype(np.float32)}
    weights |= {f"blocks.0.attn.W_{x}": rng.normal(size=(1, D, 1)).astype(np.float32) for x in "QKV"}
    weights["blocks.0.attn.W_O"] = rng.normal(size=(1, 1, D)).astype(np.float32)
    path = tmp_path / "wide.msgpack"
    path.write_bytes(certificate.encode(strategy="brute-force", params={}, claimed_correct=0, total=V**N, weights=weights,
                                        evidence={}, generator={"name": "test"}, task="max"))
    assert path.stat().st_size < 1 << 20
    script = ("import resource, subprocess, sys\n"
              f"done = subprocess.run([sys.executable, '-m', 'compact_proofs.checker', {str(path)!r}, '--max-seconds', '4'], "
              "capture_output=True, text=True)\n"
              "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, repr(done.stdout))\n")
    root = Path(__file__).resolve().parents[3]
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(root)})
    code, max_rss_kb, stdout = run.stdout.split(" ", 2)
    assert int(code) == 4 and "time limit" in stdout, run.stdout + run.stderr
    assert int(max_rss_kb) < 1 << 20  # KiB: under a GiB (passes planned at 1 GiB; the prefixes are iterated, not listed)


# --- open inputs: decided in arb well beyond what the pure path can reach ---------------------------


def near_tie_max_model(V: int, N: int) -> dict:
    """Attention on the largest token, logits 1 + 2^-58 (attention on o): every margin is about
    2^-58, below float64's resolution of the common 1, so the float balls leave every input open;
    arb settles each at 64 bits. Every input is correct."""
    D, E = 2 * V + 1, V
    W_E = np.zeros((V, D), np.float32)
    W_E[np.arange(V), np.arange(V)], W_E[:, 2 * V] = 1, 1
    W_Q, W_K, W_V = (np.zeros((1, D, E), np.float32) for _ in range(3))
    W_Q[0, 2 * V, 0] = 1
    W_K[0, np.arange(V), 0] = 20.0 * np.arange(V) * np.sqrt(E)
    W_V[0, np.arange(V), np.arange(V)] = 1
    W_O = np.zeros((1, E, D), np.float32)
    W_O[0, np.arange(V), V + np.arange(V)] = 1
    W_U = np.zeros((D, V), np.float32)
    W_U[2 * V], W_U[V + np.arange(V), np.arange(V)] = 1, np.float32(2.0**-58)
    return {"embed.W_E": W_E, "pos_embed.W_pos": np.zeros((N, D), np.float32), "blocks.0.attn.W_Q": W_Q,
            "blocks.0.attn.W_K": W_K, "blocks.0.attn.W_V": W_V, "blocks.0.attn.W_O": W_O, "unembed.W_U": W_U}


def test_more_than_4096_open_inputs_are_decided_as_on_the_pure_path():
    """6561 inputs, every one open after the float pass: the fast path had kept 4096 for arb and
    rejected the true claim of all 6561, which --pure accepts; both now accept it."""
    from compact_proofs.checker.pure import MAX_INPUTS as PURE_MAX_INPUTS
    from compact_proofs.checker.pure import check_bytes as pure_check

    assert brute_force_v2.MAX_EXACT >= 4 * PURE_MAX_INPUTS  # every domain --pure checks is decided in full
    weights = near_tie_max_model(3, 8)
    memo.clear()
    verdict = certify(weights, "max", claimed=3**8)
    assert verdict.notes["open_after_float"] == 3**8 > 4096
    assert verdict.accepted and verdict.notes["undecided"] == 0
    raw = certificate.encode(strategy="brute-force", params={}, claimed_correct=3**8, total=3**8, weights=weights, evidence={},
                             generator={"name": "test"}, task="max")
    pure = pure_check(raw)
    assert pure.accepted and pure.verified_correct == verdict.verified_correct

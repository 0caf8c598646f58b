"""Brute force: the verified count is the exact count, on benign and adversarial tiny models."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import check_weights, total_inputs
from tests.models import build, near_tie_model, tiny_models
from tests.reference.evaluator import exact_correct_count


@given(tiny_models())
def test_verified_count_equals_exact_count(weights):
    exact = exact_correct_count(weights)
    verdict = check_weights(weights, claimed=exact)
    assert verdict.accepted, verdict.reason
    assert verdict.verified_correct == exact
    assert verdict.notes["undecided"] == 0


@given(tiny_models(max_inputs=200))
def test_a_claim_one_above_the_exact_count_is_rejected(weights):
    exact = exact_correct_count(weights)
    verdict = check_weights(weights, claimed=exact + 1)
    assert not verdict.accepted and not verdict.invalid


def test_planted_ties_are_wrong_and_decided_exactly():
    # Two outputs with equal unembedding: every input whose label is one of them is a tie.
    weights = build("tie", 7, V=4, N=3, D=4, H=2, scale=1.0, biases=False, dtype=np.float32)
    exact = exact_correct_count(weights)
    verdict = check_weights(weights, claimed=exact)
    assert verdict.accepted and verdict.verified_correct == exact < total_inputs(weights)


@pytest.mark.parametrize("direction", [np.inf, -np.inf])
def test_one_ulp_near_tie_goes_to_the_exact_path(direction):
    # Outputs 1 and 2 dominate every other logit and differ by one float64 ulp of b_U: below
    # what the float filter resolves, so the exact path decides every input labelled 1 or 2.
    weights = build("gaussian", 3, V=4, N=3, D=4, H=2, scale=0.1, biases=True, dtype=np.float64)
    weights["unembed.W_U"][:, 1] = weights["unembed.W_U"][:, 2]
    weights["unembed.b_U"][:] = 0
    weights["unembed.b_U"][1:3] = 10.0
    weights["unembed.b_U"][1] = np.nextafter(10.0, direction)
    verdict = check_weights(weights)
    assert verdict.verified_correct == exact_correct_count(weights)
    assert verdict.notes["exact_decisions"] > 0


def test_scores_that_overflow_float_exp():
    weights = build("huge-scores", 11, V=5, N=3, D=6, H=3, scale=3.0, biases=False, dtype=np.float64)
    verdict = check_weights(weights)
    assert verdict.verified_correct == exact_correct_count(weights)


def test_changed_weights_are_reverified_not_trusted(trained_k4):
    verdict = check_weights(trained_k4)
    assert verdict.accepted
    tampered = {k: v.copy() for k, v in trained_k4.items()}
    tampered["unembed.b_U"] = np.zeros(64, dtype=np.float32)
    tampered["unembed.b_U"][0] = 1e3  # token 0 now wins everywhere
    again = check_weights(tampered, claimed=verdict.verified_correct)
    assert not again.accepted and again.verified_correct < verdict.verified_correct



def test_an_input_the_exact_path_cannot_settle_counts_as_wrong(monkeypatch):
    """If the exact sign decision gives up (precision limit), the input is wrong, and reported."""
    from compact_proofs.checker import memo
    from compact_proofs.checker.errors import CheckError
    from compact_proofs.checker.strategies import brute_force

    weights = near_tie_model()  # margins of relative size 2^-80: beyond the float filter
    monkeypatch.setattr(brute_force, "exp_sum_sign", lambda *args: -1)  # every exact decision: wrong
    all_wrong = check_weights(weights)
    assert all_wrong.notes["signs_decided_exactly"] > 0 and all_wrong.notes["undecided"] == 0

    def give_up(*args):
        raise CheckError("enclosure", "precision limit reached")

    monkeypatch.setattr(brute_force, "exp_sum_sign", give_up)
    memo.clear()  # the same weights again, under a patched decision: not the stored count
    verdict = check_weights(weights)
    assert verdict.verified_correct == all_wrong.verified_correct
    assert verdict.notes["undecided"] == verdict.notes["signs_decided_exactly"] == all_wrong.notes["signs_decided_exactly"]


@pytest.mark.parametrize("kind", ["tie", "equal-residual", "uniform-attention", "coarse"])
def test_exact_ties_are_decided_in_bulk_without_a_sign_evaluation(monkeypatch, kind):
    """Exact zeros are found by residues (no arb call at all) and give the exact count."""
    from compact_proofs.checker.strategies import brute_force

    weights = build(kind, 3, V=5, N=3, D=4, H=2, scale=1.0, biases=True, dtype=np.float32)
    monkeypatch.setattr(brute_force, "exp_sum_sign", lambda *args: pytest.fail("a sign was evaluated"))
    verdict = check_weights(weights)
    if verdict.notes["signs_decided_exactly"] == 0:
        assert verdict.verified_correct == exact_correct_count(weights)
    assert kind != "tie" or verdict.notes["exact_zeros"] > 0


@pytest.mark.parametrize("chunk", [1, 16, 1 << 19])  # blocks of 0, 1 and all trailing positions
def test_every_input_reaches_the_filter_with_its_own_margin_and_weight(monkeypatch, chunk):
    """For each input x and its label m, the filter sees margin = min_o sum_i w_i (T_i[x_i, m] -
    T_i[x_i, o]) (as a float sum) with weight = 2 sum_i w_i: checked against an independent
    evaluation from the same tables, whatever the split into a looped prefix and a vectorised block."""
    import itertools

    from compact_proofs.checker import float_filter
    from compact_proofs.checker.enclosure import exp_table
    from compact_proofs.checker.strategies import brute_force
    from compact_proofs.checker.weights import model_from_weights

    weights = build("gaussian", 5, V=4, N=4, D=4, H=2, scale=1.0, biases=True, dtype=np.float32)
    seen = []
    original = float_filter.Threshold.classify
    monkeypatch.setattr(float_filter.Threshold, "classify", lambda self, s, w: seen.append((s.copy(), w.copy())) or original(self, s, w))
    monkeypatch.setattr(brute_force, "CHUNK", chunk)
    verdict = check_weights(weights)
    assert verdict.verified_correct == exact_correct_count(weights)

    p = brute_force.paths(model_from_weights(weights))
    _, (evou, pvou, eupu) = brute_force._scaled_floats([p.EVOU, p.PVOU, p.EUPU])
    w_tok, w_pos = exp_table(p.EQKE, p.d_head), exp_table(p.EQKP, p.d_head)
    V, N = 4, 4
    margins = np.concatenate([s for s, _ in seen])
    weight_sums = np.concatenate([w for _, w in seen])
    assert len(margins) == V**N
    # inputs in the checker's order: query outermost, then positions 0 .. N-2 (the block innermost)
    inputs = [x + (q,) for q in range(V) for x in itertools.product(range(V), repeat=N - 1)]
    for x, margin, weight in zip(inputs, margins, weight_sums):
        q, m = x[-1], max(x)
        w = [w_tok[q][t] * w_pos[q][i] for i, t in enumerate(x)]
        assert abs(weight - 2 * sum(w)) <= 1e-12 * weight
        logit = [sum(w[i] * (evou[t, o] + pvou[i, o] + eupu[q, o]) for i, t in enumerate(x)) for o in range(V)]
        true = logit[m] - max(logit[o] for o in range(V) if o != m)
        assert abs(margin - true) <= 1e-12 * weight


@pytest.mark.parametrize("spare", [0, -1])
def test_the_input_limit_is_checked_first(monkeypatch, spare):
    from compact_proofs.checker.strategies import brute_force

    weights = build("gaussian", 1, V=3, N=3, D=4, H=2, scale=1.0, biases=False, dtype=np.float32)
    monkeypatch.setattr(brute_force, "MAX_INPUTS", 27 + spare)
    verdict = check_weights(weights, claimed=0)
    assert verdict.accepted == (spare == 0)
    if spare:
        assert verdict.reason == "brute-force: 27 inputs exceed the brute-force limit 26"


@given(st.lists(st.integers(-(2**70), 2**70), min_size=1, max_size=6), st.integers(-60, 10))
def test_scaled_floats_are_the_exact_tables_shifted_below_one(values, exp):
    """One power of two scales every table so that its largest entry lies in [1/2, 1): signs and
    ratios are unchanged, and each float is the nearest to its exact scaled value."""
    from fractions import Fraction

    from compact_proofs.checker.exact import Dyadic
    from compact_proofs.checker.strategies.brute_force import _scaled_floats

    tables = [Dyadic(np.array([values], dtype=object), exp), Dyadic(np.array([[v // 3 for v in values]], dtype=object), exp - 2)]
    _, floats = _scaled_floats(tables)
    exact = [[Fraction(v) * Fraction(2) ** exp for v in values], [Fraction(v // 3) * Fraction(2) ** (exp - 2) for v in values]]
    top = max(abs(x) for row in exact for x in row)
    if top == 0:
        assert all((f == 0).all() for f in floats)
        return
    scale = next(Fraction(2) ** -k for k in range(-400, 400) if Fraction(1, 2) <= top * Fraction(2) ** -k < 1)
    for f, row in zip(floats, exact):
        assert f.ravel().tolist() == [float(x * scale) for x in row]

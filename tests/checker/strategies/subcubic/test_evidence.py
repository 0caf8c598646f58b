"""What a subcubic certificate's evidence must look like, and what the checker reports about it."""

from __future__ import annotations

import numpy as np
import pytest

from compact_proofs.checker.strategies import subcubic
from compact_proofs.generator.proving.strategies import REGISTRY
from tests.helpers import check_bytes, encode

CHORDS = "subcubic/max_diff_exact/per_output+chords/max_diff"
ONE_ANCHOR = "subcubic/mean_query+max_diff/mean_query+diff/max_diff_subproduct"
NO_ANCHOR = "subcubic/max_diff/drop_average_query_per_output_logit_reasoning/svd"
TIERS = "subcubic/mean_query+max_diff_exact_per_max/query_slot+ov_tiers+levels/exact_EQKE+max_diff_exact"


def draft(weights, variant):
    d = REGISTRY[variant](weights, lambda *a: None)
    return dict(d.evidence), d.claimed_correct


@pytest.mark.parametrize("variant", [CHORDS, ONE_ANCHOR, NO_ANCHOR, TIERS])
def test_the_generated_certificate_is_accepted_with_exactly_its_claim(small_trained, variant):
    weights, exact = small_trained
    evidence, claimed = draft(weights, variant)
    progress = []
    from compact_proofs.checker import certificate
    from compact_proofs.checker.verify import check

    verdict = check(certificate.decode(encode(weights, variant, claimed, evidence)), lambda *a: progress.append(a))
    assert verdict.accepted and 0 < verdict.verified_correct == claimed <= exact
    valid = subcubic.valid_cells(12, 4)
    assert verdict.notes == {"cells": int(valid.sum()), "counted_cells": int((evidence["claims"] < 0).sum())}
    assert [p for p in progress if p[0] == "subcubic"] == [("subcubic", 0, 2), ("subcubic", 1, 2), ("subcubic", 2, 2)]


def corrupt(evidence, key, index, value):
    out = dict(evidence, **{key: evidence[key].copy()})
    out[key][index] = value
    return out


GAPS = "evidence: every gap must lie in [1, max(m, 1)]"
EMPTY = "evidence: gaps and claims of cells that hold no inputs must be 0"
ANCHORS = f"evidence: anchors must be 1 to {subcubic.MAX_ANCHORS} increasing values in [0, 1] per (m, c)"


@pytest.mark.parametrize("tamper, reason", [
    (lambda e: corrupt(e, "gaps", (3, 5, 1), 0), GAPS),
    (lambda e: corrupt(e, "gaps", (3, 5, 1), 6), GAPS),
    (lambda e: corrupt(e, "gaps", (0, 0, 0), 2), GAPS),  # m = 0: the only gap is 1
    (lambda e: corrupt(e, "gaps", (5, 3, 1), 1), EMPTY),  # q > m holds no inputs
    (lambda e: corrupt(e, "claims", (5, 3, 1), -1.0), EMPTY),
    (lambda e: corrupt(e, "claims", (0, 0, 1), -1.0), EMPTY),  # m = 0 with a non-max token
    (lambda e: corrupt(e, "anchors", (2, 1, 0), 1.5), ANCHORS),
    (lambda e: corrupt(e, "anchors", (2, 1, 0), -0.25), ANCHORS),
    (lambda e: corrupt(e, "anchors", (2, 1, 1), e["anchors"][2, 1, 0]), ANCHORS),  # not strictly increasing
    (lambda e: dict(e, anchors=np.broadcast_to(np.linspace(0, 1, subcubic.MAX_ANCHORS + 1), e["anchors"].shape[:2] + (subcubic.MAX_ANCHORS + 1,)).copy()), ANCHORS),
])
def test_malformed_evidence_is_an_invalid_certificate(small_trained, tamper, reason):
    weights, _ = small_trained
    evidence, claimed = draft(weights, CHORDS)
    verdict = check_bytes(encode(weights, CHORDS, claimed, tamper(evidence)))
    assert verdict.invalid and not verdict.accepted and verdict.reason == reason


LEVELS = (f"evidence: levels must be 1 to {subcubic.MAX_LEVELS} values in [0, 1] per (m, c) and tier, "
          "non-decreasing along the levels")


@pytest.mark.parametrize("tamper, reason", [
    (lambda e: corrupt(e, "levels", (2, 1, 0, 0), 1.5), LEVELS),
    (lambda e: corrupt(e, "levels", (2, 1, 0, 1), -0.25), LEVELS),
    (lambda e: corrupt(e, "levels", (2, 1, 1, 0), e["levels"][2, 1, 0, 0] - 2.0**-40) if e["levels"][2, 1, 0, 0] > 0
     else corrupt(e, "levels", (2, 1, 0, 0), e["levels"][2, 1, 1, 0] + 2.0**-40), LEVELS),  # decreasing along the levels
    (lambda e: dict(e, levels=np.zeros((12, 4, subcubic.MAX_LEVELS + 1, 3))), LEVELS),
    (lambda e: dict(e, levels=np.zeros((12, 4, 0, 3))), LEVELS),
    (lambda e: dict(e, levels=np.zeros((12, 4, 2, 2))), "evidence: levels must be a <f8 tensor of shape [12, 4, None, 3], got <f8 [12, 4, 2, 2]"),
    (lambda e: {k: v for k, v in e.items() if k != "levels"}, None),
])
def test_malformed_levels_are_an_invalid_certificate(small_trained, tamper, reason):
    """One to MAX_LEVELS levels per (m, c) and tier (three tiers beyond the first at d_vocab 12:
    widths 1, 2, 4), in [0, 1], non-decreasing along the levels; every other shape is refused."""
    weights, _ = small_trained
    evidence, claimed = draft(weights, TIERS)
    assert evidence["levels"].shape[:2] == (12, 4) and evidence["levels"].shape[3] == 3
    verdict = check_bytes(encode(weights, TIERS, claimed, tamper(evidence)))
    assert verdict.invalid and not verdict.accepted
    assert verdict.reason == reason if reason else "levels" in verdict.reason


def test_the_most_levels_allowed_are_valid_and_levels_only_move_the_bound(small_trained):
    """Any levels make a valid certificate: with the all-zero and all-one levels (most cells then
    rely on the excess or the merged table) the claims made for other levels are either still
    established, never above the exact count, or a cell is named whose claim is below the bound."""
    weights, exact = small_trained
    evidence, claimed = draft(weights, TIERS)
    for levels in (np.zeros((12, 4, subcubic.MAX_LEVELS, 3)), np.ones((12, 4, 1, 3))):
        verdict = check_bytes(encode(weights, TIERS, claimed, dict(evidence, levels=levels)))
        assert not verdict.invalid, verdict.reason
        assert verdict.verified_correct <= exact if verdict.accepted else "below the bound the checker derives" in verdict.reason


def test_the_most_anchors_allowed_are_accepted(small_trained):
    weights, _ = small_trained
    evidence, _ = draft(weights, CHORDS)
    evidence["anchors"] = np.broadcast_to(np.linspace(0, 1, subcubic.MAX_ANCHORS), (12, 4, subcubic.MAX_ANCHORS)).copy()
    verdict = check_bytes(encode(weights, CHORDS, 0, evidence))
    assert not verdict.invalid, verdict.reason


def test_one_anchor_variants_take_exactly_one_anchor(small_trained):
    weights, _ = small_trained
    evidence, claimed = draft(weights, ONE_ANCHOR)
    evidence["anchors"] = np.concatenate([evidence["anchors"] / 2, evidence["anchors"] / 2 + 0.5], axis=2)
    verdict = check_bytes(encode(weights, ONE_ANCHOR, claimed, evidence))
    assert verdict.invalid and verdict.reason.startswith("evidence: anchors must be a <f8 tensor of shape [12, 4, 1]")


@pytest.mark.parametrize("limit, accepted", [(12 * 12 * 4, True), (12 * 12 * 4 - 1, False)])
def test_the_cell_limit_is_checked_before_any_work(small_trained, monkeypatch, limit, accepted):
    weights, _ = small_trained
    evidence, claimed = draft(weights, NO_ANCHOR)
    monkeypatch.setattr(subcubic, "MAX_CELLS", limit)
    verdict = check_bytes(encode(weights, NO_ANCHOR, claimed, evidence))
    assert verdict.accepted == accepted
    if not accepted:
        assert verdict.reason == f"subcubic: {12 * 12 * 4} cells exceed the subcubic limit {limit}"


def test_a_claim_equal_to_the_derived_bound_holds_and_one_below_is_named(small_trained, monkeypatch):
    """claim >= derived is the accept test: equality holds; below it the cell is named in the reason."""
    weights, _ = small_trained
    evidence, claimed = draft(weights, CHORDS)
    counted = evidence["claims"] < 0
    derived = evidence["claims"][counted].astype(np.float64)
    monkeypatch.setattr(subcubic.Bounds, "cell_bounds", lambda self, *a: derived.copy())
    assert check_bytes(encode(weights, CHORDS, claimed, evidence)).accepted
    derived[3] = np.nextafter(derived[3], np.inf)  # the bound now just above the fourth claim
    q, m, c = (int(x[3]) for x in np.nonzero(counted))
    verdict = check_bytes(encode(weights, CHORDS, claimed, evidence))
    assert not verdict.accepted and verdict.reason == (
        f"subcubic: claim {float(evidence['claims'][q, m, c])!r} for cell (q={q}, m={m}, c={c}, gap {evidence['gaps'][q, m, c]}) "
        f"is below the bound the checker derives ({float(derived[3])!r})")


@pytest.mark.parametrize("variant", [CHORDS, ONE_ANCHOR, NO_ANCHOR, TIERS])
def test_a_one_token_model_is_certified_in_full(variant):
    from tests.models import build

    weights = build("gaussian", 2, V=1, N=3, D=2, H=2, scale=1.0, biases=True, dtype=np.float32)
    evidence, claimed = draft(weights, variant)
    verdict = check_bytes(encode(weights, variant, claimed, evidence))
    assert verdict.accepted and verdict.verified_correct == claimed == 1


def test_smallest_gaps_is_the_least_counted_gap_per_max_and_count():
    rng = np.random.default_rng(0)
    V, N = 6, 3
    gaps = rng.integers(1, V, size=(V, V, N))
    counted = rng.random((V, V, N)) < 0.3
    g_star = subcubic.smallest_gaps(gaps, counted)
    for m in range(V):
        for c in range(N):
            chosen = [gaps[q, m, c] for q in range(V) if counted[q, m, c]]
            assert g_star[m, c] == (min(chosen) if chosen else 1)

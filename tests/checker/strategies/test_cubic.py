"""The cubic proof: sound on benign and adversarial tiny models, and every strengthened claim is rejected."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compact_proofs.checker import certificate
from compact_proofs.checker.strategies.cubic import cases_of, count_cases
from compact_proofs.generator.proving.prover import prove
from compact_proofs.generator.proving.strategies import REGISTRY
from tests.helpers import check_bytes, encode
from tests.models import build, tiny_models
from tests.reference.evaluator import exact_correct_count

VARIANTS = ("cubic", "cubic/reference")


@pytest.mark.parametrize("strategy", VARIANTS)
@given(weights=tiny_models(max_inputs=400))
def test_verified_bound_never_exceeds_exact_accuracy(strategy, weights):
    proof = prove(weights, strategy)
    assert proof.verdict.accepted, proof.verdict.reason
    assert proof.verdict.verified_correct <= exact_correct_count(weights)


@given(weights=tiny_models(max_inputs=400, kinds=("gaussian", "coarse", "tie", "equal-residual")))
def test_tight_variant_dominates_reference_and_both_stay_below_brute_force(weights):
    tight, reference = (prove(weights, s).verdict.verified_correct for s in VARIANTS)
    brute = prove(weights, "brute-force").verdict.verified_correct
    assert reference <= tight <= brute


@pytest.fixture(scope="module")
def trained(small_trained):
    """A real cubic certificate's model (d_vocab 12, K=4) that checks in well under a second."""
    return small_trained[0]


def draft(weights, strategy):
    return REGISTRY[strategy](weights, lambda *a: None)


@pytest.mark.parametrize("strategy", VARIANTS)
def test_real_model_certificate_is_tight_to_one_ulp_per_claim(trained, strategy):
    d = draft(trained, strategy)
    proof = prove(trained, strategy)
    assert proof.verdict.accepted and proof.verdict.verified_correct > 0
    claims = d.evidence["claims"]
    cases = np.concatenate([cases_of(m, 4) for m in range(12)]).tolist()
    rng = np.random.default_rng(0)
    for index in rng.choice(len(claims), size=12, replace=False):
        tampered = dict(d.evidence, claims=claims.copy())
        tampered["claims"][index] = np.nextafter(claims[index], np.float32(-np.inf))
        verdict = check_bytes(encode(trained, strategy, 0, tampered))
        m, q, c, k = cases[index]
        assert not verdict.accepted and verdict.reason == (
            f"cubic: claim {float(tampered['claims'][index])!r} for case (m={m}, q={q}, c={c}, k={k}) "
            "is not established: below the bound the checker derives"), index


@pytest.mark.parametrize("strategy", VARIANTS)
def test_one_more_token_in_g_is_rejected(trained, strategy):
    d = draft(trained, strategy)
    claims = d.evidence["claims"]
    cases = np.concatenate([cases_of(m, 4) for m in range(12)]).tolist()
    unproved = [i for i, (m, q, c, k) in enumerate(cases) if c > 0 and claims[i] >= 0]
    assert unproved
    for index in unproved[:5]:
        tampered = dict(d.evidence, claims=claims.copy())
        tampered["claims"][index] = np.float32(-1e-30)
        assert not check_bytes(encode(trained, strategy, 0, tampered)).accepted


@pytest.mark.parametrize("strategy", VARIANTS)
def test_count_plus_one_is_rejected(trained, strategy):
    proof = prove(trained, strategy)
    body = certificate.decode(proof.raw)
    raw = encode(trained, strategy, body.claimed_correct + 1, body.evidence)
    verdict = check_bytes(raw)
    assert not verdict.accepted and verdict.verified_correct == body.claimed_correct


@given(st.integers(0, 2**32 - 1))
def test_garbage_candidates_are_rejected_or_sound(seed):
    weights = build("gaussian", seed, V=5, N=3, D=4, H=3, scale=1.0, biases=False, dtype=np.float32)
    d = draft(weights, "cubic")
    rng = np.random.default_rng(seed)
    cand = d.evidence["candidates"]
    m_of_pair = np.repeat(np.arange(5), np.arange(1, 6))[:, None]
    garbage = (m_of_pair + rng.integers(1, 5, size=cand.shape)) % 5  # any outputs other than m
    verdict = check_bytes(encode(weights, "cubic", 0, dict(d.evidence, candidates=garbage)))
    if verdict.accepted:
        assert verdict.verified_correct <= exact_correct_count(weights)


@pytest.mark.parametrize(
    "edit",
    [
        lambda e: e.update(claims=e["claims"][:-1]),
        lambda e: e.update(claims=e["claims"].astype(np.float64)),
        lambda e: e.pop("candidates"),
        lambda e: e.update(candidates=e["candidates"] * 0),  # m = 0 rows now name output m
        lambda e: e.update(candidates=e["candidates"] + 100),
        lambda e: e.update(extra=np.zeros(1)),
    ],
)
def test_malformed_evidence_is_invalid(edit):
    weights = build("gaussian", 1, V=4, N=3, D=4, H=2, scale=1.0, biases=False, dtype=np.float32)
    evidence = dict(draft(weights, "cubic").evidence)
    edit(evidence)
    verdict = check_bytes(encode(weights, "cubic", 0, evidence))
    assert not verdict.accepted and verdict.invalid


CANDIDATES = "evidence: candidates must be outputs in [0, d_vocab) other than m"


@pytest.mark.parametrize("edit, reason", [
    (lambda c: c.__setitem__((5, 0), 4), CANDIDATES),  # d_vocab itself
    (lambda c: c.__setitem__((5, 0), -1), CANDIDATES),
    (lambda c: c.__setitem__((5, 0), 2), CANDIDATES),  # pair 5 is (m, q) = (2, 2): output m
])
def test_each_malformed_candidate_gets_its_reason(edit, reason):
    weights = build("gaussian", 1, V=4, N=3, D=4, H=2, scale=1.0, biases=False, dtype=np.float32)
    evidence = dict(draft(weights, "cubic").evidence)
    evidence["candidates"] = evidence["candidates"].copy()
    edit(evidence["candidates"])
    verdict = check_bytes(encode(weights, "cubic", 0, evidence))
    assert verdict.invalid and verdict.reason == reason


@pytest.mark.parametrize("count, reason", [(16, None), (17, "evidence: at most 16 candidates per (m, q)")])
def test_at_most_max_candidates_per_pair(count, reason):
    weights = build("gaussian", 1, V=20, N=2, D=4, H=2, scale=1.0, biases=False, dtype=np.float32)
    evidence = dict(draft(weights, "cubic").evidence)
    m_of_pair = np.repeat(np.arange(20), np.arange(1, 21))[:, None]
    evidence["candidates"] = (m_of_pair + 1 + np.arange(count)[None, :]) % 20  # distinct outputs other than m
    verdict = check_bytes(encode(weights, "cubic", 0, evidence))
    assert verdict.invalid == (reason is not None) and (reason is None or verdict.reason == reason)


@given(st.integers(1, 6), st.integers(1, 6), st.data())
def test_top2_gives_the_two_largest_remaining_entries(rows, cols, data):
    from compact_proofs.checker.strategies.cubic import _top2

    values = np.array(data.draw(st.lists(st.integers(-3, 3), min_size=rows * cols, max_size=rows * cols)), float).reshape(rows, cols)
    excluded = np.array(data.draw(st.lists(st.booleans(), min_size=rows * cols, max_size=rows * cols))).reshape(rows, cols)
    first, first_col, second, remaining = _top2(values, excluded)
    for r in range(rows):
        rest = sorted(values[r][~excluded[r]], reverse=True)
        assert remaining[r] == len(rest)
        if rest:
            assert first[r] == rest[0]
            assert excluded[r, first_col[r]] or values[r, first_col[r]] == first[r]  # an excluded column only on a tie
        if len(rest) >= 2:
            assert second[r] == rest[1]


def test_k4_seed123_bounds(trained_k4):
    tight, reference = (prove(trained_k4, s).verdict for s in VARIANTS)
    assert reference.verified_correct / reference.total > 0.95
    assert tight.verified_correct / tight.total > 0.99


@pytest.mark.parametrize("V, N", [(1, 1), (2, 1), (3, 2), (5, 4), (7, 6)])
def test_case_count_and_order(V, N):
    cases = np.concatenate([cases_of(m, N) for m in range(V)])
    assert len(cases) == count_cases(V, N)
    assert [tuple(c) for c in cases] == sorted(tuple(c) for c in cases)  # canonical: m, q, c, k increasing
    assert len({tuple(c) for c in cases}) == len(cases)
    plain = [(m, q, c, k) for m in range(V) for q in range(m + 1) for c in (range(N) if q == m else range(N - 1))
             for k in (range(m) if c else [m])]
    assert [tuple(int(x) for x in row) for row in cases] == plain and cases.dtype == np.int64


@pytest.mark.parametrize("strategy", VARIANTS)
@pytest.mark.parametrize("spare", [0, -1])
def test_the_case_limit_is_checked_first(monkeypatch, strategy, spare):
    from compact_proofs.checker.strategies import cubic

    weights = build("gaussian", 1, V=4, N=3, D=4, H=2, scale=1.0, biases=False, dtype=np.float32)
    proof = prove(weights, strategy)
    monkeypatch.setattr(cubic, "MAX_CASES", count_cases(4, 3) + spare)
    verdict = check_bytes(proof.raw)
    assert verdict.accepted == (spare == 0)
    if spare:
        assert verdict.reason == f"cubic: {count_cases(4, 3)} cases exceed the cubic limit {count_cases(4, 3) + spare}"


def test_logits_beyond_float64_are_refused_not_misjudged():
    weights = build("gaussian", 1, V=3, N=2, D=2, H=2, scale=1.0, biases=False, dtype=np.float64)
    weights["blocks.0.attn.W_O"] = weights["blocks.0.attn.W_O"] * 1e200
    weights["unembed.W_U"] = weights["unembed.W_U"] * 1e200
    evidence = dict(draft(build("gaussian", 1, V=3, N=2, D=2, H=2, scale=1.0, biases=False, dtype=np.float64), "cubic").evidence)
    verdict = check_bytes(encode(weights, "cubic", 0, evidence))
    assert not verdict.accepted
    assert verdict.reason == "cubic: logit magnitudes beyond float64; the cubic check does not cover them"


def test_exact_decisions_are_counted_and_an_unsettled_one_is_a_rejection(monkeypatch):
    """Every test the float filter leaves open is decided exactly (and counted); if the exact sign
    cannot be settled, the claim is not established."""
    from compact_proofs.checker.errors import CheckError
    from compact_proofs.checker.strategies import cubic

    weights = build("coarse", 0, V=4, N=3, D=4, H=2, scale=1.0, biases=False, dtype=np.float32)
    proof = prove(weights, "cubic")
    undecided = lambda self, sums, weights: (np.zeros(sums.shape, bool), np.zeros(sums.shape, bool))  # noqa: E731
    monkeypatch.setattr(cubic.Threshold, "classify", undecided)  # the filter decides nothing: every test goes exact
    calls = []
    original = cubic.exp_sum_sign
    monkeypatch.setattr(cubic, "exp_sum_sign", lambda *a: calls.append(a) or original(*a))
    verdict = check_bytes(proof.raw)
    assert verdict.accepted and verdict.notes["exact_decisions"] == len(calls) > 0

    def give_up(*args):
        raise CheckError("exact-sign", "sign not settled")

    monkeypatch.setattr(cubic, "exp_sum_sign", give_up)
    verdict = check_bytes(proof.raw)
    assert not verdict.accepted and verdict.reason.startswith("cubic: claim ")
    assert verdict.reason.endswith("is not established: its sign is not settled within the precision cap")


def assert_filter_sees_every_term_and_weight(weights, strategy):
    """White-box: each call of the float filter gets J = 3 terms, Lemma 3's (eps, eta) for sums of
    n_ctx - 1 exps, a coefficient bound C >= (max |f| + max |claim|)(1 + 2^-50) (Lemma 1 for the
    differences f - claim), and sums and weight sums that match sum_slots w (f - claim) and
    w_m + w_k + w_q, recomputed here from the filter's own inputs."""
    from fractions import Fraction

    from compact_proofs.checker import float_filter
    from compact_proofs.checker.strategies import cubic

    calls = {"filter": [], "threshold": [], "classify": []}
    original_filter, original_for_sums = cubic._filter, float_filter.Threshold.for_sums.__func__
    original_classify = float_filter.Threshold.classify

    def for_sums(cls, *args):
        calls["threshold"].append(args)
        return original_for_sums(cls, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cubic, "_filter", lambda *args: calls["filter"].append(args) or original_filter(*args))
        patch.setattr(float_filter.Threshold, "for_sums", classmethod(for_sums))
        patch.setattr(float_filter.Threshold, "classify", lambda self, s, w: calls["classify"].append((s, w)) or original_classify(self, s, w))
        verdict = prove(weights, strategy).verdict
    assert verdict.accepted and calls["filter"]
    assert len(calls["filter"]) == len(calls["threshold"]) == len(calls["classify"])
    n_ctx = weights["pos_embed.W_pos"].shape[0]
    for (w_m, w_k, w_q, f_m, f_k, f_q, claims, valid, eps_eta), (terms, bound, *lemma3), (sums, weight_sums) in zip(
            calls["filter"], calls["threshold"], calls["classify"]):
        assert terms == 3 and tuple(lemma3) == tuple(eps_eta) == float_filter.Threshold.product_weights(max(n_ctx - 1, 1))
        largest_f = max(Fraction(float(np.abs(f).max(initial=0))) for f in (f_m, f_k, f_q))
        assert Fraction(bound) >= (largest_f + Fraction(float(np.abs(claims).max(initial=0)))) * (1 + Fraction(1, 2**50))
        total = (w_m + w_k + w_q[:, None])[:, None, :]
        assert np.all(weight_sums >= total * (1 - 2.0**-50)) and np.all(weight_sums <= total * (1 + 2.0**-50))
        terms_ = [w[:, None, :] * (f - claims[:, None])[:, :, None] for w, f in ((w_m, f_m), (w_k, f_k))]
        expected = terms_[0] + terms_[1] + w_q[:, None, None] * (f_q - claims[:, None])[:, :, None]
        assert np.all(np.abs(sums - expected) <= 1e-12 * total + 1e-300)


@pytest.mark.parametrize("strategy", VARIANTS)
def test_filter_inputs_on_a_trained_model(trained, strategy):
    assert_filter_sees_every_term_and_weight(trained, strategy)


@pytest.mark.parametrize("strategy", VARIANTS)
@given(weights=tiny_models(max_inputs=400))
def test_filter_inputs_on_random_models(strategy, weights):
    assert_filter_sees_every_term_and_weight(weights, strategy)


@pytest.mark.parametrize("strategy", VARIANTS)
@given(weights=tiny_models(max_vocab=4, max_ctx=3, max_inputs=64))
def test_the_derived_format_counts_at_least_the_claims_and_never_more_than_exact(strategy, weights):
    """Without claims the checker derives each case's bound itself (strictly below zero to count):
    both paths agree, the count is at least the claims format's and at most the exact count."""
    from compact_proofs.checker.pure import check_bytes as pure_check
    from compact_proofs.generator.proving.strategies import cubic as search

    draft = search.prove(weights, lambda *a: None, reference=strategy == "cubic/reference", derived=True)
    assert "claims" not in draft.evidence
    raw = encode(weights, strategy, 0, draft.evidence)
    fast, pure = check_bytes(raw), pure_check(raw)
    assert fast.accepted and pure.accepted and fast.verified_correct == pure.verified_correct
    assert prove(weights, strategy).verdict.verified_correct <= fast.verified_correct <= exact_correct_count(weights)
    over = check_bytes(encode(weights, strategy, fast.verified_correct + 1, draft.evidence))
    assert not over.accepted


def test_the_derived_format_is_chosen_above_the_claims_limit(monkeypatch):
    from compact_proofs.generator.proving.strategies import cubic as search

    weights = build("gaussian", 1, V=4, N=3, D=4, H=2, scale=1.0, biases=False, dtype=np.float32)
    monkeypatch.setattr(search, "CLAIMS_UP_TO", count_cases(4, 3) - 1)
    proof = prove(weights, "cubic")
    assert proof.verdict.accepted and proof.verdict.notes["evidence"] == "derived"
    assert "claims" not in certificate.decode(proof.raw).evidence


def _derived_cases(weights, strategy: str, intervals=None, guess=None, candidates=None) -> np.ndarray:
    """Which cases the derived format counts (all m, canonical order), optionally with `_intervals`
    or `_guess` replaced, or with other candidates (outputs per (m, q <= m) pair)."""
    from compact_proofs.checker.strategies import cubic
    from compact_proofs.checker.weights import model_from_weights

    model, V = model_from_weights(weights), weights["embed.W_E"].shape[0]
    reference = strategy == "cubic/reference"
    if candidates is None and not reference:
        from compact_proofs.generator.proving.strategies import cubic as search

        candidates = search.derived_candidates(model, lambda *a: None)
    cand = None if reference else cubic.candidate_columns(candidates, V)
    with pytest.MonkeyPatch.context() as patch:
        if intervals is not None:
            patch.setattr(cubic, "_intervals", intervals)
        if guess is not None:
            patch.setattr(cubic, "_guess", guess)
        zeros = np.zeros(count_cases(V, model.n_ctx))
        return np.concatenate([counted for _, _, counted, _ in cubic.counted_cases(model, zeros, cand, reference, True)])


def _case_by_case(checker, established):
    rows = np.flatnonzero(checker.block[:, 2] > 0)
    established[rows] = checker.check(rows)


@pytest.mark.parametrize("strategy", VARIANTS)
@given(weights=tiny_models(max_vocab=5, max_ctx=7, max_inputs=20000), data=st.data())
def test_derived_intervals_count_exactly_the_cases_that_pass_one_by_one(strategy, weights, data):
    """The derived format decides the cases c >= 1 of a (q, k) pair by an interval of c confirmed
    at its ends (cubic.py, `_intervals`): it counts exactly the cases that pass one by one, and
    any guess of the interval and of the failing tests, however wrong, changes nothing; nor do
    candidates that leave some pairs without their last test (every output already a candidate)."""
    from compact_proofs.checker.strategies import cubic

    expected = _derived_cases(weights, strategy, intervals=_case_by_case)
    assert (_derived_cases(weights, strategy) == expected).all()
    seed = data.draw(st.integers(0, 2**32 - 1))
    original = cubic._guess

    def wild_guess(checker, qs, ks, top):  # half the pairs keep the float guess, half get any integers
        rng = np.random.default_rng(seed)
        noise = [rng.integers(-3, top + 4) for _ in range(4)]
        keep = rng.random(len(qs)) < 0.5
        return tuple(np.where(keep, good, bad) for good, bad in zip(original(checker, qs, ks, top), noise))

    assert (_derived_cases(weights, strategy, guess=wild_guess) == expected).all()
    if strategy == "cubic":
        V = weights["embed.W_E"].shape[0]
        every = np.array([[o for o in range(V) if o != m][: cubic.MAX_CANDIDATES] for m in range(V) for _ in range(m + 1)]).reshape(-1, V - 1)
        expected = _derived_cases(weights, strategy, intervals=_case_by_case, candidates=every)
        assert (_derived_cases(weights, strategy, guess=wild_guess, candidates=every) == expected).all()


@pytest.mark.parametrize("strategy", VARIANTS)
def test_derived_intervals_on_a_trained_model(trained, strategy):
    assert (_derived_cases(trained, strategy) == _derived_cases(trained, strategy, intervals=_case_by_case)).all()

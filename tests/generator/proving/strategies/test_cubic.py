"""The cubic search: rounding of claims, and certificates the checker accepts on hard models."""

from __future__ import annotations

from pathlib import Path

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compact_proofs.generator.proving.prover import prove
from compact_proofs.generator.proving.strategies.cubic import mp_round_up_f32
from tests.models import tiny_models
from tests.reference.evaluator import exact_correct_count


@given(st.floats(-2.0**100, 2.0**100, width=32), st.sampled_from([-1, 0, 1]), st.integers(60, 190))
def test_a_200_bit_value_rounds_up_to_the_smallest_float32_at_or_above_it(f32, direction, bits):
    """Values a hair above a float32 (closer than half a float64 ulp, where float() rounds down:
    the K=10 seed 8745 rejection) round to the next one; the float32 itself stays."""
    mpmath.mp.prec = 200
    base = mpmath.mpf(float(f32))
    value = base + direction * (abs(base) + 1) * mpmath.mpf(2) ** -bits
    got = mp_round_up_f32(value)
    assert mpmath.mpf(float(got)) >= value
    assert mpmath.mpf(float(np.nextafter(got, np.float32(-np.inf)))) < value


CASES = Path(__file__).with_name("cases")


@pytest.mark.parametrize("name", ["cubic-cancellation", "cubic-underflow"])
@pytest.mark.parametrize("strategy", ["cubic", "cubic/reference"])
def test_models_that_once_broke_the_search_give_accepted_certificates(name, strategy):
    """Found by property tests: a k-block weight computed as a total minus a prefix (1e-7 relative
    error), and a bound whose 200-bit evaluation lost a term of e^-800 (the claim equalled the
    bound's float32 value exactly, and the bound lies strictly above it)."""
    with np.load(CASES / f"{name}.npz") as data:
        weights = {k: data[k] for k in data.files}
    proof = prove(weights, strategy)  # raises ProofError if the checker rejects the certificate
    assert proof.verdict.accepted and proof.verdict.verified_correct <= exact_correct_count(weights)


@pytest.mark.parametrize("strategy", ["cubic", "cubic/reference"])
@given(weights=tiny_models(max_vocab=4, max_ctx=3, max_inputs=64))
def test_the_search_writes_certificates_the_checker_accepts(strategy, weights):
    proof = prove(weights, strategy)
    assert proof.verdict.accepted

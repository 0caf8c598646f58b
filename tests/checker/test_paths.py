"""The path decomposition reproduces the literal forward pass of SEMANTICS.md, exactly."""

from __future__ import annotations

import itertools
from fractions import Fraction

from hypothesis import given

from compact_proofs.checker.paths import paths
from compact_proofs.checker.weights import model_from_weights
from tests.models import tiny_models
from tests.reference.evaluator import ReferenceModel


def frac(d, index) -> Fraction:
    return d.fraction(index)


@given(tiny_models(max_inputs=64))
def test_scores_and_logit_coefficients_match_the_forward_pass(weights):
    p = paths(model_from_weights(weights))
    ref = ReferenceModel(weights)
    V, N = ref.V, ref.N
    for x in itertools.islice(itertools.product(range(V), repeat=N), 40):
        q, m = x[-1], max(x)
        scores, coeffs = ref.margin_terms(x)
        assert scores == [frac(p.EQKE, (q, t)) + frac(p.EQKP, (q, i)) for i, t in enumerate(x)]
        for o in range(V):
            row = lambda t, i, out: frac(p.EVOU, (t, out)) + frac(p.PVOU, (i, out)) + frac(p.EUPU, (q, out))  # noqa: E731
            assert coeffs[o] == [row(t, i, m) - row(t, i, o) for i, t in enumerate(x)]

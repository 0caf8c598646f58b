"""The slack ledger on tiny models against direct computations: lost inputs per (m, q, copies)
from the exact reference evaluator, step swaps against proving the swapped variant directly."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from compact_proofs.checker import certificate
from compact_proofs.generator.studies import ledger
from compact_proofs.generator.cli import app
from compact_proofs.generator.proving.prover import prove
from tests.models import build
from tests.reference.evaluator import ReferenceModel

ROOT = Path(__file__).resolve().parents[3]
V, N = 5, 3
VARIANTS = ["subcubic/mean_query+max_diff/drop_average_query_per_output_logit_reasoning/svd",
            "subcubic/max_diff_exact/per_output+chords/max_diff"]


def exact_wrong(weights) -> np.ndarray:
    model, out = ReferenceModel(weights), np.zeros((V, V, N + 1), np.int64)
    for x in itertools.product(range(V), repeat=N):
        m = max(x)
        out[m, x[-1], x.count(m)] += not model.correct(x)
    return out


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("strategy, options", [("brute-force", {}), ("cubic", {}), ("cubic/reference", {}), ("cubic", {"derived": True}),
                                               ("cubic/reference", {"derived": True}), *((v, {}) for v in VARIANTS)])
def test_lost_inputs_hold_every_wrong_input_and_add_up(seed, strategy, options):
    weights = build("gaussian", seed, V=V, N=N, D=4, H=2, scale=1.0, biases=True, dtype=np.float32)
    proof = prove(weights, strategy, **options)
    if strategy.startswith("cubic"):
        assert ("claims" in certificate.decode(proof.raw).evidence) == (not options)
    cert = certificate.decode(proof.raw)
    lost = ledger.where_lost(cert, cert.weights)
    wrong = exact_wrong(weights)
    assert lost["total"] == V**N == int(ledger.all_inputs(V, N).sum())
    assert lost["certified"] == proof.verdict.verified_correct
    assert lost["wrong"] == int(wrong.sum())  # float64 agrees with the exact evaluator here (no ties)
    cells = {(c["m"], c["q"], c["copies"]): c for c in lost["cells"]}
    for m, q, k in zip(*np.nonzero(wrong)):  # every wrong input is in a cell that lost inputs
        assert cells[(m, q, k)]["not_certified"] >= wrong[m, q, k]
    assert sum(r["not_certified"] for r in lost["by_copies"]) == sum(r["not_certified"] for r in lost["by_max"]) \
        == lost["not_certified"] == V**N - proof.verdict.verified_correct
    if strategy == "brute-force":
        assert all(c["not_certified"] == c["wrong"] for c in lost["cells"])


def test_step_swaps_are_the_swapped_variants_bounds():
    weights = build("gaussian", 3, V=V, N=N, D=4, H=2, scale=1.0, biases=True, dtype=np.float32)
    steps = ledger.step_costs(weights, VARIANTS[0])
    expected = {"direct path (EUPU summary)": "subcubic/max_diff_exact/drop_average_query_per_output_logit_reasoning/svd",
                "attention pessimisation": "subcubic/mean_query+max_diff/per_output+chords/svd",
                "EQKE split (attention error)": "subcubic/mean_query+max_diff/drop_average_query_per_output_logit_reasoning/exact_EQKE+max_diff_exact"}
    base = prove(weights, VARIANTS[0]).verdict
    assert steps["bound"] == base.verified_correct / base.total
    for s in steps["steps"]:
        v = prove(weights, expected[s["step"]]).verdict
        assert s["bound"] == v.verified_correct / v.total and s["gain"] == s["bound"] - steps["bound"]
    cubic = prove(weights, "cubic").verdict
    assert steps["reference"] == "cubic" and steps["reference_bound"] == cubic.verified_correct / cubic.total
    reference = ledger.step_costs(weights, "cubic/reference")
    exact = prove(weights, "brute-force").verdict
    assert reference["reference_bound"] == exact.verified_correct / exact.total
    assert reference["steps"][0]["bound"] == steps["reference_bound"]  # the swap gives the cubic bound
    assert not ledger.step_costs(weights, "brute-force")["available"]


def test_explain_on_every_committed_certificate(tmp_path):
    runner = CliRunner()
    for path in sorted((ROOT / "certificates").glob("*.msgpack")):
        result = runner.invoke(app, ["explain", str(path), "--json"] + (["--png", str(tmp_path / "l.png")] if "subcubic" in path.name else []))
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["accepted"] and report["label"] == "diagnostics, not proofs"
        claimed = certificate.decode(path.read_bytes()).claimed_correct  # the ledger adds up to the claim
        assert report["where_lost"]["certified"] == claimed
        assert report["step_costs"]["available"] == ("brute-force" not in path.name)
    assert (tmp_path / "l.png").stat().st_size > 10_000


def test_explain_refuses_bad_files_in_one_line(tmp_path):
    runner = CliRunner()
    junk = tmp_path / "junk.msgpack"
    junk.write_bytes(b"\x00\x01")
    for path in (junk, tmp_path / "missing.msgpack"):
        result = runner.invoke(app, ["explain", str(path)])
        assert result.exit_code == 3 and "Traceback" not in result.output and str(path) in result.output


def test_per_seed_steps_read_the_swapped_variants_rows():
    """The sweep's per-seed step costs are the swapped variants' own rows (nothing proved again)."""
    base = "subcubic/mean_query+max_diff/mean_query+diff/svd"
    rows = [{"k": 4, "seed": 1, "strategy": s, "bound": b, "accepted": True} for s, b in (
        (base, 0.80), ("subcubic/max_diff_exact/mean_query+diff/svd", 0.81), ("subcubic/mean_query+max_diff/per_output+chords/svd", 0.85),
        ("subcubic/mean_query+max_diff/mean_query+diff/exact_EQKE+max_diff_exact", 0.79), ("cubic", 0.95), ("brute-force", 0.99))]
    rows.append({"k": 4, "seed": 1, "strategy": "cubic/reference", "bound": 0.0, "accepted": False})
    steps = {r["family"]: r for r in ledger.per_seed_steps(rows)}
    paper = steps["best of the paper's 100"]  # the best with the paper's attention handlings
    assert paper["variant"] == "subcubic/max_diff_exact/mean_query+diff/svd" and paper["bound"] == 0.81
    assert paper["swap: attention pessimisation"] is None  # that swapped variant has no row
    best = steps["best subcubic"]
    assert best["variant"] == "subcubic/mean_query+max_diff/per_output+chords/svd" and best["swap: direct path (EUPU summary)"] is None
    assert (best["cubic"], best["cubic/reference"], best["brute-force"]) == (0.95, None, 0.99)
    summary = {r["family"]: r for r in ledger.per_seed_summary(ledger.per_seed_steps(rows))}
    assert summary["best subcubic"]["gap to cubic"] == pytest.approx(0.10)


def _attention_on_max(model: ReferenceModel, x: tuple[int, ...]) -> float:
    """The softmax weight on the copies of max(x), from the reference model's exact scores."""
    scores = np.array([float(model._score(x[-1], t, i)) for i, t in enumerate(x)]) / np.sqrt(model.H)
    weights = np.exp(scores - scores.max())
    return float(weights[[t == max(x) for t in x]].sum() / weights.sum())


def _cells(x: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(q, m, c, own gap): the cell of x and the largest gap whose cell holds it."""
    m = max(x)
    others = [t for t in x if t != m]
    return x[-1], m, len(others), (m - max(others)) if others else V + 1


@pytest.mark.parametrize("seed", [0, 4])
def test_cell_statistics_and_ceiling_against_a_direct_computation(seed):
    weights = build("gaussian", seed, V=V, N=N, D=4, H=2, scale=1.0, biases=True, dtype=np.float32)
    stats, model = ledger.cell_statistics(weights), ReferenceModel(weights)
    members: dict = {}
    for x in itertools.product(range(V), repeat=N):
        members.setdefault(_cells(x)[:3], []).append((x, _cells(x)[3], model.correct(x), _attention_on_max(model, x)))
    ceiling = 0
    for (q, m, c), inputs in members.items():
        if c == 0:
            assert stats["all_m_correct"][m] == inputs[0][2]
            ceiling += inputs[0][2]
            continue
        for g in range(1, m + 1):
            held = [a for _, own, _, a in inputs if own >= g]
            if held:
                assert np.isclose(stats["attention_low"][q, m, c, g], min(held), rtol=1e-12, atol=1e-15)
                assert np.isclose(stats["attention_high"][q, m, c, g], max(held), rtol=1e-12, atol=1e-15)
            else:
                assert not np.isfinite(stats["attention_low"][q, m, c, g])
        fits = [g for g in range(1, m + 1) if all(ok for _, own, ok, _ in inputs if own >= g)]
        assert stats["need"][q, m, c] == (fits[0] if fits else max(own for _, own, ok, _ in inputs if not ok) + 1)
        ceiling += sum(own >= fits[0] for _, own, _, _ in inputs) if fits else 0
    assert ledger.cell_ceiling(stats, V, N) == ceiling


def test_exact_ov_is_the_joint_maximum_over_the_allowed_tokens():
    weights = build("gaussian", 2, V=V, N=N, D=4, H=2, scale=1.0, biases=True, dtype=np.float32)
    model = ReferenceModel(weights)
    evou = np.array([[float(v) for v in model._value_logits(t, 0)] for t in range(V)]) - \
        np.array([[float(v) for v in _pos_value(model, 0)] for _ in range(V)])
    from compact_proofs.checker.context import Evidence
    from compact_proofs.checker.weights import model_from_weights

    bounds = ledger.ExactOV(model_from_weights(weights), "subcubic/max_diff_exact/per_output+chords/exact_EQKE+max_diff_exact", Evidence({}))
    m, top = np.array([4, 4, 3, 2]), np.array([3, 1, 2, 0])
    values = bounds.nonmax_values(m, top)[:, 0]
    for r in range(len(m)):
        direct = [max(evou[k, o] - evou[k, m[r]] for k in range(top[r] + 1)) for o in range(V)]
        assert np.allclose(values.hi[r], direct) and np.allclose(values.lo[r], direct)


def _pos_value(model: ReferenceModel, i: int):
    """W_pos[i] W_V W_O W_U (no bias): what _value_logits(t, i) adds to EVOU[t]."""
    from tests.reference.evaluator import _vecmat

    return _vecmat(_vecmat(_vecmat(model.W_pos[i], model.W_V), model.W_O), model.W_U)


@pytest.mark.parametrize("seed", [1, 3, 5])
def test_exact_steps_lie_between_the_certified_bound_and_the_ceiling(seed):
    """Swapping a step for its exact counterpart still counts only cells whose inputs are all
    correct, so no exact-step bound exceeds the ceiling, which is at most the accuracy."""
    weights = build("gaussian", seed, V=V, N=N, D=4, H=2, scale=1.0, biases=True, dtype=np.float32)
    variant = VARIANTS[1]
    verdict = prove(weights, variant).verdict
    steps = ledger.exact_steps(weights, variant, verdict.verified_correct / V**N)
    accuracy = ReferenceModel(weights).count_correct() / V**N
    assert steps["available"] and steps["ceiling"] <= accuracy
    for step in steps["steps"]:
        assert step["bound"] <= steps["ceiling"] and np.isclose(step["gain"], step["bound"] - steps["bound"])
    assert not ledger.exact_steps(weights, "cubic", 0.5)["available"]


def test_step_costs_of_the_refined_family_swap_only_within_it():
    weights = build("gaussian", 3, V=V, N=N, D=4, H=2, scale=1.0, biases=True, dtype=np.float32)
    refined = "subcubic/max_diff_exact_per_max/query_slot+ov_blocks+chords/svd"
    steps = ledger.step_costs(weights, refined)
    assert [s["step"] for s in steps["steps"]] == ["EQKE split (attention error)"]
    swapped = prove(weights, "subcubic/max_diff_exact_per_max/query_slot+ov_blocks+chords/exact_EQKE+max_diff_exact").verdict
    assert steps["steps"][0]["bound"] == swapped.verified_correct / swapped.total


@pytest.mark.parametrize("reference, bound", [("cubic", 0.99), ("exact accuracy (brute force)", 0.999)])
def test_the_figures_comparison_bar_does_not_read_as_a_strategy_name(reference, bound):
    """The bar of the bound a certificate is compared with said "cubic (reference)", which reads as
    the strategy cubic/reference; it now says what it is."""
    steps = {"available": True, "bound": 0.9, "reference": reference, "reference_bound": bound, "gap": bound - 0.9,
             "steps": [{"step": "EQKE split (attention error)", "from": "a", "to": "b", "bound": 0.91, "gain": 0.01}],
             "gains_cover": 0.1}
    fig = ledger.figure({"strategy": "subcubic/x", "where_lost": {"available": False}, "step_costs": steps, "exact_steps": None})
    labels = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert labels[-1].endswith("for comparison") and not any("reference" in label for label in labels)

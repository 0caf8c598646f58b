"""The ledger of compact induction certificates (diagnostics): the per-p breakdown adds up to the
checker's count, making a relaxation exact never certifies less, and the ceilings are the float64
truth of the cell structures."""

from __future__ import annotations

import itertools

import numpy as np

from compact_proofs.checker import certificate, tasks
from compact_proofs.checker.transformer import from_weights
from compact_proofs.generator.proving import prover
from compact_proofs.generator.studies import induction_ledger, ledger
from tests.models import induction_circuit


def noisy(seed: int, noise: float) -> dict:
    rng = np.random.default_rng(seed)
    return {k: (v + noise * rng.standard_normal(v.shape)) for k, v in induction_circuit(3, 4, strength=4.0).items()}


def test_the_breakdown_adds_up_and_exact_steps_never_lose():
    weights = noisy(3, 0.2)
    for strategy, options in (("induction/positions", {}), ("induction/mixture/intervals", {"depth": 1})):
        proof = prover.prove(weights, strategy, task="induction", **options)
        report = ledger.explain(proof.raw)
        ind = report["induction"]
        assert int(ind["certified"]) == proof.verdict.verified_correct
        assert sum(int(r["certified"]) for r in ind["by_p"]) == proof.verdict.verified_correct
        assert sum(int(r["inputs"]) for r in ind["by_p"]) == tasks.resolve("induction").domain_size(3, 4) or strategy == "induction/positions"
        assert ind["steps"]["available"]
        for name, count in ind["steps"]["certified"].items():
            assert int(count) >= proof.verdict.verified_correct, name
        ceiling = ind["ceiling"]
        assert ceiling["available"] and int(ceiling["in_all_correct_cells"]) >= proof.verdict.verified_correct


def test_ceilings_are_the_float_truth():
    model = from_weights(induction_circuit(3, 4))  # exactly correct everywhere
    out = induction_ledger.ceilings(model)
    assert out["float64 accuracy"] == 1.0
    assert all(v == 1.0 for k, v in out.items() if k.startswith("(q"))
    domain = tasks.resolve("induction").domain_size(3, 4)
    single = sum(1 for x in itertools.product(range(3), repeat=4) if list(x[:-1]).count(x[-1]) == 1)
    assert abs(out["single occurrence (q, x[n-2], p, l)"] - single / domain) < 1e-12
    broken = dict(induction_circuit(3, 4))
    broken["unembed.W_U"] = broken["unembed.W_U"].copy()
    broken["unembed.W_U"][:, 2] = broken["unembed.W_U"][:, 1]  # labels 1 and 2 tie: wrong
    out = induction_ledger.ceilings(from_weights(broken))
    assert out["float64 accuracy"] < 1 and out["(q, p, l)"] <= out["float64 accuracy"]


def test_explain_prints_the_induction_ledger(tmp_path):
    from typer.testing import CliRunner

    from compact_proofs.generator.cli import app

    proof = prover.prove(noisy(4, 0.1), "induction/positions", task="induction")
    path = tmp_path / "c.msgpack"
    path.write_bytes(proof.raw)
    result = CliRunner().invoke(app, ["explain", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "by the position p" in result.output and "keys exact" in result.output and "ceiling" in result.output
    json_result = CliRunner().invoke(app, ["explain", str(path), "--no-progress", "--json"])
    assert json_result.exit_code == 0 and '"induction"' in json_result.output
    certificate.decode(proof.raw)

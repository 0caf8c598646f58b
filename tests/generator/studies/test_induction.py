"""The induction study: a seed is trained, certified by brute force and by the compact proofs
(format v2, each certificate accepted by the standalone checker from its file), recorded once per
method (resumable), and reported with the ratio to brute force."""

from __future__ import annotations

import csv
import json

from compact_proofs.checker import certificate
from compact_proofs.checker.verify import check
from compact_proofs.generator.studies import induction


def test_a_seed_is_certified_by_each_method_recorded_once_and_reported(tmp_path):
    size = induction.Size(3, 4, "every", training_steps=30)
    methods = [induction.Method.parse(m) for m in ("brute-force", "induction/positions", "induction/mixture/intervals:1")]
    row = induction.run_seed(size, 7, str(tmp_path), methods)
    assert set(row["methods"]) == {"brute-force", "induction/positions", "induction/mixture/intervals:1"}
    brute = row["methods"]["brute-force"]
    for name, m in row["methods"].items():
        cert = certificate.load(tmp_path / "v3-n4-every" / "certificates" / f"seed7.{name.replace('/', '-').replace(':', '-d')}.msgpack")
        verdict = check(cert)
        assert verdict.accepted and cert.task == "induction" and m["certified_correct"] == str(verdict.verified_correct)
        assert int(m["certified_correct"]) <= int(brute["certified_correct"])  # never above the exact count
    assert row["domain"] == str(3**4 - 3 * 2**3) and 0 <= row["sampled_accuracy"] <= 1
    again = induction.run_seed(size, 7, str(tmp_path), methods)
    assert again["methods"] == row["methods"]  # resumed, not redone
    induction.report(tmp_path, tmp_path / "report")
    rows = list(csv.DictReader(open(tmp_path / "report" / "rows.csv")))
    assert sorted(r["method"] for r in rows) == sorted(row["methods"]) and {r["seed"] for r in rows} == {"7"}
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "| 3 | 4 | every | induction/positions | 1 |" in summary
    assert (tmp_path / "report" / "bound_vs_size.png").stat().st_size > 0


def test_the_published_rows_are_adopted_without_training(tmp_path):
    """docs/results/induction's rows and certificates become rows and models of the study."""
    from pathlib import Path

    published = Path(__file__).resolve().parents[3] / "docs" / "results" / "induction"
    count = induction.adopt_published(tmp_path, published)
    assert count >= 20
    row = json.loads((tmp_path / "v8-n8" / "rows" / "seed123.json").read_text())
    assert row["methods"]["brute-force"]["status"] == "accepted" and (tmp_path / "v8-n8" / "models" / "seed123.npz").exists()
    assert induction.adopt_published(tmp_path, published) == 0  # nothing twice


def test_fit_exponents_recovers_a_power_law():
    points = [(v, n, 3.0 * v**4 * n**2) for v, n in ((8, 8), (16, 8), (16, 16), (32, 16))]
    a, b = induction.fit_exponents(points)
    assert abs(a - 4) < 1e-9 and abs(b - 2) < 1e-9
    assert induction.fit_exponents(points[:2]) is None


def test_single_occurrence_counts_the_inputs_with_one_earlier_occurrence():
    import itertools

    for V, N in ((2, 3), (3, 4), (4, 3)):
        count = sum(1 for x in itertools.product(range(V), repeat=N) if list(x[:-1]).count(x[-1]) == 1)
        assert induction.single_occurrence(V, N) == count

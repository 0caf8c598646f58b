"""The induction study: a seed is trained, certified (format v2, accepted by the standalone
checker from its file), recorded once (resumable), and reported."""

from __future__ import annotations

import csv

from compact_proofs.checker import certificate
from compact_proofs.checker.verify import check
from compact_proofs.generator.studies import induction


def test_a_seed_is_certified_recorded_once_and_reported(tmp_path):
    size = induction.Size(3, 4)
    row = induction.run_seed(size, 7, str(tmp_path), steps=20)
    cert = certificate.load(tmp_path / "v3-n4" / "certificates" / "seed7.msgpack")
    verdict = check(cert)
    assert verdict.accepted and cert.task == "induction" and cert.version == 2
    assert row["certified_correct"] == str(verdict.verified_correct) and row["domain"] == str(3**4 - 3 * 2**3)
    assert 0 <= row["bound"] <= 1 and 0 <= row["sampled_accuracy"] <= 1
    assert induction.run_seed(size, 7, str(tmp_path), steps=20) == row  # resumed, not redone
    induction.report(tmp_path, tmp_path / "report")
    rows = list(csv.DictReader(open(tmp_path / "report" / "rows.csv")))
    assert [r["seed"] for r in rows] == ["7"] and rows[0]["certified_correct"] == row["certified_correct"]
    assert "| 3 | 4 | 1 |" in (tmp_path / "report" / "summary.md").read_text()

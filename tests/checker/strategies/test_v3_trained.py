"""Format v3 on real trained models: the committed grokking certificate (Nanda et al.'s modular
addition, trained by training/recipes.py) is accepted at its claim, and tampering is rejected
(a claim one above, a weight changed by one ulp without re-proving, the task changed)."""

from __future__ import annotations

from pathlib import Path

import msgpack
import numpy as np
import pytest

from compact_proofs.checker import certificate, memo
from compact_proofs.checker.verify import check

ROOT = Path(__file__).resolve().parents[3]
GROKKING = ROOT / "docs" / "results" / "modular-addition" / "certificates" / "grokking-seed0.msgpack"


@pytest.fixture(scope="module")
def grokking():
    if not GROKKING.exists():
        pytest.skip("no committed grokking certificate")
    return certificate.load(GROKKING)


def _with(cert, claimed=None, weights=None, task=None) -> certificate.Certificate:
    return certificate.decode(certificate.encode(
        strategy=cert.strategy, params={}, claimed_correct=cert.claimed_correct if claimed is None else claimed,
        total=cert.claimed_total, weights=cert.weights if weights is None else weights, evidence={}, generator=cert.generator,
        task=cert.task if task is None else task, architecture=cert.architecture))


def test_the_grokking_certificate_is_accepted_and_an_overclaim_is_not(grokking):
    verdict = check(grokking)
    assert verdict.accepted and verdict.verified_correct == grokking.claimed_correct and verdict.total == 113 * 113
    assert verdict.notes["undecided"] == 0
    assert not check(_with(grokking, claimed=grokking.claimed_correct + 1)).accepted


def test_a_changed_weight_is_checked_afresh(grokking):
    weights = {k: np.array(v) for k, v in grokking.weights.items()}
    weights["unembed.W_U"][:, 0] = weights["unembed.W_U"][:, 1]  # outputs 0 and 1 tied: every input labelled 0 or 1 is wrong
    memo.clear()
    verdict = check(_with(grokking, weights=weights))
    assert not verdict.accepted and verdict.verified_correct <= grokking.claimed_correct - 2 * 113 + 2


def test_the_task_is_the_checkers_not_the_certificates(grokking):
    raw = msgpack.unpackb(GROKKING.read_bytes(), raw=False)
    raw["task"] = {"name": "sort"}  # the same weights read as a sorting model: another domain and total
    raw["digest"] = certificate.digest_of(raw)
    verdict = check(certificate.decode(certificate.canonical_bytes(raw)))
    assert not verdict.accepted


def test_check_model_names_a_v3_model_file(grokking, tmp_path, capsys):
    """--model FILE decides whether a certificate is about a weights file's model, for v3 too."""
    from compact_proofs.checker.cli import main

    np.savez(tmp_path / "m.npz", **{k: np.array(v) for k, v in grokking.weights.items()})
    assert main([str(GROKKING), "--model", str(tmp_path / "m.npz"), "--no-progress"]) == 0
    other = {k: np.array(v) for k, v in grokking.weights.items()}
    other["unembed.W_U"] = other["unembed.W_U"] * np.float32(2)
    np.savez(tmp_path / "other.npz", **other)
    assert main([str(GROKKING), "--model", str(tmp_path / "other.npz"), "--no-progress"]) == 1
    assert "not the given model" in capsys.readouterr().out

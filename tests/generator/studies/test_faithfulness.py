"""The faithfulness analyses on tiny models: the noise is structureless and reproducible, the items
resume, the bounds stay below the exact accuracy, and the figures have their labels."""

from __future__ import annotations

import json

import numpy as np

from compact_proofs.generator.studies import faithfulness
from tests.models import build

WEIGHTS = build("gaussian", 3, V=4, N=3, D=4, H=2, scale=1.0, biases=True, dtype=np.float32)


def test_noise_is_relative_reproducible_and_spares_biases():
    same = faithfulness.with_noise(WEIGHTS, 0.0, 1)
    assert all(np.array_equal(same[k], WEIGHTS[k]) for k in WEIGHTS)
    a, b = faithfulness.with_noise(WEIGHTS, 0.1, 1), faithfulness.with_noise(WEIGHTS, 0.1, 1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    for name, value in a.items():
        change = np.sqrt(np.mean((value.astype(np.float64) - WEIGHTS[name]) ** 2))
        if ".W_" in name:
            assert 0.03 < change / np.sqrt(np.mean(WEIGHTS[name].astype(np.float64) ** 2)) < 0.3, name
        else:
            assert change == 0, name


def test_a_rank_one_eqke_has_a_huge_singular_value_ratio():
    w = {k: v.copy() for k, v in WEIGHTS.items()}
    w["blocks.0.attn.W_Q"][0, :, 1:] = 0  # one query direction: EQKE of rank one
    assert faithfulness.eqke_sigma_ratio(w) > 1e6 > faithfulness.eqke_sigma_ratio(WEIGHTS)


def test_items_resume_and_bounds_stay_below_exact(tmp_path, monkeypatch):
    monkeypatch.setattr(faithfulness, "NOISE", (0.0, 0.1))
    monkeypatch.setattr(faithfulness, "RANKS", (1, 2))
    calls = []

    def weights_of(seed):
        calls.append(seed)
        return WEIGHTS

    noise = faithfulness.noise_items(weights_of, [7], tmp_path)
    assert len(noise) == len(faithfulness.NOISE)
    for record in noise:
        assert all(record[f] <= record["brute-force"] + 1e-12 for f in faithfulness.FAMILIES)
    before = len(calls)
    assert faithfulness.noise_items(weights_of, [7], tmp_path) == noise and len(calls) == before  # resumed from items/
    ranks = faithfulness.rank_items(lambda seed: WEIGHTS, [7], tmp_path)
    assert [r["rank"] for r in ranks] == list(faithfulness.RANKS)
    assert all(r["bound"] <= noise[0]["brute-force"] for r in ranks)
    sigma = [{"k": 4, "seed": 7, "sigma_ratio": 3.0, "cubic": 0.5, "subcubic/best": 0.3}]
    written = faithfulness.write(tmp_path, sigma, noise, ranks)
    assert {p.name for p in written} >= {"noise_ablation.png", "bound_vs_eqke_rank.png", "bound_vs_eqke_rank_one.png", "noise.csv",
                                         "summary.md"}
    text = (tmp_path / "summary.md").read_text()
    exact = noise[0]["brute-force"]
    assert f"| 0 | {exact:.4f} +- 0.0000 |" in text and "| 2 | " in text  # the noise-free row, the rank-2 row
    assert json.loads((tmp_path / "items" / "noise-k4-seed7-eps0.json").read_text())["eps"] == 0.0

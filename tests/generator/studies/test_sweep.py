"""Sweeps: resumable, the same on a Dask cluster as locally, and reported as tables and figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from compact_proofs.generator.studies import sweep
from compact_proofs.generator import weights_io
from compact_proofs.generator.training import zoo
from compact_proofs.generator.training.model import AttentionOnly, ModelConfig
from compact_proofs.generator.proving.prover import prove
from compact_proofs.generator.studies.report import write_report

STRATEGIES = ["brute-force", "cubic", "subcubic/max_diff_exact/per_output+chords/max_diff"]
V = 6


def tiny(seed: int, k: int) -> dict:
    import torch

    from compact_proofs.generator.training.train import TrainConfig, train

    model = train(seed, ModelConfig(d_vocab=V, n_ctx=k, d_model=8, d_head=4), TrainConfig(steps=150))
    return {name: value.detach().numpy().copy() for name, value in model.state_dict().items()}


@pytest.fixture
def cache(tmp_path):
    """A model cache holding tiny models, so the sweep loads instead of training the paper's."""
    models = tmp_path / "models"
    for k in (2, 3):
        for seed in (1, 2):
            weights_io.save(zoo.model_path(models, k, seed, V), tiny(seed, k))
    return models


def test_the_default_strategies_are_the_max_tasks_with_brute_force_where_feasible():
    from compact_proofs.generator.proving.strategies import REGISTRY

    small, large = sweep.strategies_for(4), sweep.strategies_for(5)
    assert small[0] == "brute-force" and "brute-force" not in large and small[1:] == large
    assert not [name for name in small if name.startswith("induction/")]  # they prove another task
    assert set(small) == {name for name in REGISTRY if not name.startswith("induction/")}


def run(results, models, **kwargs):
    return sweep.run([2, 3], [1, 2], results, models, STRATEGIES, workers=1, d_vocab=V, **kwargs)


def test_rows_are_complete_and_checked(tmp_path, cache):
    assert run(tmp_path / "r", cache) == 4
    rows = sweep.load_rows(tmp_path / "r")
    assert len(rows) == 2 * 2 * len(STRATEGIES)
    assert all(r["accepted"] and int(r["verified_correct"]) <= int(r["total"]) for r in rows)
    brute = {(r["k"], r["seed"]): int(r["verified_correct"]) for r in rows if r["strategy"] == "brute-force"}
    assert all(int(r["verified_correct"]) <= brute[(r["k"], r["seed"])] for r in rows)


def test_every_row_records_the_code_version_the_sweep_started_with(tmp_path, cache, monkeypatch):
    versions = iter(f"v{i}" for i in range(100))
    monkeypatch.setattr(sweep, "_code_version", lambda: next(versions))  # HEAD moving during the sweep
    sweep.run([2, 3], [1, 2], tmp_path / "r", cache, ["cubic"], workers=1, d_vocab=V)
    assert {r["version"] for r in sweep.load_rows(tmp_path / "r")} == {"v0"}


def test_a_killed_sweep_resumes_without_recomputing(tmp_path, cache):
    results = tmp_path / "r"
    sweep.run([2, 3], [1, 2], results, cache, STRATEGIES[:1], workers=1, d_vocab=V)  # stopped after one strategy
    first = {p: p.stat().st_mtime_ns for p in results.glob("rows/**/*.json")}
    victim = next(iter(first))
    victim.unlink()  # a row that never got written
    assert run(results, cache) == 4
    after = {p: p.stat().st_mtime_ns for p in results.glob("rows/**/*.json")}
    assert all(after[p] == t for p, t in first.items() if p != victim)  # nothing recomputed
    assert victim in after and len(after) == 2 * 2 * len(STRATEGIES)
    assert run(results, cache) == 0  # nothing left


def test_dask_local_cluster_gives_the_same_rows(tmp_path, cache):
    from distributed import LocalCluster

    run(tmp_path / "local", cache)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        run(tmp_path / "dask", cache, scheduler=cluster.scheduler_address)
    key = lambda r: (r["k"], r["seed"], r["strategy"])  # noqa: E731
    local = {key(r): (r["verified_correct"], r["digest"]) for r in sweep.load_rows(tmp_path / "local")}
    dask = {key(r): (r["verified_correct"], r["digest"]) for r in sweep.load_rows(tmp_path / "dask")}
    assert local == dask


def test_report_writes_tables_and_figures(tmp_path, cache):
    run(tmp_path / "r", cache)
    table, _ = write_report(tmp_path / "r", tmp_path / "out")
    families = {(r["K"], r["family"]) for r in table}
    assert {(3, "brute force"), (3, "cubic (ours)"), (3, "best subcubic per seed")} <= families
    for name in ("headline.md", "headline.csv", "variants.csv", "variants.md", "rows.csv.gz",
                 "bound_vs_flops.png", "bound_vs_unexplained_dimension.png", "best_bound_per_class.png"):
        assert (tmp_path / "out" / name).stat().st_size > 100, name
    brute = [r for r in table if r["family"] == "brute force"]
    assert all(abs(r["normalised_mean"] - 1) < 1e-12 for r in brute)


@pytest.mark.parametrize("biases", [False, True])
def test_estimate_logits_are_the_models_in_float64(biases):
    """The estimate's table evaluation agrees with the layer-by-layer float64 model (to rounding)."""
    import torch

    from tests.models import build

    weights = build("gaussian", 7, V=7, N=5, D=6, H=3, scale=1.0, biases=biases, dtype=np.float32)
    model = AttentionOnly(ModelConfig(7, 5, 6, 3)).double()
    with torch.no_grad():
        for name, param in model.state_dict().items():
            param.copy_(torch.as_tensor(np.asarray(weights.get(name, np.zeros(param.shape)), np.float64)).reshape(param.shape))
    tokens = np.random.default_rng(0).integers(0, 7, (500, 5))
    expected = model(torch.as_tensor(tokens)).detach().numpy()
    assert np.allclose(sweep._float64_logits(weights)(tokens), expected, rtol=1e-12, atol=1e-12)


def test_sampled_estimate_brackets_the_exact_accuracy():
    weights = tiny(3, 3)
    exact = prove(weights, "brute-force").verdict
    estimate = sweep.sampled_accuracy(weights, 1 << 14, seed=0)
    assert estimate["ci_low"] <= exact.verified_correct / exact.total <= estimate["ci_high"]
    assert "not a proof" in estimate["label"]


def test_report_figures_and_tables_read_as_a_paper_would(tmp_path, cache):
    import matplotlib.pyplot as plt

    from compact_proofs.generator.studies.report import BAR_STYLE, build_figures, headline, load_estimates, load_rows

    run(tmp_path / "r", cache)
    rows, estimates = load_rows(tmp_path / "r"), load_estimates(tmp_path / "r")
    table = headline(rows, estimates)
    assert len({(r["K"], r["family"]) for r in table}) == len(table)  # no repeated row
    for name, fig in build_figures(rows, table).items():
        for ax in fig.axes:
            assert ax.get_xlabel() or ax.get_xticklabels(), name
            assert ax.get_ylabel() and ax.get_title(), name
        if name.startswith("bound_vs"):
            labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
            assert labels and len(labels) == len(set(labels)), name
            colours = [tuple(h.get_color()) if not isinstance(h.get_color(), str) else h.get_color()
                       for legend in fig.legends for h in legend.legend_handles]
            assert len(colours) == len(set(colours)), name  # one colour per family
            fig.canvas.draw()
            for ax in fig.axes:  # at least three labelled ticks in view, whatever the range
                lo, hi = ax.get_xlim()
                shown = [t for t in ax.get_xticklabels() if t.get_text() and lo <= t.get_position()[0] <= hi]
                assert ax.get_xscale() == "log" and len(shown) >= 3, name
        else:
            for ax in fig.axes:
                assert len(ax.patches) == len({r["family"] for r in table if r["family"] in BAR_STYLE and f"K = {r['K']}" == ax.get_title()})
        plt.close(fig)


def test_report_json_has_no_nan_and_one_seed_has_no_spread(tmp_path, cache):
    sweep.run([2], [1], tmp_path / "r", cache, ["cubic"], workers=1, d_vocab=V)
    table, _ = write_report(tmp_path / "r", tmp_path / "out")
    json.dumps(table, allow_nan=False)
    assert all(r["bound_std"] is None for r in table)
    assert "+-" not in (tmp_path / "out" / "headline.md").read_text().split("| cubic (ours) |")[1].splitlines()[0]
    assert (tmp_path / "out" / "estimates.csv").read_text().startswith("k,seed,samples")

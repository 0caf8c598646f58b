"""The scaling study: its grid, resumable runs with per-proof memory, and its report."""

from __future__ import annotations

import json

import pytest

from compact_proofs.generator.studies import scaling, scaling_report
from compact_proofs.generator.studies.scaling import Config


@pytest.mark.parametrize("text, config", [("v128-k10", Config(128, 10)), ("V64-K4-D16", Config(64, 4, 16)), ("k4-v8", Config(8, 4))])
def test_configurations_are_read_in_any_order(text, config):
    assert scaling.parse_config(text) == config and scaling.parse_config(config.name) == config


@pytest.mark.parametrize("text", ["v128", "v0-k4", "v8-k4-x3", "128-10", "v8-kk"])
def test_a_bad_configuration_is_one_clear_error(text):
    with pytest.raises(ValueError, match="write e.g. v128-k10"):
        scaling.parse_config(text)


def test_the_grid_has_the_three_axes_once_each():
    grid = scaling.grid()
    assert len(grid) == len(set(grid)) == 28
    assert {Config(v, k) for v in (32, 64, 128, 256, 512) for k in (4, 10, 20)} <= set(grid)
    assert {Config(v, k) for v in (1024, 2048) for k in (4, 20)} <= set(grid)
    assert {Config(64, k) for k in (2, 3, 4, 5, 10, 20, 40, 80, 160)} <= set(grid)
    assert {Config(64, 4, d) for d in (8, 16, 32, 64)} <= set(grid)


def test_strategies_beyond_reach_are_skipped_with_the_reason():
    assert "brute-force limit" in scaling.skip_reason(Config(64, 5), "brute-force", 1e9)
    assert scaling.skip_reason(Config(64, 4), "brute-force", 1e9) == ""
    assert "exceeds the budget" in scaling.skip_reason(Config(512, 20), "cubic", 60)


def test_a_proof_whose_process_dies_is_recorded_not_lost(monkeypatch):
    import os

    monkeypatch.setattr(scaling, "_prove_in_child", lambda *args: os._exit(9))
    out = scaling.measure({}, "cubic")
    assert out["status"] == "limit" and "ended without a result" in out["reason"]


def test_a_small_study_runs_resumes_and_reports(tmp_path):
    configs, results = [Config(4, 4, 32), Config(5, 4, 32)], tmp_path / "study"
    strategies = ["brute-force", "cubic", "subcubic/max_diff_exact/per_output+chords/exact_EQKE+max_diff_exact"]
    assert scaling.run(configs, [1], results, strategies, workers=1) == 2
    rows, models = scaling.load(results)
    assert len(rows) == 6 and len(models) == 2
    for r in rows:
        assert r["status"] == "accepted", r
        assert 0 <= r["bound"] <= 1 and r["certificate_bytes"] > 0 and r["check_seconds"] is not None
        assert r["peak_rss_mb"] >= r["baseline_rss_mb"] > 0
    by = {(r["d_vocab"], r["strategy"]): r["bound"] for r in rows}
    for v in (4, 5):  # brute force is exact; the others are lower bounds on it
        assert by[(v, "brute-force")] >= by[(v, "cubic")] and by[(v, "brute-force")] >= by[(v, strategies[2])]
    record = models[("v4-k4-d32", 1)]
    assert record["recipe"]["steps"] == 3000 and 0 <= record["sampled"]["estimate"] <= 1
    assert scaling.run(configs, [1], results, strategies, workers=1) == 0  # resumable: nothing left

    out = tmp_path / "report"
    table, slopes, vacuous = scaling_report.write(results, out)
    assert {p.name for p in out.iterdir()} >= {"summary.md", "summary.csv", "rows.csv", "models.csv", "exponents.csv",
                                               "vacuity.csv", "bound_vs_d_vocab.png", "cost_vs_d_vocab.png"}
    cubic = [r for r in table if r["family"] == "cubic"]
    assert [r["d_vocab"] for r in cubic] == [4, 5] and all(r["normalised_mean"] <= 1 for r in cubic)
    assert {s["family"] for s in slopes} >= {"cubic", "brute force"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["summary"] == json.loads(json.dumps(table))


def test_exponents_are_fitted_on_log_log_axes():
    assert scaling_report.fit_exponent([2, 4, 8, 16], [3 * s**2.5 for s in (2, 4, 8, 16)]) == pytest.approx(2.5)
    assert scaling_report.fit_exponent([8, 8], [1.0, 2.0]) is None


def _summary(family, v, normalised, accepted=10):
    return {"family": family, "d_vocab": v, "n_ctx": 4, "d_model": 32, "normalised_mean": normalised, "accepted": accepted}


def test_vacuity_names_the_first_size_below_each_threshold():
    table = [_summary("cubic", 32, 0.9), _summary("cubic", 64, 0.4), _summary("cubic", 128, 0.05), _summary("cubic", 256, None, 0)]
    (row,) = [v for v in scaling_report.vacuity(table) if v["family"] == "cubic" and v["axis"] == "d_vocab"]
    assert (row["below_0.5"], row["below_0.1"], row["infeasible"]) == (64, 128, 256)


@pytest.mark.parametrize("args, code, message", [
    (["-c", "v8"], 2, "cannot read configuration 'v8'"),
    (["-s", "cubic/nope", "-c", "v8-k2"], 2, "unknown or composite strategies"),
    (["-r", "/proc/no/such", "-c", "v8-k2"], 2, "cannot write to the directory /proc/no/such"),
    (["--report-only"], 3, "no scaling results under"),
])
def test_the_command_refuses_bad_input_in_one_line_before_any_work(tmp_path, args, code, message):
    from typer.testing import CliRunner

    from compact_proofs.generator.cli import app

    if "-r" not in args:
        args = ["-r", str(tmp_path / "study"), *args]
    result = CliRunner().invoke(app, ["scaling", *args])
    assert result.exit_code == code and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "study" / "models").exists()  # nothing trained

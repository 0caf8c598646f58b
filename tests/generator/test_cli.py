"""The generator CLI, as a user runs it: train, prove, check, strategies; errors are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from generator.cli import app

runner = CliRunner()


def test_train_prove_check(tmp_path):
    model, cert = tmp_path / "m.safetensors", tmp_path / "c.msgpack"
    result = runner.invoke(app, ["train", "--k", "3", "--d-vocab", "6", "--steps", "40", "--seed", "3", "-o", str(model)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["prove", str(model), "--strategy", "brute-force", "-o", str(cert), "--json"])
    assert result.exit_code == 0, result.output
    proved = json.loads(result.stdout)
    assert proved["accepted"] and proved["claimed_correct"] == proved["verified_correct"]
    result = runner.invoke(app, ["check", str(cert), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["bound"] == proved["bound"]


def test_strategies_lists_brute_force():
    result = runner.invoke(app, ["strategies", "--json"])
    assert result.exit_code == 0 and "brute-force" in json.loads(result.stdout)


def test_bad_model_file_is_one_line_nonzero(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    run = subprocess.run([sys.executable, "-m", "generator.cli", "prove", str(bad), "-o", str(tmp_path / "c.msgpack")],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert run.returncode == 3 and "Traceback" not in run.stderr
    assert run.stderr.strip().count("\n") == 0 and "error" in run.stderr
    assert not (tmp_path / "c.msgpack").exists()


def test_unknown_strategy_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["prove", str(tmp_path / "m.npz"), "--strategy", "nope", "-o", str(tmp_path / "c")])
    assert result.exit_code == 2


def test_sweep_and_report_commands(tmp_path):
    results = tmp_path / "results"
    args = ["sweep", "--k", "2", "--n-seeds", "1", "--results", str(results), "--models", str(tmp_path / "models"),
            "-s", "cubic", "-s", "subcubic/max_diff_exact/per_output+chords/max_diff", "--workers", "1", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    again = runner.invoke(app, args)  # resumes: nothing left to do
    assert again.exit_code == 0 and "0 of 1" in again.output
    result = runner.invoke(app, ["report", str(results), "-o", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report" / "headline.md").read_text().count("| cubic |") == 1
    as_json = runner.invoke(app, ["report", str(results), "-o", str(tmp_path / "report2"), "--json"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout)
    assert {(r["K"], r["family"]) for r in rows} >= {(2, "cubic")} and all(r["seeds"] == 1 for r in rows)


def test_sweep_usage_errors():
    assert runner.invoke(app, ["sweep"]).exit_code == 2
    assert runner.invoke(app, ["sweep", "--k", "4", "-s", "nope"]).exit_code == 2

"""The generator CLI, as a user runs it: train, prove, check, strategies, sweep, report; the exit
code contract; output files checked before any work; errors are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from compact_proofs.generator import weights_io
from compact_proofs.generator.cli import app
from tests.models import build

ROOT = Path(__file__).resolve().parents[3]

runner = CliRunner()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.npz"
    weights_io.save(path, build("gaussian", 5, V=4, N=3, D=4, H=2, scale=1.0, biases=False, dtype=np.float32))
    return path


def test_train_prove_check(tmp_path):
    model, cert = tmp_path / "m.safetensors", tmp_path / "c.msgpack"
    result = runner.invoke(app, ["train", "--k", "3", "--d-vocab", "6", "--steps", "40", "--seed", "3", "-o", str(model)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["prove", str(model), "--strategy", "brute-force", "-o", str(cert), "--json"])
    assert result.exit_code == 0, result.output
    proved = json.loads(result.stdout)["results"][0]
    assert proved["accepted"] and proved["claimed_correct"] == proved["verified_correct"]
    result = runner.invoke(app, ["check", str(cert), "--json", "--model", str(model)])
    assert result.exit_code == 0 and json.loads(result.stdout)["results"][0]["bound"] == proved["bound"]
    assert runner.invoke(app, ["check", str(tmp_path), "-q"]).exit_code == 0  # a directory: every certificate in it
    bound = proved["bound"]  # "n/d": the gate takes it as the standalone checker does, exactly
    assert runner.invoke(app, ["check", str(cert), "-q", "--min-accuracy", bound]).exit_code == 0
    n, d = (int(x) for x in bound.split("/"))
    assert runner.invoke(app, ["check", str(cert), "-q", "--min-accuracy", f"{n + 1}/{d}"]).exit_code == 1
    for bad in ("nan", "1.5", "x"):
        result = runner.invoke(app, ["check", str(cert), "--min-accuracy", bad])
        assert result.exit_code == 2 and "--min-accuracy" in result.output and "Traceback" not in result.output


def test_strategies_lists_brute_force():
    result = runner.invoke(app, ["strategies", "--json"])
    assert result.exit_code == 0 and "brute-force" in json.loads(result.stdout)


def test_bad_model_file_is_one_line_exit_3(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    run = subprocess.run([sys.executable, "-m", "compact_proofs.generator.cli", "prove", str(bad), "-o", str(tmp_path / "c.msgpack")],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert run.returncode == 3 and "Traceback" not in run.stderr
    assert run.stderr.strip().count("\n") == 0 and "error" in run.stderr
    assert not (tmp_path / "c.msgpack").exists()


def test_unknown_strategy_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["prove", str(tmp_path / "m.npz"), "--strategy", "nope", "-o", str(tmp_path / "c")])
    assert result.exit_code == 2


@pytest.mark.parametrize("case", ["inside a file", "a directory", "unwritable", "missing directory", "the input itself",
                                  "a directory name", "a link", "a device"])
def test_bad_output_paths_are_usage_errors_before_any_work(model, tmp_path, case):
    link = tmp_path / "link.msgpack"
    if case == "a link":
        (tmp_path / "target.msgpack").write_bytes(b"keep")
        link.symlink_to(tmp_path / "target.msgpack")
    outputs = {"inside a file": model / "c.msgpack", "a directory": tmp_path, "unwritable": Path("/proc/c.msgpack"),
               "missing directory": tmp_path / "missing" / "dir" / "c.msgpack", "the input itself": model,
               "a directory name": f"{tmp_path / 'missing'}/", "a link": link, "a device": Path(os.devnull)}
    before = model.read_bytes()
    result = runner.invoke(app, ["prove", str(model), "-s", "subcubic/best", "-o", str(outputs[case])])
    assert link.is_symlink() == (case == "a link") and Path(os.devnull).is_char_device()
    assert result.exit_code == 2 and "error" in result.output and "Traceback" not in result.output, result.output
    assert model.read_bytes() == before and not (tmp_path / "missing").exists()
    if case == "missing directory":
        made = runner.invoke(app, ["prove", str(model), "-s", "cubic", "-o", str(outputs[case]), "--make-dirs"])
        assert made.exit_code == 0 and outputs[case].exists()


def test_train_checks_its_options_and_output_first(tmp_path):
    assert runner.invoke(app, ["train", "--seed", "1", "-o", str(tmp_path / "m.npz"), "--steps", "-5"]).exit_code == 2
    assert runner.invoke(app, ["train", "--seed", "1", "-o", "/proc/x.npz"]).exit_code == 2
    assert runner.invoke(app, ["train", "--seed", "1", "-o", str(tmp_path / "m.txt")]).exit_code == 2


def test_the_pure_checker_on_a_subcubic_certificate_is_not_supported_here(model, tmp_path):
    cert = tmp_path / "s.msgpack"
    assert runner.invoke(app, ["prove", str(model), "-s", "subcubic/max_diff/per_output+chords/max_diff", "-o", str(cert)]).exit_code == 0
    assert runner.invoke(app, ["check", str(cert), "--pure"]).exit_code == 5


def test_a_model_too_large_for_brute_force_is_exit_4(tmp_path):
    big = tmp_path / "big.npz"
    weights_io.save(big, build("gaussian", 1, V=64, N=7, D=2, H=1, scale=1.0, biases=False, dtype=np.float32))
    result = runner.invoke(app, ["prove", str(big), "-s", "brute-force", "-o", str(tmp_path / "c.msgpack")])
    assert result.exit_code == 4 and "brute-force limit" in result.output
    assert "expected to take" not in result.output and "did not accept" not in result.output  # a limit, said first


def test_a_closed_pipe_ends_with_the_commands_own_exit_code():
    """`compact-proofs strategies | head -1`: no traceback, and not exit 1 (a refuted claim)."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    done = subprocess.run([sys.executable, "-m", "compact_proofs.generator", "strategies"], stdout=write,
                          stderr=subprocess.PIPE, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(write)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


def test_model_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "nan.npz"
    weights = build("gaussian", 1, V=3, N=2, D=2, H=1, scale=1.0, biases=False, dtype=np.float32)
    weights["embed.W_E"][0, 0] = np.nan
    np.savez(bad, **weights)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, x=np.array([object()], dtype=object))
    for path, words in ((bad, "NaN"), (pickled, "pickled objects, which are never loaded")):
        result = runner.invoke(app, ["prove", str(path), "-o", str(tmp_path / "c.msgpack")])
        assert result.exit_code == 3 and str(path) in result.output and words in result.output, result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("compact-proofs ")


def test_sweep_and_report_commands(tmp_path):
    results = tmp_path / "results"
    args = ["sweep", "--k", "2", "--n-seeds", "1", "--results", str(results),
            "-s", "cubic", "-s", "subcubic/max_diff_exact/per_output+chords/max_diff", "--workers", "1", "--no-progress",
            "--keep-certificates"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (results / "models").is_dir()  # the model cache defaults to one under the results directory
    kept = sorted((results / "certificates").rglob("*.msgpack"))
    assert len(kept) == 2 and runner.invoke(app, ["check", str(results / "certificates"), "-q"]).exit_code == 0
    again = runner.invoke(app, args)  # resumes: nothing left to do
    assert again.exit_code == 0 and "0 of 1" in again.output
    result = runner.invoke(app, ["report", str(results), "-o", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report" / "headline.md").read_text().count("| cubic (ours) |") == 1
    as_json = runner.invoke(app, ["report", str(results), "-o", str(tmp_path / "report2"), "--json"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout)
    assert {(r["K"], r["family"]) for r in rows} >= {(2, "cubic (ours)")} and all(r["seeds"] == 1 for r in rows)
    # the faithfulness analyses read a published report's rows.csv.gz as well, with the models elsewhere
    published = ["faithfulness", str(tmp_path / "report"), "--models", str(results / "models"), "-o", str(tmp_path / "faith"),
                 "--noise-seeds", "0", "--rank-seeds", "0", "--exact-seeds", "0", "--no-progress"]
    result = runner.invoke(app, published)
    assert result.exit_code == 0, result.output
    sigma = (tmp_path / "faith" / "sigma.csv").read_text().splitlines()
    assert len(sigma) == 2 and sigma[1].startswith("2,")  # one model: K = 2, the first seed
    empty = runner.invoke(app, ["faithfulness", str(tmp_path / "nothing"), "--no-progress"])
    assert empty.exit_code != 0 and "no results under" in empty.output and "Traceback" not in empty.output


def test_sweep_usage_errors():
    assert runner.invoke(app, ["sweep"]).exit_code == 2
    assert runner.invoke(app, ["sweep", "--k", "4", "-s", "nope"]).exit_code == 2


def test_sweep_options_are_checked(tmp_path):
    assert runner.invoke(app, ["sweep", "--k", "4", "--n-seeds", "0", "-r", str(tmp_path)]).exit_code == 2
    assert runner.invoke(app, ["sweep", "--k", "4", "--n-seeds", "-1", "-r", str(tmp_path)]).exit_code == 2
    result = runner.invoke(app, ["sweep", "--k", "2", "--n-seeds", "1", "-r", str(tmp_path), "--scheduler", "tcp://127.0.0.1:9"])
    assert result.exit_code == 2 and "cannot reach the Dask scheduler" in result.output


def test_quiet_and_verbose(tmp_path):
    quiet = runner.invoke(app, ["-q", "train", "--seed", "1", "--k", "2", "--d-vocab", "4", "--steps", "5", "-o", str(tmp_path / "m.npz")])
    assert quiet.exit_code == 0 and quiet.output == ""
    loud = runner.invoke(app, ["-v", "prove", str(tmp_path / "m.npz"), "-s", "brute-force", "-o", str(tmp_path / "c.msgpack")])
    assert loud.exit_code == 0 and "checker notes" in loud.output and loud.stdout.startswith("ACCEPTED")


def test_prove_best_subcubic_on_worker_processes(model, tmp_path):
    cert = tmp_path / "best.msgpack"
    result = runner.invoke(app, ["prove", str(model), "-s", "subcubic/best", "-j", "2", "-o", str(cert), "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["strategy"].startswith("subcubic/")
    result = runner.invoke(app, ["prove", str(model), "-s", "subcubic/best", "-j", "0", "-o", str(tmp_path / "x.msgpack")])
    assert result.exit_code == 2 and not (tmp_path / "x.msgpack").exists()


def test_train_and_prove_an_induction_model(tmp_path):
    model, cert = tmp_path / "ind.npz", tmp_path / "ind.msgpack"
    result = runner.invoke(app, ["train", "--task", "induction", "--k", "4", "--d-vocab", "4", "--d-model", "8", "--d-head", "4",
                                 "--steps", "30", "--seed", "2", "-o", str(model), "--no-progress"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["prove", str(model), "-s", "brute-force", "--task", "induction", "-o", str(cert), "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    proved = json.loads(result.stdout)["results"][0]
    assert proved["accepted"] and proved["total"] == str(4**4 - 4 * 3**3)
    result = runner.invoke(app, ["check", str(cert), "--json", "--model", str(model), "--no-progress"])
    assert result.exit_code == 0 and json.loads(result.stdout)["results"][0]["bound"] == proved["bound"]
    for args in (["-s", "cubic"], ["-s", "brute-force", "--task", "sorting"]):
        result = runner.invoke(app, ["prove", str(model), *args, "-o", str(tmp_path / "x.msgpack")])
        assert result.exit_code == 2 and "Traceback" not in result.output and not (tmp_path / "x.msgpack").exists()
    assert runner.invoke(app, ["train", "--seed", "1", "--task", "sorting", "-o", str(tmp_path / "y.npz")]).exit_code == 2


def test_induction_study_checks_its_options_first(tmp_path):
    for size in ("8", "1x8", "300x9", "8x65", "axb"):
        result = runner.invoke(app, ["induction", "-r", str(tmp_path), "--size", size])
        assert result.exit_code == 2 and "--size" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["induction", "-r", str(tmp_path / "none"), "--report-only"])
    assert result.exit_code == 3 and "no induction results" in result.output  # as for the other studies: no readable input

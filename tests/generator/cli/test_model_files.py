"""A trained model's file says what the model is (the task it was trained on, the seed, the
recipe), and `prove` certifies that task; `train` never overwrites a file unasked and never picks
a seed for the user."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from compact_proofs.checker.cli import main as check_main
from compact_proofs.checker.tasks import resolve
from compact_proofs.generator import weights_io
from compact_proofs.generator.cli import app
from tests.models import build

runner = CliRunner()
TINY_INDUCTION = ["--task", "induction", "--k", "4", "--d-vocab", "3", "--d-model", "8", "--d-head", "4", "--steps", "20",
                  "--no-progress"]


@pytest.mark.parametrize("suffix", [".npz", ".pt", ".safetensors"])
def test_train_records_the_task_and_prove_uses_it(tmp_path, suffix):
    model, cert = tmp_path / f"ind{suffix}", tmp_path / "ind.msgpack"
    result = runner.invoke(app, ["train", *TINY_INDUCTION, "--seed", "50", "-o", str(model)])
    assert result.exit_code == 0, result.output
    weights, about = weights_io.load_with_about(model)
    assert about["task"] == "induction" and about["seed"] == 50 and about["format"] == weights_io.ABOUT_FORMAT
    assert about["model"]["n_layers"] == 2 and about["training"]["steps"] == 20
    result = runner.invoke(app, ["prove", str(model), "-s", "brute-force", "-o", str(cert), "--json"])  # no --task
    assert result.exit_code == 0, result.output
    proved = json.loads(result.stdout)["results"][0]
    assert proved["total"] == str(resolve("induction").domain_size(3, 4)) and proved["notes"]["task"] == "induction"
    # the standalone checker's --model reads every file train writes (the description is not a weight)
    assert check_main([str(cert), "--model", str(model), "-q"]) == 0


def test_a_task_other_than_the_files_is_refused_before_any_work(tmp_path):
    model = tmp_path / "ind.npz"
    assert runner.invoke(app, ["train", *TINY_INDUCTION, "--seed", "1", "-o", str(model)]).exit_code == 0
    for task in ("max", "min"):
        result = runner.invoke(app, ["prove", str(model), "-s", "brute-force", "--task", task, "-o", str(tmp_path / "c.msgpack")])
        assert result.exit_code == 2 and "trained on induction" in result.output and "Traceback" not in result.output
        assert not (tmp_path / "c.msgpack").exists()
    result = runner.invoke(app, ["prove", str(model), "-s", "brute-force", "--task", "induction", "-o", str(tmp_path / "c.msgpack")])
    assert result.exit_code == 0, result.output


def test_a_file_without_a_description_is_max_and_says_so(tmp_path):
    model = tmp_path / "old.npz"
    weights_io.save(model, build("gaussian", 1, V=3, N=3, D=4, H=2, scale=1.0, biases=False, dtype=np.float32))
    assert weights_io.load_with_about(model)[1] is None
    result = runner.invoke(app, ["prove", str(model), "-s", "brute-force", "-o", str(tmp_path / "c.msgpack"), "--json"])
    assert result.exit_code == 0, result.output
    assert "does not record the task" in result.stderr and "proving max" in result.stderr
    assert json.loads(result.stdout)["results"][0]["total"] == str(3**3)


def test_a_malformed_description_is_one_line_exit_3(tmp_path):
    model = tmp_path / "bad.npz"
    weights = build("gaussian", 1, V=3, N=3, D=4, H=2, scale=1.0, biases=False, dtype=np.float32)
    np.savez(model, **weights, **{weights_io.ABOUT_KEY: np.frombuffer(b'{"format": "compact-proofs/model", "task": "sort"}', np.uint8)})
    result = runner.invoke(app, ["prove", str(model), "-s", "brute-force", "-o", str(tmp_path / "c.msgpack")])
    assert result.exit_code == 3 and "sort" in result.output and "Traceback" not in result.output


def test_train_needs_a_seed_and_never_overwrites_unasked(tmp_path):
    model = tmp_path / "m.npz"
    result = runner.invoke(app, ["train", *TINY_INDUCTION, "-o", str(model)])
    assert result.exit_code == 2 and "--seed" in result.output and not model.exists()
    assert runner.invoke(app, ["train", *TINY_INDUCTION, "--seed", "50", "-o", str(model)]).exit_code == 0
    before = model.read_bytes()
    result = runner.invoke(app, ["train", *TINY_INDUCTION, "--seed", "7", "-o", str(model)])
    assert result.exit_code == 2 and "--force" in result.output and model.read_bytes() == before
    result = runner.invoke(app, ["train", *TINY_INDUCTION, "--seed", "7", "-o", str(model), "--force"])
    assert result.exit_code == 0 and weights_io.load_with_about(model)[1]["seed"] == 7


def test_prove_and_explain_never_overwrite_unasked(tmp_path):
    model, cert = tmp_path / "m.npz", tmp_path / "c.msgpack"
    weights_io.save(model, build("gaussian", 1, V=3, N=3, D=4, H=2, scale=1.0, biases=False, dtype=np.float32))
    cert.write_bytes(b"keep")
    result = runner.invoke(app, ["prove", str(model), "-s", "brute-force", "-o", str(cert)])
    assert result.exit_code == 2 and "--force" in result.output and cert.read_bytes() == b"keep"
    assert runner.invoke(app, ["prove", str(model), "-s", "brute-force", "-o", str(cert), "--force"]).exit_code == 0
    png = tmp_path / "ledger.png"
    png.write_bytes(b"keep")
    result = runner.invoke(app, ["explain", str(cert), "--png", str(png), "--no-progress"])
    assert result.exit_code == 2 and png.read_bytes() == b"keep"

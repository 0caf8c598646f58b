"""--help as typer's conventions have it (defaults shown, no value type on a flag, no hidden
argument in a usage line), progress where a long command runs, and errors that say what is wrong."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from compact_proofs.generator import weights_io
from compact_proofs.generator.cli import app
from compact_proofs.generator.proving.prover import prove
from tests.models import build

runner = CliRunner()
COMMANDS = sorted(app.registered_commands and [c.name or c.callback.__name__ for c in app.registered_commands])


def help_of(*command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", [[]] + [[name] for name in COMMANDS])
def test_help_shows_no_value_type_on_a_flag_and_no_hidden_argument(command):
    text = help_of(*command)
    assert "<bool>" not in text and "more_k" not in text.lower()
    assert "--help" in text


def test_every_command_is_listed():
    assert {"train", "models", "prove", "check", "strategies", "explain", "sweep", "report", "faithfulness", "scaling",
            "induction"} <= set(COMMANDS)


def test_train_help_shows_every_default():
    text = help_of("train")
    for default in ("4; induction: 8", "64; induction: 8", "1; induction: 2", "[default: 32]", "[default: 3000]"):
        assert default in text
    assert "--seed" in text and "[required]" in text


def test_models_and_sweep_take_several_k_after_one_flag(tmp_path):
    assert "Usage: root models [OPTIONS]\n" in help_of("models") or "models [OPTIONS]" in help_of("models")
    result = runner.invoke(app, ["sweep", "--k", "0", "5", "--n-seeds", "1", "-r", str(tmp_path)])
    assert result.exit_code == 2 and "positive" in result.output


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    folder = tmp_path_factory.mktemp("c")
    proof = prove(build("gaussian", 2, V=3, N=3, D=4, H=2, scale=1.0, biases=False, dtype=np.float32), "brute-force")
    (folder / "c.msgpack").write_bytes(proof.raw)
    return folder / "c.msgpack"


def test_explain_shows_its_stages_when_stderr_is_not_a_terminal(cert):
    shown = runner.invoke(app, ["explain", str(cert)])
    assert shown.exit_code == 0 and "ledger: checking the certificate" in shown.stderr
    assert "ledger: each step swapped" in shown.stderr
    for quiet in (["explain", str(cert), "--no-progress"], ["-q", "explain", str(cert)]):
        result = runner.invoke(app, quiet)
        assert result.exit_code == 0 and "ledger:" not in result.stderr


def test_an_output_directory_is_called_a_directory(cert, tmp_path):
    model = tmp_path / "m.npz"
    weights_io.save(model, build("gaussian", 1, V=3, N=3, D=4, H=2, scale=1.0, biases=False, dtype=np.float32))
    (tmp_path / "adir").mkdir()
    for command in (["prove", str(model), "-o", str(tmp_path / "adir")], ["train", "--seed", "1", "-o", str(tmp_path / "adir")],
                    ["explain", str(cert), "--png", str(tmp_path / "adir")]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2 and "is a directory" in result.output and "pipe" not in result.output


@pytest.mark.parametrize("extra", [{"blocks.0.ln1.w": np.ones(4, np.float32)}, {"blocks.0.mlp.W_in": np.ones((4, 8), np.float32)},
                                   {"ln_final.w": np.ones(4, np.float32)}])
def test_layernorm_and_mlp_weights_are_told_what_is_certified(tmp_path, extra):
    weights = build("gaussian", 1, V=3, N=3, D=4, H=2, scale=1.0, biases=False, dtype=np.float32) | extra
    np.savez(tmp_path / "m.npz", **weights)
    result = runner.invoke(app, ["prove", str(tmp_path / "m.npz"), "-s", "brute-force", "-o", str(tmp_path / "c.msgpack")])
    assert result.exit_code == 3 and "LayerNorm" in result.output
    assert "one head" not in result.output and "two layers" in result.output

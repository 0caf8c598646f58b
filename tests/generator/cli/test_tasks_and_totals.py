"""Every command reports what a certificate is about: a format-v2 certificate's task and domain
(never Max-of-K figures), and an empty domain (a total of 0) without a traceback, in every output
mode."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from typer.testing import CliRunner

from compact_proofs.checker.cli import main as check_main
from compact_proofs.checker.tasks import resolve
from compact_proofs.generator import weights_io
from compact_proofs.generator.cli import app
from compact_proofs.generator.proving.prover import prove
from tests.models import build

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "schema" / "verdicts-v1.schema.json").read_text())
runner = CliRunner()


def two_layer(V: int, N: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    normal = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    weights = {"embed.W_E": normal(V, 6), "pos_embed.W_pos": normal(N, 6), "unembed.W_U": normal(6, V)}
    for layer in range(2):
        weights |= {f"blocks.{layer}.attn.W_{x}": normal(1, 6, 4) for x in "QKV"} | {f"blocks.{layer}.attn.W_O": normal(1, 4, 6)}
    return weights


@pytest.fixture(scope="module")
def induction_cert(tmp_path_factory) -> tuple[Path, int, int]:
    folder = tmp_path_factory.mktemp("induction")
    proof = prove(two_layer(4, 4), "brute-force", task="induction")
    (folder / "ind.msgpack").write_bytes(proof.raw)
    return folder / "ind.msgpack", proof.verdict.claimed_correct, proof.verdict.total


def test_explain_on_an_induction_certificate_gives_its_own_counts(induction_cert):
    cert, certified, total = induction_cert
    assert total == resolve("induction").domain_size(4, 4)
    result = runner.invoke(app, ["explain", str(cert), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"{certified} of the task's {total} inputs certified" in result.stdout and "task induction" in result.stdout
    assert f"of {4**4} inputs" not in result.stdout and "by copies of the max" not in result.stdout
    report = json.loads(runner.invoke(app, ["explain", str(cert), "--json", "--no-progress"]).stdout)
    assert (report["task"], report["format"], report["certified"], report["total"]) == ("induction", 2, str(certified), str(total))
    assert not report["where_lost"]["available"] and "format v2" in report["where_lost"]["reason"]


def test_explain_on_a_max_certificate_still_breaks_it_down(tmp_path):
    proof = prove(build("gaussian", 2, V=3, N=3, D=4, H=2, scale=1.0, biases=False, dtype=np.float32), "brute-force")
    (tmp_path / "c.msgpack").write_bytes(proof.raw)
    report = json.loads(runner.invoke(app, ["explain", str(tmp_path / "c.msgpack"), "--json", "--no-progress"]).stdout)
    lost = report["where_lost"]
    assert report["task"] == "max" and lost["available"] and lost["total"] == 27
    assert lost["not_certified"] == 27 - proof.verdict.claimed_correct


@pytest.fixture(scope="module")
def empty_domain(tmp_path_factory) -> tuple[Path, Path]:
    """Induction at n_ctx = 1: no input's last token occurs earlier, so the domain is empty."""
    folder = tmp_path_factory.mktemp("empty")
    weights = build("gaussian", 3, V=3, N=1, D=4, H=2, scale=1.0, biases=False, dtype=np.float32)
    weights_io.save(folder / "m.npz", weights, {"task": "induction", "seed": 0})
    proof = prove(weights, "brute-force", task="induction")
    assert proof.verdict.total == 0
    (folder / "empty.msgpack").write_bytes(proof.raw)
    return folder / "m.npz", folder / "empty.msgpack"


@pytest.mark.parametrize("args, code", [([], 0), (["-q"], 0), (["--json"], 0), (["--pure"], 0), (["--min-accuracy", "0"], 1),
                                        (["--min-accuracy", "0", "--json"], 1)])
def test_an_empty_domain_in_every_output_mode(empty_domain, capsys, args, code):
    _, cert = empty_domain
    assert check_main([str(cert), *args]) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if "--json" in args:
        document = json.loads(out)
        jsonschema.validate(document, SCHEMA)
        assert document["results"][0]["accuracy_lower_bound"] is None and document["exit_code"] == code
    elif "-q" not in args:
        assert ("domain is empty" in out) and out.count("\n") == 1


@pytest.mark.parametrize("command", [["prove", "{model}", "-s", "brute-force", "-o", "{out}"],
                                     ["prove", "{model}", "-s", "brute-force", "-o", "{out}", "--json"],
                                     ["check", "{cert}"], ["check", "{cert}", "--json"], ["explain", "{cert}"],
                                     ["explain", "{cert}", "--json"], ["check", "{cert}", "--min-accuracy", "1/2"]])
def test_generator_commands_on_an_empty_domain(empty_domain, tmp_path, command):
    model, cert = empty_domain
    args = [a.format(model=model, cert=cert, out=tmp_path / "c.msgpack") for a in command]
    result = runner.invoke(app, [*args, "--no-progress"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == (1 if "--min-accuracy" in args else 0), result.output
    assert "Traceback" not in result.output

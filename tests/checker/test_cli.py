"""The standalone checker's command-line contract (checker/cli.py): exit codes, one JSON shape,
decimals rounded down, CI gating, model binding, and no traceback on any path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compact_proofs.checker.cli import EXIT_OF, float_down, lower_decimal, main
from compact_proofs.generator import weights_io
from compact_proofs.generator.proving.prover import prove
from tests.helpers import encode
from tests.models import build

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schema" / "verdicts-v1.schema.json").read_text())
WEIGHTS = build("gaussian", 2, V=4, N=3, D=4, H=2, scale=1.0, biases=True, dtype=np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("certs")
    brute = prove(WEIGHTS, "brute-force")
    count = brute.verdict.verified_correct
    out = {
        "accepted": brute.raw,
        "rejected": encode(WEIGHTS, "brute-force", count + 1),
        "invalid": b"not a certificate",
        "unsupported": prove(WEIGHTS, "subcubic/max_diff/per_output+chords/max_diff").raw,
    }
    paths = {}
    for name, raw in out.items():
        paths[name] = folder / f"{name}.msgpack"
        paths[name].write_bytes(raw)
    paths["model"] = folder / "model.npz"
    weights_io.save(paths["model"], WEIGHTS)
    other = dict(WEIGHTS, **{"unembed.b_U": WEIGHTS["unembed.b_U"] + np.float32(1)})
    paths["other-model"] = folder / "other.npz"
    weights_io.save(paths["other-model"], other)
    return paths


def run_json(*args) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-m", "compact_proofs.checker", *map(str, args), "--json"], capture_output=True, text=True, timeout=120)
    document = json.loads(done.stdout)
    jsonschema.validate(document, SCHEMA)
    assert document["exit_code"] == done.returncode
    return done.returncode, document


@pytest.mark.parametrize("status", ["accepted", "rejected", "invalid", "unsupported"])
def test_each_outcome_has_its_exit_code_and_line(files, status, capsys):
    options = ["--pure"] if status == "unsupported" else []
    assert main([str(files[status]), "--no-progress", *options]) == EXIT_OF[status]
    out, err = capsys.readouterr()
    assert out.startswith(status.upper()) and out.count("\n") == 1 and "Traceback" not in out + err


def test_a_resource_limit_is_exit_4(files, capsys, monkeypatch):
    from compact_proofs.checker.strategies import brute_force

    monkeypatch.setattr(brute_force, "MAX_INPUTS", 10)
    assert main([str(files["accepted"]), "--no-progress"]) == 4
    assert capsys.readouterr().out.startswith("LIMIT")


def test_a_batch_exits_with_the_most_serious_outcome(files):
    assert main([str(files["accepted"]), str(files["rejected"]), str(files["invalid"]), "-q"]) == 3
    assert main([str(files["accepted"]), str(files["rejected"]), "-q"]) == 1
    assert main([str(files["accepted"]), str(files["accepted"]), "-q"]) == 0


def test_json_has_one_shape_for_one_or_many_certificates(files):
    code, one = run_json(files["accepted"])
    assert code == 0 and len(one["results"]) == 1
    record = one["results"][0]
    assert record["status"] == "accepted" and isinstance(record["verified_correct"], str)
    numerator, denominator = map(int, record["bound"].split("/"))
    assert Fraction(record["accuracy_lower_bound"]) <= Fraction(numerator, denominator)
    assert record["weights_digest"].startswith("sha256:")
    code, many = run_json(files["accepted"], files["rejected"], files["invalid"])
    assert code == 3 and [r["status"] for r in many["results"]] == ["accepted", "rejected", "invalid"]
    assert many.keys() == one.keys()


def test_min_accuracy_gates_on_the_certified_bound(files, capsys):
    verdict = prove(WEIGHTS, "brute-force").verdict
    exact = Fraction(verdict.verified_correct, verdict.total)
    assert main([str(files["accepted"]), "-q", "--min-accuracy", str(exact)]) == 0
    above = exact + Fraction(1, 10**9)
    assert main([str(files["accepted"]), "--min-accuracy", f"{float(above):.12f}", "--no-progress"]) == 1
    assert "below --min-accuracy" in capsys.readouterr().out
    just_above = exact + Fraction(1, 10**15)  # the message shows the difference, not two equal decimals
    assert main([str(files["accepted"]), "--min-accuracy", f"{just_above.numerator}/{just_above.denominator}", "--no-progress"]) == 1
    line = capsys.readouterr().out
    assert f"{exact.numerator}/{exact.denominator}" in line or f"{verdict.verified_correct}/{verdict.total}" in line
    assert f"{just_above}" in line


def test_model_binds_a_certificate_to_a_weights_file(files, capsys):
    assert main([str(files["accepted"]), "--model", str(files["model"]), "-q"]) == 0
    assert main([str(files["accepted"]), "--model", str(files["other-model"]), "--no-progress"]) == 1
    assert "are not the given model's" in capsys.readouterr().out
    assert main([str(files["accepted"]), "--model", str(files["model"].with_suffix(".pt"))]) == 3
    capsys.readouterr()
    assert main([str(files["accepted"]), "--model", str(files["model"].parent), "--json"]) == 3
    out, err = capsys.readouterr()
    assert "is a directory" in err and json.loads(out)["exit_code"] == 3 and json.loads(out)["results"] == []
    assert main([str(files["accepted"]), "--model", str(files["accepted"])]) == 3
    err = capsys.readouterr().err
    assert "not a weights file" in err and ".pt needs torch" not in err


def test_quiet_prints_nothing_and_version_prints_one_line(files, capsys):
    assert main([str(files["rejected"]), "-q"]) == 1
    assert capsys.readouterr() == ("", "")
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("compact-proofs-check ")


@pytest.mark.parametrize("option", [["--max-seconds", "-1"], ["--max-seconds", "nan"], ["--min-accuracy", "2"], ["--frobnicate"]])
def test_bad_options_are_usage_errors(option, capsys):
    with pytest.raises(SystemExit) as done:
        main(["x.msgpack", *option])
    assert done.value.code == 2 and "Traceback" not in capsys.readouterr().err


@given(st.integers(0, 10**30), st.integers(1, 10**30))
def test_decimals_are_rounded_down(numerator, denominator):
    if numerator > denominator:
        numerator, denominator = denominator, numerator
    shown = lower_decimal(numerator, denominator)
    assert Fraction(shown) <= Fraction(numerator, denominator)
    assert Fraction(float_down(numerator, denominator)) <= Fraction(numerator, denominator)
    value = Fraction(numerator, denominator)
    if value >= Fraction(1, 10**4):
        assert Fraction(numerator, denominator) - Fraction(shown) < Fraction(1, 10**6)
    elif value > 0:
        assert "e-" in shown and Fraction(shown) > value * (1 - Fraction(1, 10**5))


def test_the_issue_examples_round_down():
    assert lower_decimal(16758875, 16777216) == "0.998906"  # 0.99890679...: never shown as 0.998907
    assert lower_decimal(35, 10**7) == "3.50000e-06"
    assert lower_decimal(0, 5) == "0.000000"


def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    slow = tmp_path / "slow.msgpack"
    rng = np.random.default_rng(0)
    shapes = {"embed.W_E": (4, 4), "pos_embed.W_pos": (10, 4), "blocks.0.attn.W_Q": (1, 4, 2), "blocks.0.attn.W_K": (1, 4, 2),
              "blocks.0.attn.W_V": (1, 4, 2), "blocks.0.attn.W_O": (1, 2, 4), "unembed.W_U": (4, 4)}
    slow.write_bytes(encode({k: rng.normal(size=s) for k, s in shapes.items()}, "brute-force", 0))
    # SIGINT as a terminal delivers it, whatever this process inherited (a shell's background job ignores it)
    child = subprocess.Popen([sys.executable, "-c", "from compact_proofs.checker.cli import main_exit; main_exit()", str(slow), "--pure"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(3)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130 and err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in out + err


def test_a_closed_pipe_is_no_traceback():
    done = subprocess.run(f"{sys.executable} -c 'from compact_proofs.checker.cli import main_exit; main_exit()' --list-strategies | head -1",
                          shell=True, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.strip() == "brute-force" and "Traceback" not in done.stderr


def test_options_may_follow_certificates_and_a_folder_is_searched(files, tmp_path, capsys):
    assert main([str(files["accepted"]), "--min-accuracy", "0", str(files["accepted"]), "-q"]) == 0
    assert main([str(files["accepted"]), "--json", "--no-progress"]) == 0 and json.loads(capsys.readouterr().out)["exit_code"] == 0
    folder = tmp_path / "certs" / "deeper"
    folder.mkdir(parents=True)
    (folder / "a.msgpack").write_bytes(files["accepted"].read_bytes())
    assert main([str(tmp_path / "certs"), "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith(f"ACCEPTED {folder / 'a.msgpack'}")
    (folder / "b.msgpack").write_bytes(files["rejected"].read_bytes())
    assert main([str(tmp_path / "certs"), "-q"]) == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as done:
        main([str(tmp_path / "empty")])
    assert done.value.code == 2 and "no certificates" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".npz"])
def test_model_reads_every_file_train_writes_without_torch(files, tmp_path, suffix):
    """--model reads .pt (a restricted unpickler, no torch), .safetensors and .npz, with the
    description train adds, in a process where torch cannot be imported."""
    model = tmp_path / f"m{suffix}"
    weights_io.save(model, WEIGHTS, {"task": "max", "seed": 2})
    other = tmp_path / f"other{suffix}"
    weights_io.save(other, {**WEIGHTS, "unembed.W_U": WEIGHTS["unembed.W_U"] * np.float32(2)})
    blocker = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in ("torch", "safetensors", "compact_proofs.generator"))
    for path, code in ((model, 0), (other, 1)):
        script = blocker + f"from compact_proofs.checker.cli import main\nsys.exit(main([{str(files['accepted'])!r}, '--model', {str(path)!r}, '-q']))\n"
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert run.returncode == code, run.stderr


def test_a_pt_file_that_asks_for_anything_but_tensors_is_refused_unrun(files, tmp_path, capsys):
    import torch

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"embed.W_E": Payload()}, tmp_path / "evil.pt")
    assert main([str(files["accepted"]), "--model", str(tmp_path / "evil.pt")]) == 3
    assert "never loaded" in capsys.readouterr().err and not marker.exists()
    (tmp_path / "legacy.pt").write_bytes(b"\x80\x02}q\x00.")  # a bare pickle, not torch's zip archive
    assert main([str(files["accepted"]), "--model", str(tmp_path / "legacy.pt")]) == 3


@pytest.mark.parametrize("command", [["-m", "compact_proofs.checker"], ["-m", "compact_proofs.generator", "check"]])
@pytest.mark.parametrize("value", ["1e-99999999", "1e+99999999", "0." + "0" * 5000 + "1", "1/" + "9" * 5000])
def test_min_accuracy_is_parsed_in_bounded_time(files, command, value):
    start = time.monotonic()
    run = subprocess.run([sys.executable, *command, str(files["accepted"]), "--min-accuracy", value], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 2 and "Traceback" not in run.stderr and "min-accuracy" in run.stderr
    assert time.monotonic() - start < 30


def test_the_printed_bound_passes_when_given_back(files, capsys):
    """--json's accuracy_lower_bound and the decimal of the verdict line, passed back as
    --min-accuracy, pass (each is at or below the exact bound)."""
    for path in [files["accepted"]]:  # (the published bound: test_the_published_bound_round_trips)
        assert main([str(path), "--json", "--no-progress"]) == 0
        document = json.loads(capsys.readouterr().out)
        printed = json.dumps(document["results"][0]["accuracy_lower_bound"])
        assert main([str(path), "--min-accuracy", printed, "-q"]) == 0
        assert main([str(path), "--no-progress"]) == 0
        decimal = capsys.readouterr().out.split(" = ")[1].split()[0]
        assert main([str(path), "--min-accuracy", decimal, "-q"]) == 0


@given(st.integers(1, 10**30), st.integers(0, 10**30))
def test_json_prints_a_float_whose_decimal_is_a_lower_bound(denominator, numerator):
    numerator = numerator % (denominator + 1)
    value = float_down(numerator, denominator)
    bound = Fraction(numerator, denominator)
    assert Fraction(value) <= bound and Fraction(json.dumps(value)) <= bound
    above = np.nextafter(value, np.inf)  # the largest such float: the next one up breaks a condition
    assert Fraction(float(above)) > bound or Fraction(json.dumps(float(above))) > bound


def test_the_published_bound_round_trips():
    value = float_down(16773324, 16777216)  # the committed brute-force certificate's bound
    assert Fraction(repr(value)) <= Fraction(16773324, 16777216)

"""Format v1: round trip, canonical form, digest, and every kind of bad input rejected cleanly."""

from __future__ import annotations

import os
import subprocess
import sys

import msgpack
import numpy as np
import pytest

from compact_proofs.checker import certificate
from compact_proofs.checker.cli import main
from compact_proofs.checker.errors import InvalidCertificate
from tests.helpers import encode
from tests.models import build

WEIGHTS = build("gaussian", 1, V=3, N=2, D=2, H=2, scale=1.0, biases=False, dtype=np.float32)


def body() -> dict:
    return msgpack.unpackb(encode(WEIGHTS, claimed=5), raw=False)


def reencode(obj: dict, fix_digest: bool = True) -> bytes:
    if fix_digest:
        obj["digest"] = certificate.digest_of(obj)
    return certificate.canonical_bytes(obj)


def test_round_trip():
    cert = certificate.decode(encode(WEIGHTS, claimed=5))
    assert cert.strategy == "brute-force" and cert.claimed_correct == 5 and cert.claimed_total == 9
    for key, value in WEIGHTS.items():
        assert np.array_equal(cert.weights[key], value) and cert.weights[key].dtype == value.dtype


def test_counts_beyond_64_bits_round_trip():
    raw = encode(WEIGHTS, claimed=2**100, total=2**120)
    assert certificate.decode(raw).claimed_total == 2**120


def test_non_canonical_encoding_is_rejected():
    obj = body()
    raw = msgpack.packb(dict(reversed(list(obj.items()))), use_bin_type=True)
    with pytest.raises(InvalidCertificate, match="canonical"):
        certificate.decode(raw)


def test_digest_mismatch_is_rejected():
    obj = body()
    obj["claim"]["correct"] = "6"
    with pytest.raises(InvalidCertificate, match="digest"):
        certificate.decode(reencode(obj, fix_digest=False))


def mutate(edit) -> bytes:
    obj = body()
    edit(obj)
    return reencode(obj)


def set_weight(key, **fields) -> bytes:
    return mutate(lambda obj: obj["weights"][key].update(fields))


nan = np.array(WEIGHTS["embed.W_E"])
nan[0, 0] = np.nan
inf = np.array(WEIGHTS["unembed.W_U"])
inf[1, 1] = -np.inf

BAD = {
    "empty": b"",
    "truncated": encode(WEIGHTS)[:-7],
    "random bytes": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
    "not a map": msgpack.packb([1, 2, 3]),
    "wrong format": mutate(lambda o: o.update(format="something-else")),
    "wrong version": mutate(lambda o: o.update(version=3)),
    "version 2 without a task": mutate(lambda o: o.update(version=2)),
    "version 1 with a task": mutate(lambda o: o.update(task="max")),
    "version 2 task not a name": mutate(lambda o: o.update(version=2, task="max of k")),
    "boolean version": mutate(lambda o: o.update(version=True)),
    "unknown strategy": mutate(lambda o: o.update(strategy="quantum")),
    "unknown top-level key": mutate(lambda o: o.update(extra=1)),
    "missing evidence": mutate(lambda o: o.pop("evidence")),
    "unknown evidence": mutate(lambda o: o["evidence"].update(hint=1)),
    "wrong dtype": set_weight("embed.W_E", dtype="<i8"),
    "unsupported dtype": set_weight("embed.W_E", dtype=">f4"),
    "wrong shape": set_weight("embed.W_E", shape=[2, 3]),
    "inconsistent shapes": mutate(lambda o: o["weights"].update({"unembed.W_U": certificate.tensor(np.zeros((2, 4), np.float32))})),
    "two heads": mutate(lambda o: o["weights"].update({"blocks.0.attn.W_Q": certificate.tensor(np.zeros((2, 2, 2), np.float32))})),
    "NaN weight": mutate(lambda o: o["weights"].update({"embed.W_E": certificate.tensor(nan)})),
    "Inf weight": mutate(lambda o: o["weights"].update({"unembed.W_U": certificate.tensor(inf)})),
    "LayerNorm weight": mutate(lambda o: o["weights"].update({"ln_final.w": certificate.tensor(np.ones(2, np.float32))})),
    "missing weight": mutate(lambda o: o["weights"].pop("blocks.0.attn.W_V")),
    "absurd declared size": set_weight("embed.W_E", shape=[2**40, 2**40]),
    "size mismatch": set_weight("embed.W_E", shape=[3, 3]),
    "negative claim": mutate(lambda o: o["claim"].update(correct="-1")),
    "claim not decimal": mutate(lambda o: o["claim"].update(correct="1e3")),
    "claim as integer": mutate(lambda o: o["claim"].update(correct=5)),
    "huge claim string": mutate(lambda o: o["claim"].update(correct="9" * 5000)),
    "extension type": msgpack.packb(msgpack.ExtType(1, b"x")),
    "float param": mutate(lambda o: o["params"].update(p=1.5)),
    "unknown param": mutate(lambda o: o["params"].update(p=1)),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_one_line_exit_3(name, tmp_path, capsys):
    path = tmp_path / "bad.msgpack"
    path.write_bytes(BAD[name])
    code = main([str(path), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 3, out
    assert out.count("\n") == 1 and out.startswith("INVALID") and "Traceback" not in out + err


def test_missing_file_is_exit_3(tmp_path, capsys):
    assert main([str(tmp_path / "nope.msgpack")]) == 3
    assert "cannot read" in capsys.readouterr().out


def test_usage_error_is_exit_2():
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_bad_inputs_through_a_real_process(tmp_path):
    for name in ("random bytes", "absurd declared size", "NaN weight"):
        path = tmp_path / "bad.msgpack"
        path.write_bytes(BAD[name])
        run = subprocess.run([sys.executable, "-m", "compact_proofs.checker", str(path)], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PYTHONPATH": os.getcwd()})
        assert run.returncode == 3 and "Traceback" not in run.stderr and run.stdout.count("\n") == 1


def test_max_seconds_stops_a_check_that_runs_too_long(capsys):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "certificates" / "max4-seed123.brute-force.msgpack"
    assert main([str(path), "--no-progress", "--max-seconds", "0.05"]) == 4
    assert capsys.readouterr().out.startswith("LIMIT") 


def test_models_too_costly_for_exact_paths_are_refused(tmp_path, capsys):
    big = build("gaussian", 0, V=2048, N=2, D=1024, H=1, scale=1.0, biases=False, dtype=np.float32)
    path = tmp_path / "big.msgpack"
    path.write_bytes(encode(big))
    assert main([str(path), "--no-progress"]) == 3
    assert "too large to check" in capsys.readouterr().out


def test_cubic_case_limit(tmp_path, capsys):
    wide = build("gaussian", 0, V=512, N=4, D=1, H=1, scale=1.0, biases=False, dtype=np.float32)
    path = tmp_path / "wide.msgpack"
    path.write_bytes(encode(wide, strategy="cubic", evidence={"claims": np.zeros(1, np.float32), "candidates": np.zeros((1, 0), np.int64)}))
    assert main([str(path), "--no-progress"]) == 4
    assert "exceed the cubic limit" in capsys.readouterr().out

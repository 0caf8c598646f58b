"""Regressions from the second independent review of the checker (2026-12-01): no false ACCEPT
was found; each test below reproduces one of its findings (a wrongful rejection or internal
error on a valid certificate, a disagreement between the two paths, or a traceback)."""

from __future__ import annotations

import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from compact_proofs.checker import certificate
from compact_proofs.checker.cli import main
from compact_proofs.checker.exact import Dyadic
from compact_proofs.checker.pure import check_bytes as pure_check
from compact_proofs.checker.strategies import subcubic
from compact_proofs.checker.strategies.cubic import count_cases
from tests.helpers import check_bytes, encode
from tests.models import build
from tests.reference.evaluator import exact_correct_count

KEYS = {"embed.W_E": "VD", "pos_embed.W_pos": "ND", "blocks.0.attn.W_Q": "1DH", "blocks.0.attn.W_K": "1DH",
        "blocks.0.attn.W_V": "1DH", "blocks.0.attn.W_O": "1HD", "unembed.W_U": "DV"}


def zeros(V, N, D, H) -> dict:
    sizes = {"V": V, "N": N, "D": D, "H": H, "1": 1}
    return {k: np.zeros([sizes[a] for a in axes]) for k, axes in KEYS.items()}


def both(raw: bytes):
    from compact_proofs.checker.verify import check_bytes as fast

    return fast(raw), pure_check(raw)


def test_integers_beyond_the_float_range_with_a_small_value_convert():
    """Finding 1: 2^1100 * 2^-1100 = 1 took the vectorised path and overflowed."""
    d = Dyadic(np.array([1 << 1100, 3 << 1099, 0], dtype=object), -1100)
    assert d.to_float().tolist() == [1.0, 1.5, 0.0]


def integer_model_with_one_tiny_weight() -> dict:
    rng = np.random.default_rng(0)
    w = {k: rng.integers(-200, 200, size=v.shape).astype(np.float64) for k, v in zeros(3, 2, 2, 2).items()}
    w["blocks.0.attn.W_V"][0, 0, 1] = 2.0**-1000  # the shared exponent drops to -1000
    w["blocks.0.attn.W_O"][0, 1, :] = 0.0  # and that head dimension never reaches the logits
    return w


@pytest.mark.parametrize("strategy", ["cubic", "cubic/reference", "subcubic/max_diff_exact/per_output+chords/exact_EQKE+max_diff_exact"])
def test_a_model_whose_integers_are_wide_but_values_small_is_checked(strategy):
    """Finding 1: such a model's certificates were rejected ('logit magnitudes beyond float64')
    or ended in an internal error."""
    from compact_proofs.generator.proving.prover import prove

    w = integer_model_with_one_tiny_weight()
    proof = prove(w, strategy)
    assert proof.verdict.accepted and proof.verdict.verified_correct <= exact_correct_count(w)
    assert pure_check(proof.raw).accepted or strategy.startswith("subcubic")


def test_exact_ties_with_integers_of_thousands_of_bits_are_decided():
    """Finding 2: the residues covered 3600 bits; subnormal weights need more (an internal error)."""
    rng = np.random.default_rng(7)
    w = {k: rng.normal(size=v.shape) for k, v in zeros(2, 2, 2, 2).items()}
    tiny = 2.0**-1074
    w["embed.W_E"][0, 1] = w["blocks.0.attn.W_V"][0, 1, 1] = w["blocks.0.attn.W_O"][0, 1, 1] = w["unembed.W_U"][1, 0] = tiny
    w["unembed.W_U"][:, 1] = w["unembed.W_U"][:, 0]  # identical columns: every input is an exact tie
    fast, pure = both(encode(w, "brute-force", 0))
    assert fast.accepted and pure.accepted and fast.verified_correct == pure.verified_correct == 0
    assert fast.notes["exact_zeros"] == 4


def test_huge_hints_loosen_the_bound_instead_of_failing():
    """Finding 3: finite hints near the float maximum made the row mean overflow (internal error)."""
    from compact_proofs.generator.proving.prover import prove

    w = build("gaussian", 11, V=3, N=3, D=3, H=2, scale=1.0, biases=True, dtype=np.float32)
    variant = "subcubic/max_diff/drop_average_query_per_output_logit_reasoning/mean_recursive+max_diff_subproduct_recursive"
    evidence = dict(certificate.decode(prove(w, variant).raw).evidence)
    evidence["peel1_left"] = np.full(evidence["peel1_left"].shape, 1.7976931348623157e308)
    evidence["peel1_right"] = np.full(evidence["peel1_right"].shape, 1.7976931348623157e308)
    verdict = check_bytes(encode(w, variant, 0, evidence))
    assert not verdict.reason.startswith("internal error"), verdict.reason


def _with_weight(obj_edit) -> bytes:
    import msgpack

    body = msgpack.unpackb(encode(build("gaussian", 1, V=3, N=2, D=2, H=2, scale=1.0, biases=False, dtype=np.float32)), raw=False)
    obj_edit(body)
    body["digest"] = certificate.digest_of(body)
    return certificate.canonical_bytes(body)


def _u8(body):
    body["weights"]["embed.W_E"] = {"dtype": "|u1", "shape": [3, 2], "data": bytes(6)}


def _list_dtype(body):
    body["weights"]["embed.W_E"]["dtype"] = ["<f4"]


@pytest.mark.parametrize("edit", [_u8, _list_dtype], ids=["uint8 weights", "a list as dtype"])
def test_both_paths_find_these_files_invalid(edit):
    """Findings 4 and 5: --pure accepted uint8 weights, and crashed on a list-valued dtype."""
    fast, pure = both(_with_weight(edit))
    assert fast.invalid and pure.invalid and not pure.reason.startswith("pure: internal")


def test_the_paths_agree_whatever_the_order_of_the_defects():
    """Finding 6: an unknown evidence field, or a bad candidate row late in the table, next to a
    false claim: both paths now say INVALID (the evidence is checked before any claim)."""
    w = build("gaussian", 5, V=3, N=2, D=4, H=2, scale=1.0, biases=False, dtype=np.float32)
    good = np.array([[1], [0], [0], [0], [0], [0]], dtype=np.int64)
    bad = good.copy()
    bad[5, 0] = 2  # the row of (m, q) = (2, 2) names m itself
    false = np.full(count_cases(3, 2), -1.0, dtype=np.float32)
    for evidence in ({"claims": false, "candidates": good, "extra": 1}, {"claims": false, "candidates": bad}):
        fast, pure = both(encode(w, "cubic", 0, evidence))
        assert fast.invalid and pure.invalid, (fast.reason, pure.reason)


def test_both_paths_settle_signs_to_the_same_precision():
    """Finding 7: margins (e^d - 1)^2 with d = 2^-4140 need about 8280 bits: the fast path (16384)
    accepted the true count 7 of 8, the pure path (8192) found none."""
    w = zeros(2, 3, 4, 1)
    a = 2.0**-1074
    w["pos_embed.W_pos"][:, 0] = [0.0, a, 2 * a]  # scores i 2^-4140
    w["blocks.0.attn.W_Q"][0, 0, 0], w["blocks.0.attn.W_K"][0, 0, 0] = 2.0**-1000, 2.0**-993
    w["pos_embed.W_pos"][:, 1] = [1.0, -2.0, 1.0]  # values 1, -2, 1 by position
    w["blocks.0.attn.W_V"][0, 1, 0] = w["blocks.0.attn.W_O"][0, 0, 2] = 1.0
    w["unembed.W_U"][2, :] = [0.0, 1.0]
    fast, pure = both(encode(w, "brute-force", 7))  # every input containing a 1 is correct
    assert fast.accepted and pure.accepted and fast.verified_correct == pure.verified_correct == 7


def test_pure_with_model_checks_the_model(tmp_path, capsys):
    """Finding 8: --pure --model rejected every certificate (the pure path had no weights digest)."""
    from compact_proofs.generator import weights_io

    w = build("gaussian", 2, V=3, N=2, D=2, H=2, scale=1.0, biases=False, dtype=np.float32)
    cert, model = tmp_path / "c.msgpack", tmp_path / "m.npz"
    cert.write_bytes(encode(w, "brute-force", 0))
    weights_io.save(model, w)
    assert main([str(cert), "--pure", "--model", str(model), "-q"]) == 0
    assert pure_check(cert.read_bytes()).weights_digest == check_bytes(cert.read_bytes()).weights_digest


def test_a_large_time_limit_is_no_traceback(tmp_path):
    """Finding 9: --max-seconds above about 2.2e6 overflowed the watchdog's poll."""
    cert = tmp_path / "c.msgpack"
    cert.write_bytes(encode(build("gaussian", 2, V=3, N=2, D=2, H=2, scale=1.0, biases=False, dtype=np.float32)))
    done = subprocess.run([sys.executable, "-m", "compact_proofs.checker", str(cert), "--max-seconds", "1e10"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr


def _safetensors(header: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + data


@pytest.mark.parametrize("name, content", [
    ("list-header.safetensors", _safetensors(b"[1, 2]")),
    ("string-offsets.safetensors", _safetensors(b'{"embed.W_E": {"dtype": "F32", "shape": [1], "data_offsets": ["a", "b"]}}')),
    ("float-offsets.safetensors", _safetensors(b'{"embed.W_E": {"dtype": "F32", "shape": [1], "data_offsets": [0.5, 4]}}', bytes(4))),
    ("corrupt.npz", None),
])
def test_a_malformed_model_file_is_one_line_exit_3(tmp_path, name, content, capsys):
    """Finding 10: malformed --model files escaped as tracebacks."""
    path = tmp_path / name
    if content is None:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("embed.W_E.npy", b"\x93NUMPY" + bytes(200))
        raw = bytearray(path.read_bytes())
        raw[60:80] = bytes(20)
        path.write_bytes(bytes(raw))
    else:
        path.write_bytes(content)
    cert = tmp_path / "c.msgpack"
    cert.write_bytes(encode(build("gaussian", 2, V=3, N=2, D=2, H=2, scale=1.0, biases=False, dtype=np.float32)))
    assert main([str(cert), "--model", str(path), "-q"]) == 3
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and err.count("\n") == 1


def test_pure_refuses_an_oversized_file_before_reading_it(tmp_path, capsys):
    """Finding 11: --pure read any file whole (/dev/zero until memory ran out)."""
    big = tmp_path / "big.msgpack"
    with open(big, "wb") as handle:
        handle.truncate((1 << 30) + 1)  # sparse: no disk, no time
    assert main([str(big), "--pure", "--no-progress"]) == 3
    assert capsys.readouterr().out.startswith("INVALID")


def test_every_subcubic_variant_names_its_evidence():
    """Both paths check the set of evidence fields first, with the same rule."""
    from compact_proofs.checker.pure import _evidence_fields
    from compact_proofs.checker.strategies import evidence_fields

    for name in ["brute-force", "cubic", "cubic/reference"] + subcubic.NAMES:
        assert evidence_fields(name) == _evidence_fields(name), name
        assert len(evidence_fields(name)) == (2 if name.startswith("cubic") else 1)

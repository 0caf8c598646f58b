"""The standard-library second path agrees with the fast path, and depends on neither numpy, FLINT nor msgpack."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given

from compact_proofs.checker.pure import check_bytes
from compact_proofs.generator.proving.prover import prove
from tests.helpers import encode
from tests.models import tiny_models

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("strategy", ["brute-force", "cubic", "cubic/reference"])
@given(weights=tiny_models(max_vocab=4, max_ctx=3, max_inputs=64))
def test_pure_and_fast_paths_agree(strategy, weights):
    proof = prove(weights, strategy)
    pure = check_bytes(proof.raw)
    assert pure.accepted, pure.reason
    assert pure.verified_correct == proof.verdict.verified_correct


@given(weights=tiny_models(max_vocab=4, max_ctx=3, max_inputs=64, kinds=("gaussian", "coarse")))
def test_pure_path_rejects_what_the_fast_path_rejects(weights):
    proof = prove(weights, "cubic")
    from compact_proofs.checker import certificate

    cert = certificate.decode(proof.raw)
    claims = cert.evidence["claims"].copy()
    i = int(np.argmin(claims))
    claims[i] = np.nextafter(claims[i], np.float32(-np.inf))
    tampered = encode(weights, "cubic", cert.claimed_correct, dict(cert.evidence, claims=claims))
    from compact_proofs.checker.verify import check_bytes as fast_check

    assert check_bytes(tampered).accepted == fast_check(tampered).accepted  # (a claim is at most one ulp above its bound)
    over = encode(weights, "brute-force", prove(weights, "brute-force").verdict.verified_correct + 1)
    assert not check_bytes(over).accepted


def test_pure_path_imports_only_the_standard_library():
    for path in (ROOT / "compact_proofs" / "checker" / "pure").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or name.startswith("compact_proofs.checker.pure"), (path, name)


def _cubic_v1() -> bytes:
    from tests.models import build

    return prove(build("gaussian", 1, V=3, N=3, D=3, H=2, scale=1.0, biases=True, dtype=np.float32), "cubic").raw


def _induction_v2() -> bytes:
    from compact_proofs.checker import certificate
    from tests.models import build_v2

    weights = build_v2("gaussian", 1, V=3, N=3, D=3, E=2, H=2, L=2, scale=1.0, biases=True, dtype=np.float32)
    return certificate.encode(strategy="brute-force", params={}, claimed_correct=0, total=15, weights=weights, evidence={},
                              generator={"name": "test"}, task="induction")


@pytest.mark.parametrize("make", [_cubic_v1, _induction_v2])
def test_pure_cli_runs_with_numpy_flint_and_msgpack_unavailable(tmp_path, make):
    path = tmp_path / "c.msgpack"
    path.write_bytes(make())
    blocker = "import sys\n" + "".join(f"sys.modules[{n!r}] = None\n" for n in ("numpy", "flint", "msgpack", "torch"))
    code = blocker + f"from compact_proofs.checker.pure import check_bytes\nv = check_bytes(open({str(path)!r}, 'rb').read())\nprint(v.accepted, v.reason)\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.startswith("True"), run.stdout + run.stderr


@pytest.mark.parametrize("strategy", ["cubic", "cubic/reference"])
@given(weights=tiny_models(max_vocab=4, max_ctx=3, max_inputs=64))
def test_the_pure_cubic_filter_changes_no_outcome(strategy, weights):
    """The integer-enclosure filter only saves exact decisions: at 2 bits (almost nothing decided
    by it) the pure path reaches the same verdict and count as at 64."""
    from unittest.mock import patch

    from compact_proofs.checker.pure import cubic as pure_cubic

    proof = prove(weights, strategy)
    fine = check_bytes(proof.raw)
    with patch.object(pure_cubic, "BITS", 2):
        coarse = check_bytes(proof.raw)
    assert (coarse.accepted, coarse.verified_correct) == (fine.accepted, fine.verified_correct) == (True, proof.verdict.verified_correct)
    assert coarse.notes["exact_decisions"] >= fine.notes["exact_decisions"]


# --- memory: planned from the tensors' headers, before any weight becomes a Fraction ------------


def _peak(run):
    import tracemalloc

    tracemalloc.start()
    try:
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_file_is_a_limit_before_any_conversion():
    """The issue's case: a 17 MB certificate (4M float32 weights) was converted to Fractions
    (755 MB, 14 s) before its size was refused. Now the refusal reads only the headers."""
    import time

    from compact_proofs.checker import certificate

    rng = np.random.default_rng(0)
    V, N, D, H = 64, 4, 1024, 1024
    weights = {"embed.W_E": rng.normal(size=(V, D)), "pos_embed.W_pos": rng.normal(size=(N, D)), "unembed.W_U": rng.normal(size=(D, V)),
               **{f"blocks.0.attn.W_{x}": rng.normal(size=(1, D, H)) for x in "QKV"}, "blocks.0.attn.W_O": rng.normal(size=(1, H, D))}
    raw = certificate.encode(strategy="brute-force", params={}, claimed_correct=0, total=V**N,
                             weights={k: v.astype(np.float32) for k, v in weights.items()}, evidence={}, generator={"name": "t"})
    assert len(raw) > 16 << 20
    start = time.monotonic()
    verdict, peak = _peak(lambda: check_bytes(raw))
    assert verdict.limit and "too large" in verdict.reason
    assert time.monotonic() - start < 10 and peak < 4 * len(raw) + (32 << 20), peak


def test_a_plan_above_the_memory_budget_is_a_limit_unconverted(monkeypatch):
    import compact_proofs.checker.pure as pure

    weights = {k: v for k, v in _small(3).items()}
    raw = prove(weights, "cubic").raw
    monkeypatch.setattr(pure, "MAX_MEMORY", 1 << 10)
    monkeypatch.setattr(pure, "model", lambda w: pytest.fail("converted before the limit"))
    verdict = check_bytes(raw)
    assert verdict.limit and "MiB" in verdict.reason


def _small(seed):
    from tests.models import build

    return build("gaussian", seed, V=8, N=3, D=16, H=16, scale=1.0, biases=True, dtype=np.float64)


@pytest.mark.parametrize("strategy", ["brute-force", "cubic", "v2"])
def test_the_memory_plan_bounds_what_the_pure_path_holds(strategy):
    import compact_proofs.checker.pure as pure
    from compact_proofs.checker.pure import transformer as pure_transformer
    from tests.models import build_v2

    if strategy == "v2":
        raw = prove(build_v2("gaussian", 1, V=3, N=4, D=16, E=8, H=2, L=2, scale=1.0, biases=True, dtype=np.float64),
                    "brute-force", task="induction").raw
        doc = pure.parse(raw)
        plan = pure_transformer.memory_bytes(pure_transformer.dimensions(doc["weights"]), pure.BYTES_PER_NUMBER)
    else:
        raw = prove(_small(1), strategy).raw
        doc = pure.parse(raw)
        plan = pure.memory_bytes(pure.dimensions(doc["weights"]), strategy)
    verdict, peak = _peak(lambda: check_bytes(raw))
    assert verdict.accepted, verdict.reason
    assert peak <= plan, (peak, plan)


def test_the_finiteness_scan_agrees_with_struct_on_every_exponent_pattern():
    import math
    import random
    import struct

    from compact_proofs.checker.pure.tensors import all_finite

    rng = random.Random(0)
    for code, size in (("f", 4), ("d", 8)):
        for top in range(256):
            for below in range(256):
                raw = bytes(rng.randrange(256) for _ in range(size - 2)) + bytes([below, top])
                assert all_finite(raw, code) == math.isfinite(struct.unpack("<" + code, raw)[0]), (code, top, below)
        finite = struct.pack(f"<{3 * (1 << 20)}{code}", *([1.5] * (3 << 20)))
        assert all_finite(finite, code) and not all_finite(finite + struct.pack("<" + code, math.inf), code)

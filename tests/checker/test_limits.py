"""Time and size limits that hold: certificates built to be slow end within 2 x --max-seconds + 5 s
(exit 4), on both paths, and products whose integers are too long are refused before they start."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from compact_proofs.checker.exact import MAX_PRODUCT_WORK, Dyadic
from compact_proofs.checker.errors import ResourceLimit
from compact_proofs.checker.strategies.cubic import count_cases
from tests.helpers import encode

LIMIT = 2.0


def mixed(rng, shape, big: float, small: float) -> np.ndarray:
    """float64 entries mixing magnitudes: the aligned integers get long."""
    a = rng.normal(size=shape)
    a[rng.random(shape) < 0.5] *= big
    a[rng.random(shape) < 0.5] *= small
    return a


def wide_cubic(big: float, small: float) -> bytes:
    """d_vocab 2, n_ctx = d_model = d_head = 1024 (the independent review's shape): one product of
    1024^3 multiply-adds of long integers."""
    rng = np.random.default_rng(0)
    V, N, D, H = 2, 1024, 1024, 1024
    shapes = {"embed.W_E": (V, D), "pos_embed.W_pos": (N, D), "blocks.0.attn.W_Q": (1, D, H), "blocks.0.attn.W_K": (1, D, H),
              "blocks.0.attn.W_V": (1, D, H), "blocks.0.attn.W_O": (1, H, D), "unembed.W_U": (D, V)}
    weights = {k: mixed(rng, s, big, small) for k, s in shapes.items()}
    evidence = {"claims": np.zeros(count_cases(V, N), np.float32), "candidates": np.zeros((3, 0), np.int64)}
    return encode(weights, "cubic", 0, evidence)


def slow_pure_brute_force() -> bytes:
    rng = np.random.default_rng(1)
    V, N, D, H = 4, 10, 4, 2  # 4^10 = 2^20 inputs, each decided exactly in Fractions
    shapes = {"embed.W_E": (V, D), "pos_embed.W_pos": (N, D), "blocks.0.attn.W_Q": (1, D, H), "blocks.0.attn.W_K": (1, D, H),
              "blocks.0.attn.W_V": (1, D, H), "blocks.0.attn.W_O": (1, H, D), "unembed.W_U": (D, V)}
    return encode({k: rng.normal(size=s) for k, s in shapes.items()}, "brute-force", 0)


def timed_check(path, *options) -> tuple[int, str, float]:
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "compact_proofs.checker", str(path), "--max-seconds", str(LIMIT), *options],
                         capture_output=True, text=True, timeout=120)
    return run.returncode, run.stdout + run.stderr, time.monotonic() - start


@pytest.mark.parametrize("case", ["an uninterruptible product", "the pure path"])
def test_slow_certificates_end_within_the_limit(tmp_path, case):
    path = tmp_path / "slow.msgpack"
    if case == "an uninterruptible product":  # about 90-bit integers: under the work cap, about 15 s uncapped
        path.write_bytes(wide_cubic(2.0**20, 2.0**-20))
        options = ()
    else:
        path.write_bytes(slow_pure_brute_force())
        options = ("--pure",)
    code, output, seconds = timed_check(path, *options)
    assert code == 4 and output.startswith("LIMIT") and "time limit" in output, output
    assert seconds <= 2 * LIMIT + 5


def test_long_integers_are_refused_before_the_product(tmp_path):
    """The review's weights mixing 1e300 and 5e-324: 2100-bit integers, refused instead of run (113 s once)."""
    path = tmp_path / "huge.msgpack"
    path.write_bytes(wide_cubic(1e300, 5e-324))
    run = subprocess.run([sys.executable, "-m", "compact_proofs.checker", str(path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 4 and "exceeds the work limit" in run.stdout, run.stdout + run.stderr


def test_the_work_of_a_product_counts_limbs():
    small = Dyadic.from_floats(np.ones((64, 64)))
    assert small.bits == 1 and (small @ small).bits <= 1 + 1 + 7
    long = Dyadic.from_floats(np.array([[2.0**600, 2.0**-600]] * 2))
    assert long.bits == 1201
    big = Dyadic.from_floats(np.full((1 << 10, 1 << 10), 2.0**700))  # 701-bit integers: 11 limbs each
    assert big.bits == 701 and (1 << 30) * 11 * 11 > MAX_PRODUCT_WORK
    with pytest.raises(ResourceLimit, match="exceeds the work limit"):
        big @ big

"""Fuzzing the checker through its input: mutated certificates never crash it, never hang it, and
are never accepted with a claim above the exact count.

Three mutation levels: raw bytes (flips, truncation, insertion); structure (any field replaced by
a value of another type or shape, then re-encoded canonically with a fresh digest, so that it
reaches the strategy code); and numbers (tensor entries set to NaN, infinities, huge, tiny or
random values; claims changed). `make fuzz` runs this for minutes (HYPOTHESIS_PROFILE=fuzz).
"""

from __future__ import annotations

import os
import sys
import time
from functools import lru_cache

import msgpack
import numpy as np
from hypothesis import event, given
from hypothesis import strategies as st

from compact_proofs.checker import certificate
from compact_proofs.checker.errors import InvalidCertificate
from compact_proofs.checker.verify import check
from compact_proofs.generator.proving.prover import prove
from tests.models import build, build_v2
from tests.reference.evaluator import exact_correct_count

STRATEGIES = ("brute-force", "cubic", "cubic/reference", "subcubic/max_diff_exact/per_output+chords/max_diff",
              "subcubic/mean_query+max_diff/mean_query+diff/max_diff_subproduct",
              "subcubic/max_diff/drop_average_query_per_output_logit_reasoning/svd", "v2: brute-force, induction")
TIME_LIMIT = 60.0


@lru_cache(maxsize=None)
def seed_certificate(strategy: str) -> bytes:
    if strategy.startswith("v2"):  # format v2: two layers of two heads
        weights = build_v2("gaussian", 3, V=3, N=3, D=3, E=2, H=2, L=2, scale=1.0, biases=True, dtype=np.float32)
        return prove(weights, "brute-force", task="induction").raw
    weights = build("gaussian", 3, V=4, N=3, D=4, H=2, scale=1.0, biases=True, dtype=np.float32)
    return prove(weights, strategy).raw


def paths(obj, prefix=()):
    """Every (path, value) of a decoded document, maps and lists included."""
    yield prefix, obj
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from paths(value, prefix + (i,))


def replace(obj, path, value):
    if not path:
        return value
    obj[path[0]] = replace(obj[path[0]], path[1:], value)
    return obj


SPECIAL = [np.nan, np.inf, -np.inf, 1e308, -1e308, 5e-324, -0.0, 0.0, 1.0, -1.0, 3e38, 1e-45]
values = st.one_of(
    st.integers(-(2**63), 2**64 - 1), st.text(max_size=20), st.booleans(), st.binary(max_size=64),
    st.lists(st.integers(-3, 3), max_size=4), st.dictionaries(st.text(max_size=5), st.integers(-5, 5), max_size=3),
    st.builds(lambda n: str(n), st.integers(0, 2**130)), st.none(),
)


def tensor_values(draw, array: np.ndarray) -> dict:
    kind = draw(st.sampled_from(["special", "scale", "shape", "dtype"]))
    a = np.array(array, copy=True)
    if kind == "special" and a.size and a.dtype.kind == "f":
        idx = draw(st.integers(0, a.size - 1))
        a.reshape(-1)[idx] = draw(st.sampled_from(SPECIAL))
    elif kind == "scale" and a.dtype.kind == "f":
        a = (a * draw(st.sampled_from([1e30, 1e-30, -1.0, 0.0, 1e5]))).astype(a.dtype)
    elif kind == "shape":
        a = a.reshape(-1)[: draw(st.integers(0, a.size))] if a.size else a
    else:
        a = a.astype(draw(st.sampled_from([np.float32, np.float64, np.int64, np.uint8])))
    with np.errstate(all="ignore"):
        return {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}


@st.composite
def mutated(draw):
    strategy = draw(st.sampled_from(STRATEGIES))
    raw = seed_certificate(strategy)
    level = ["tensor"] * 4 + ["claim"] * 2 + ["structure"] * 2 + ["bytes"] * 2
    level = level[draw(st.integers(0, 9))]  # mostly mutations that reach the strategy code
    event(f"mutation: {level}")
    if level == "bytes":
        data = bytearray(raw)
        for _ in range(draw(st.integers(1, 8))):
            op = draw(st.sampled_from(["flip", "cut", "insert"]))
            i = draw(st.integers(0, max(len(data) - 1, 0)))
            if op == "flip" and data:
                data[i] ^= draw(st.integers(1, 255))
            elif op == "cut":
                del data[i:]
            else:
                data[i:i] = draw(st.binary(min_size=1, max_size=16))
        return bytes(data)
    doc = msgpack.unpackb(raw, raw=False)
    if level == "claim":
        doc["claim"]["correct"] = str(draw(st.integers(0, 2 * int(doc["claim"]["total"]))))
    else:
        candidates = [(p, v) for p, v in paths(doc) if p and p[0] not in ("digest",)]
        tensors = [(p, v) for p, v in candidates if isinstance(v, dict) and set(v) == {"dtype", "shape", "data"}]
        if level == "tensor" and tensors:
            path, value = draw(st.sampled_from(tensors))
            array = np.frombuffer(value["data"], dtype=np.dtype(value["dtype"])).reshape(value["shape"])
            doc = replace(doc, path, tensor_values(draw, array))
        else:
            path, _ = draw(st.sampled_from(candidates))
            doc = replace(doc, path, draw(values))
    doc["digest"] = certificate.digest_of(doc)
    return certificate.canonical_bytes(doc)


_checked = [0]


def _report_progress() -> None:
    """`make fuzz` runs for minutes: a line every thousand certificates (past pytest's capture)."""
    _checked[0] += 1
    if _checked[0] % 1000 == 0 and os.environ.get("HYPOTHESIS_PROFILE") == "fuzz":
        sys.__stderr__.write(f"fuzz: {_checked[0]} mutated certificates checked\n")
        sys.__stderr__.flush()


@given(mutated())
def test_mutated_certificates_are_handled_soundly(raw):
    _report_progress()
    start = time.monotonic()
    try:
        cert = certificate.decode(raw)
    except InvalidCertificate:
        event("outcome: invalid container")
        return
    verdict = check(cert, max_seconds=TIME_LIMIT)
    assert time.monotonic() - start < TIME_LIMIT + 30
    assert not verdict.reason.startswith("internal error"), verdict.reason
    event(f"outcome: {'accepted' if verdict.accepted else 'invalid' if verdict.invalid else 'rejected'}")
    if verdict.accepted and cert.version == 2:
        from compact_proofs.checker import tasks
        from compact_proofs.generator.weights_io import from_state_dict
        from tests.reference.evaluator_v2 import reference

        correct, unsettled = reference(from_state_dict(cert.weights), tasks.resolve(cert.task))
        assert cert.claimed_correct <= correct + unsettled
    elif verdict.accepted:
        assert cert.claimed_correct <= exact_correct_count(cert.weights)

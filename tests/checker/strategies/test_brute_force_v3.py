"""Format v3 brute force (MLPs with relu, gelu or gelu_new; LN, LNPre; up to four blocks; the
tasks of checker/v3/tasks.py) against the independent reference evaluator (Fraction intervals with
its own erf, exp, sqrt and pi): never more than the reference's right inputs plus those it cannot
settle, never fewer than its right inputs less those the checker reports undecided; planted ties,
one-ulp near-ties, LayerNorm over a zero variance and activations at exactly zero included.
Tampered claims are rejected; a v3 model without MLP or LayerNorm counts as format v2 does."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from compact_proofs.checker import certificate, memo
from compact_proofs.checker.strategies import brute_force_v3
from compact_proofs.checker.v3 import architecture, data, tasks
from compact_proofs.checker.verify import check
from tests.models import build_v2
from tests.models_v3 import build_v3, tiny_models_v3
from tests.reference.evaluator_v3 import reference


def certify(weights: dict, arch: dict, task: str, claimed: int = 0, total: int | None = None, task_file: bytes | None = None):
    if total is None:
        V, O = weights["embed.W_E"].shape[0], weights["unembed.W_U"].shape[1]
        total = tasks.resolve(task, V, O, weights["pos_embed.W_pos"].shape[0], task_file).size
    return check(certificate.decode(certificate.encode(
        strategy="brute-force", params={}, claimed_correct=claimed, total=total, weights=weights, evidence={},
        generator={"name": "test"}, task=task, architecture=arch, task_file=task_file)))


def domain(weights: dict, task: str, task_file: bytes | None = None):
    V, O, N = weights["embed.W_E"].shape[0], weights["unembed.W_U"].shape[1], weights["pos_embed.W_pos"].shape[0]
    t = tasks.resolve(task, V, O, N, task_file)
    xs, ys = zip(*t.chunks(1 << 20))
    return np.concatenate(xs), np.concatenate(ys), t.readout


def assert_within_reference(weights, arch, task, task_file=None):
    verdict = certify(weights, arch, task, task_file=task_file)
    assert verdict.accepted, verdict.reason
    xs, ys, readout = domain(weights, task, task_file)
    right, unsettled = reference(weights, arch, xs, ys, readout)
    assert right - verdict.notes["undecided"] <= verdict.verified_correct <= right + unsettled
    return verdict, right, unsettled


@settings(max_examples=20, deadline=None)
@given(tiny_models_v3())
def test_count_is_within_the_reference_on_random_and_adversarial_models(model):
    weights, arch, task = model
    assert_within_reference(weights, arch, task)


@pytest.mark.parametrize("act", ["relu", "gelu", "gelu_new"])
@pytest.mark.parametrize("kind", ["tie", "near-tie", "flat", "gelu-zero", "coarse"])
def test_planted_ties_flat_layernorm_and_activations_at_zero(kind, act):
    weights, arch = build_v3(kind, 7, V=4, O=3, N=3, D=4, E=2, H=2, M=4, L=1, act=act, norm="LN", dtype=np.float64)
    verdict, right, unsettled = assert_within_reference(weights, arch, "modular-addition")
    if kind in ("tie", "coarse", "gelu-zero"):
        assert verdict.verified_correct == right - verdict.notes["undecided"] or unsettled


def test_flat_layernorm_two_layers_sort():
    weights, arch = build_v3("flat", 3, V=3, O=2, N=4, D=3, E=2, H=1, M=3, L=2, act="gelu", norm="LNPre", dtype=np.float32)
    assert_within_reference(weights, arch, "sort")


def test_near_ties_are_settled_in_arb_and_a_lowered_precision_leaves_them_undecided(monkeypatch):
    weights, arch = build_v3("near-tie", 5, V=3, O=3, N=3, D=3, E=2, H=1, M=3, L=1, act="gelu", norm="LN", dtype=np.float64)
    weights["unembed.W_U"][:] = 0  # every logit is its bias: label 0 against 1 differs by one ulp
    weights["unembed.b_U"][2] = -1.0
    verdict = certify(weights, arch, "modular-addition")
    xs, ys, readout = domain(weights, "modular-addition")
    right, unsettled = reference(weights, arch, xs, ys, readout)
    assert verdict.verified_correct == right and unsettled == 0
    monkeypatch.setattr(brute_force_v3, "PRECISIONS", ())
    memo.clear()
    low = certify(weights, arch, "modular-addition")
    assert low.verified_correct <= right


def test_open_inputs_go_to_arb_and_agree_with_the_reference(monkeypatch):
    """With the float pass made useless (every ball widened to the whole line), arb decides all."""
    from compact_proofs.checker.v3 import forward

    weights, arch = build_v3("gaussian", 11, V=3, O=3, N=3, D=3, E=2, H=2, M=4, L=2, act="gelu_new", norm="LN")
    real = forward.enclose_logits

    def useless(*args):
        return [type(b)(b.mid, b.rad + np.inf) for b in real(*args)]

    monkeypatch.setattr(brute_force_v3, "enclose_logits", useless)
    memo.clear()
    verdict = certify(weights, arch, "max")
    xs, ys, readout = domain(weights, "max")
    right, unsettled = reference(weights, arch, xs, ys, readout)
    assert verdict.notes["open_after_float"] == len(xs) and verdict.notes["undecided"] == unsettled == 0
    assert verdict.verified_correct == right


def test_without_mlp_or_layernorm_it_counts_as_format_v2():
    weights = build_v2("gaussian", 2, V=3, N=4, D=4, E=2, H=2, L=2, scale=1.0, biases=True, dtype=np.float32)
    v2 = check(certificate.decode(certificate.encode(strategy="brute-force", params={}, claimed_correct=0, total=3**4 - 3 * 2**3,
                                                     weights=weights, evidence={}, generator={}, task="induction")))
    v3 = certify(weights, {"activation": "none", "normalization": "none"}, "induction")
    assert v3.accepted and v2.verified_correct == v3.verified_correct


def test_tampered_claims_are_rejected():
    weights, arch = build_v3("gaussian", 1, V=4, O=3, N=3, D=4, E=2, H=2, M=4, L=2, act="relu", norm="LN")
    verdict = certify(weights, arch, "modular-addition")
    assert verdict.accepted
    assert not certify(weights, arch, "modular-addition", claimed=verdict.verified_correct + 1).accepted
    assert certify(weights, arch, "modular-addition", claimed=verdict.verified_correct).accepted
    assert not certify(weights, arch, "modular-addition", claimed=0, total=10).accepted
    # A dominating bias on class 2 makes the model answer 2 everywhere: the count must follow the weights.
    changed = dict(weights, **{"unembed.b_U": (weights["unembed.b_U"] + np.float32(1e6) * (np.arange(3) == 2)).astype(np.float32)})
    memo.clear()
    _, ys, _ = domain(changed, "modular-addition")
    assert certify(changed, arch, "modular-addition").verified_correct == int(np.sum(np.asarray(ys).reshape(len(ys), -1)[:, -1] == 2))


def test_data_task_counts_exactly_its_lines_and_reports_the_file_digest():
    import hashlib

    weights, arch = build_v3("gaussian", 4, V=5, O=5, N=4, D=4, E=2, H=1, M=4, L=1, act="gelu", norm="LNPre")
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, 5, size=(12, 3))
    labels = rng.integers(0, 5, size=(12, 2))
    inputs[5], labels[5] = inputs[4], labels[4]  # a repeated line counts twice
    raw = data.write(inputs, labels)
    verdict, right, _ = assert_within_reference(weights, arch, "data", task_file=raw)
    assert verdict.total == 12
    assert verdict.notes["task_sha256"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert not certify(weights, arch, "data", claimed=verdict.verified_correct + 1, task_file=raw).accepted


@pytest.mark.parametrize("text, why", [
    (b"1 2 -> 3", "newline"), (b"1 2 -> 3\n1 -> 2\n", "line 2"), (b"01 2 -> 3\n", "line 1"), (b"1  2 -> 3\n", "line 1"),
    (b"1 -> 2 3\n", "more labels"), (b"\xff\n", "ASCII"), (b"", "empty"),
])
def test_data_files_are_parsed_strictly(text, why):
    from compact_proofs.checker.errors import InvalidCertificate

    with pytest.raises(InvalidCertificate, match=why):
        data.parse(text)


def test_architecture_map_is_checked():
    weights, arch = build_v3("gaussian", 1, V=3, O=2, N=3, D=2, E=1, H=1, M=2, L=1, act="relu", norm="LN")
    for bad, why in [({"activation": "silu", "normalization": "LN", "eps": "1e-5"}, "silu"),
                     ({"activation": "relu", "normalization": "RMS", "eps": "1e-5"}, "RMS"),
                     ({"activation": "relu", "normalization": "LN"}, "eps"),
                     ({"activation": "relu", "normalization": "LN", "eps": "0"}, "eps"),
                     ({"activation": "none", "normalization": "LN", "eps": "1e-5"}, "MLP weights")]:
        verdict = certify(weights, bad, "modular-addition", total=4)
        assert verdict.invalid and why in verdict.reason, verdict.reason


def test_memory_plan_bounds_measured_peaks():
    import tracemalloc

    weights, arch = build_v3("gaussian", 3, V=6, O=5, N=6, D=16, E=4, H=2, M=32, L=2, act="gelu", norm="LN")
    arch_ = architecture.architecture(arch)
    dims = architecture.dimensions(weights, arch_)
    task = tasks.resolve("sort", dims["V"], dims["O"], dims["N"], None)
    model = architecture.from_weights(weights, arch_)
    chunk, _ = brute_force_v3.plan(dims, task)
    x, _ = next(task.chunks(chunk))
    from compact_proofs.checker.v3.forward import enclose_logits

    tracemalloc.start()
    enclose_logits(model, x, task.readout)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak <= len(x) * brute_force_v3.bytes_per_input(dims, task)

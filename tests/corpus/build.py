"""Writes the must-reject corpus: certificates that both checker paths must refuse, each with the
outcome both must give (expected.json). Grown with every finding; run from the repository root:

    .venv/bin/python -m tests.corpus.build

Every file is small; each entry says where it came from.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import msgpack
import numpy as np

from compact_proofs.checker import certificate
from tests.helpers import encode
from tests.models import build, near_tie_model

HERE = Path(__file__).resolve().parent
WEIGHTS = build("gaussian", 1, V=3, N=2, D=2, H=2, scale=1.0, biases=False, dtype=np.float32)


def _body(weights=WEIGHTS, strategy="brute-force", claimed=0, evidence=None) -> dict:
    return msgpack.unpackb(encode(weights, strategy, claimed, evidence), raw=False)


def _reencode(obj: dict) -> bytes:
    obj["digest"] = certificate.digest_of(obj)
    return certificate.canonical_bytes(obj)


def _raw_with_digest(obj: dict) -> bytes:
    """obj (which canonical_bytes cannot sort) written by plain msgpack, with a digest of its own bytes."""
    obj = dict(obj)
    obj.pop("digest", None)
    import hashlib

    obj["digest"] = "sha256:" + hashlib.sha256(msgpack.packb(obj, use_bin_type=True)).hexdigest()
    return msgpack.packb(obj, use_bin_type=True)


def _cubic_evidence(weights) -> dict:
    from compact_proofs.generator.proving.prover import prove

    return dict(certificate.decode(prove(weights, "cubic").raw).evidence)


def entries() -> dict[str, tuple[bytes, str, str, str]]:
    """name -> (bytes, fast path outcome, pure path outcome, where it comes from)."""
    out = {}
    nested = functools.reduce(lambda acc, _: [acc], range(600), 1)
    obj = _body()
    obj["generator"] = {"name": "x", "version": 1}
    out["generator-non-string"] = (_reencode(obj), "invalid", "invalid",
                                   "review 1, finding 5: metadata with an integer value (the pure path accepted it)")
    obj = _body()
    obj["params"] = {"p": nested}
    out["params-600-deep"] = (_raw_with_digest(obj), "invalid", "invalid", "review 1, finding 2: RecursionError in the re-encode")
    obj = _body()
    obj["evidence"] = {"a": 1, b"b": 2}
    out["mixed-key-types"] = (_raw_with_digest(obj), "invalid", "invalid", "review 1, finding 2: str and bin keys (TypeError)")
    obj = _body()
    obj["params"] = {"p": 1.5}
    out["float-param"] = (_reencode(obj), "invalid", "invalid", "floats appear nowhere outside tensor data")
    obj = _body()
    obj["generator"] = {"name": "x" * 5000}
    out["generator-too-long"] = (_reencode(obj), "invalid", "invalid", "metadata values are shorter than 4096 characters")
    obj = _body()
    obj["weights"]["embed.W_E"]["shape"] = [1, 1, 1, 1, 1, 1, 3, 2]
    out["too-many-axes"] = (_reencode(obj), "invalid", "invalid", "tensors have at most 6 axes")
    obj = _body()
    obj["evidence"] = {"x" * 300: 1}
    out["long-evidence-name"] = (_reencode(obj), "invalid", "invalid", "names are at most 200 characters")
    obj = _body()
    obj["strategy"] = "subcubic/max_diff/per_output+chords/nonsense"
    out["unknown-subcubic-variant"] = (_reencode(obj), "invalid", "invalid", "a strategy neither path knows")
    obj = _body()
    obj["claim"]["correct"] = "10"
    out["claim-above-total"] = (_reencode(obj), "rejected", "rejected", "a claim of more inputs than exist")
    near = near_tie_model()
    out["near-tie-overclaim"] = (encode(near, "brute-force", 2), "rejected", "rejected",
                                 "review 1, finding 1: the one correct input's margin needs 128 bits; claim 2")
    ties = build("tie", 3, V=4, N=3, D=3, H=2, scale=1.0, biases=True, dtype=np.float32)
    from tests.reference.evaluator import exact_correct_count

    out["tie-overclaim"] = (encode(ties, "brute-force", exact_correct_count(ties) + 1), "rejected", "rejected",
                            "planted exact ties (equal unembedding columns); claim one above the exact count")
    evidence = _cubic_evidence(WEIGHTS)
    claims = evidence["claims"].copy()
    i = int(np.argmin(claims))
    claims[i] = np.nextafter(claims[i], np.float32(-np.inf))
    out["cubic-claim-one-ulp-low"] = (encode(WEIGHTS, "cubic", 0, dict(evidence, claims=claims)), "rejected", "rejected",
                                      "a cubic claim one float32 ulp below the bound")
    out["cubic-candidate-is-m"] = (encode(WEIGHTS, "cubic", 0, dict(evidence, candidates=np.zeros((6, 1), np.int64))),
                                   "invalid", "invalid", "candidates must be outputs other than m (m = 0 here)")
    out["cubic-17-candidates"] = (encode(WEIGHTS, "cubic", 0, dict(evidence, candidates=np.ones((6, 17), np.int64))),
                                  "invalid", "invalid", "at most 16 candidates per (m, q)")
    obj = _body(WEIGHTS, "subcubic/max_diff/per_output+chords/max_diff", 0, {"gaps": np.zeros((3, 3, 2), np.int64)})
    out["subcubic-missing-evidence"] = (_reencode(obj), "invalid", "invalid",
                                        "subcubic evidence fields missing (both paths check the field names first)")
    obj = _body()
    obj["weights"]["embed.W_E"] = {"dtype": "|u1", "shape": [3, 2], "data": bytes(6)}
    out["uint8-weights"] = (_reencode(obj), "invalid", "invalid", "review 2, finding 4: --pure accepted uint8 weights")
    obj = _body()
    obj["weights"]["embed.W_E"]["dtype"] = ["<f4"]
    out["list-dtype"] = (_reencode(obj), "invalid", "invalid", "review 2, finding 5: --pure crashed on a list as dtype")
    false = np.full(len(evidence["claims"]), -1.0, dtype=np.float32)
    out["extra-field-and-false-claim"] = (encode(WEIGHTS, "cubic", 0, dict(evidence, claims=false, extra=1)), "invalid", "invalid",
                                          "review 2, finding 6a: an unknown evidence field beside false claims (fast path said rejected)")
    late = evidence["candidates"].copy()
    late[-1, 0] = 2  # the row of (m, q) = (2, 2) names m itself
    out["bad-late-candidate-and-false-claim"] = (encode(WEIGHTS, "cubic", 0, dict(evidence, claims=false, candidates=late)),
                                                 "invalid", "invalid", "review 2, finding 6b: --pure reached a false claim first")
    out.update(_format_v2())
    out.update(_compact_induction())
    out.update(_format_v3())
    return out


def _compact_induction() -> dict[str, tuple[bytes, str, str, str]]:
    """The compact induction proofs (format v2): the fast path checks them, --pure answers
    unsupported after validating the file."""
    from compact_proofs.checker import tasks
    from compact_proofs.checker.strategies.induction import cells
    from compact_proofs.checker.verify import check
    from tests.models import build_v2, induction_circuit

    V, N = 3, 4
    total = tasks.resolve("induction").domain_size(V, N)
    rng = np.random.default_rng(5)
    noisy = {k: (v + 0.1 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in induction_circuit(V, N).items()}
    leaves = np.full(cells.root_count(V, N), cells.LEAF, dtype=np.int64)

    def cert(strategy="induction/positions", claimed=0, weights=noisy, evidence=None, task="induction", size=total) -> bytes:
        return certificate.encode(strategy=strategy, params={}, claimed_correct=claimed, total=size, weights=weights,
                                  evidence=evidence or {}, generator={"name": "corpus"}, task=task)

    counted = check(certificate.decode(cert(strategy="induction/exact/vertices", evidence={"tree": leaves}))).verified_correct
    tie = dict(induction_circuit(V, N))
    tie["unembed.W_U"] = tie["unembed.W_U"].copy()
    tie["unembed.W_U"][:, 2] = tie["unembed.W_U"][:, 1]
    one_layer = build_v2("gaussian", 1, V=V, N=N, D=4, E=2, H=1, L=1, scale=1.0, biases=False, dtype=np.float32)
    root = next(cells.roots(V, N))
    assert not root.allowed[2, root.q]  # position 2 of the first root cell (q=0, p=0, l=1) cannot hold q
    return {
        "v2-induction-overclaim": (cert("induction/exact/vertices", counted + 1, evidence={"tree": leaves}), "rejected", "unsupported",
                                   "compact induction proof: a claim one above the count its cells establish"),
        "v2-induction-tie-overclaim": (cert(claimed=V * (N - 1) * (V - 1) ** (N - 2), weights=tie), "rejected", "unsupported",
                                       "compact induction proof: identical unembedding columns tie every input labelled 1 or 2; "
                                       "the claim is every input with one earlier occurrence, ties included"),
        "v2-induction-extra-codes": (cert("induction/mixture/intervals", evidence={"tree": np.append(leaves, cells.LEAF)}), "invalid",
                                     "unsupported", "compact induction proof: codes left after the last cell"),
        "v2-induction-bad-split": (cert("induction/mixture/intervals", evidence={"tree": np.concatenate([[N + 2], leaves])}), "invalid",
                                   "unsupported", "compact induction proof: a q-or-not split of a position that cannot hold q"),
        "v2-induction-positions-with-tree": (cert(evidence={"tree": leaves}), "invalid", "invalid",
                                             "induction/positions reads no evidence"),
        "v2-induction-task-max": (cert(task="max", size=V**N), "invalid", "unsupported", "the compact induction proofs take the task induction only"),
        "v2-induction-one-layer": (cert(weights=one_layer), "invalid", "unsupported", "the compact induction proofs take two-layer models"),
    }


def _format_v2() -> dict[str, tuple[bytes, str, str, str]]:
    """Format v2 (two layers, tasks): both paths check it (the pure path by pure/transformer.py)."""
    from compact_proofs.checker import tasks
    from tests.models import build_v2
    from tests.reference.evaluator_v2 import reference

    tie = build_v2("tie", 2, V=3, N=3, D=2, E=2, H=2, L=2, scale=1.0, biases=True, dtype=np.float32)
    induction_total = 3**3 - 3 * 2**2

    def v2(claimed=0, total=induction_total, task="induction", strategy="brute-force", weights=tie, evidence=None) -> bytes:
        return certificate.encode(strategy=strategy, params={}, claimed_correct=claimed, total=total, weights=weights,
                                  evidence=evidence or {}, generator={"name": "corpus"}, task=task)

    obj = msgpack.unpackb(v2(), raw=False)
    obj.pop("task")
    near = build_v2("near-tie", 5, V=3, N=3, D=3, E=2, H=1, L=2, scale=1.0, biases=True, dtype=np.float64)
    near_correct, unsettled = reference(near, tasks.resolve("max"))
    assert unsettled == 0
    mlp = dict(tie, **{"blocks.1.mlp.W_in": np.zeros((2, 4), np.float32)})
    return {
        "v2-tie-overclaim": (v2(claimed=induction_total), "rejected", "rejected",
                             "format v2: two tied logits (identical unembedding columns and biases) make every input wrong"),
        "v2-wrong-total": (v2(total=3**3), "rejected", "rejected", "format v2: the induction domain is smaller than d_vocab^n_ctx"),
        "v2-unknown-task": (v2(task="sorting", total=3**3), "invalid", "invalid", "format v2: a task the checker does not define"),
        "v2-cubic": (v2(strategy="cubic", evidence={"claims": np.zeros(3, np.float32)}), "invalid", "invalid",
                     "format v2 takes brute-force only"),
        "v2-mlp-weights": (v2(weights=mlp), "invalid", "invalid", "format v2: MLP weights are outside the semantics"),
        "v2-without-task": (_reencode(obj), "invalid", "invalid", "version 2 requires the task key"),
        "v2-near-tie-overclaim": (v2(claimed=near_correct + 1, total=3**3, task="max", weights=near), "rejected", "rejected",
                                  "format v2: one-ulp float64 near-ties (open in float balls and at 64 bits), claimed one above the true count"),
    }


def _format_v3() -> dict[str, tuple[bytes, str, str, str]]:
    """Format v3 (MLPs, LayerNorm, more tasks): the fast path checks it; the pure path answers
    "unsupported" for a valid container and "invalid" for a broken one."""
    from compact_proofs.checker.v3 import data
    from tests.models_v3 import build_v3
    from tests.reference.evaluator_v3 import reference

    def v3(weights, arch, task="modular-addition", claimed=0, total=None, task_file=None) -> bytes:
        if total is None:
            from compact_proofs.checker.v3 import tasks

            total = tasks.resolve(task, weights["embed.W_E"].shape[0], weights["unembed.W_U"].shape[1],
                                  weights["pos_embed.W_pos"].shape[0], task_file).size
        return certificate.encode(strategy="brute-force", params={}, claimed_correct=claimed, total=total, weights=weights,
                                  evidence={}, generator={"name": "corpus"}, task=task, architecture=arch, task_file=task_file)

    def exact(weights, arch, task="modular-addition") -> int:
        from compact_proofs.checker.v3 import tasks

        t = tasks.resolve(task, weights["embed.W_E"].shape[0], weights["unembed.W_U"].shape[1], weights["pos_embed.W_pos"].shape[0], None)
        xs, ys = zip(*t.chunks(1 << 16))
        right, unsettled = reference(weights, arch, np.concatenate(xs), np.concatenate(ys), t.readout)
        assert unsettled == 0
        return right

    tie, tie_arch = build_v3("tie", 7, V=4, O=3, N=3, D=4, E=2, H=2, M=4, L=1, act="gelu", norm="LN")
    near, near_arch = build_v3("near-tie", 5, V=3, O=3, N=3, D=3, E=2, H=1, M=3, L=1, act="gelu_new", norm="LN", dtype=np.float64)
    near["unembed.W_U"][:] = 0
    near["unembed.b_U"][2] = -1.0
    flat, flat_arch = build_v3("flat", 3, V=3, O=2, N=4, D=3, E=2, H=1, M=3, L=2, act="relu", norm="LNPre")
    plain, plain_arch = build_v3("gaussian", 1, V=4, O=3, N=3, D=4, E=2, H=2, M=4, L=1, act="relu", norm="LN")
    file = data.write(np.array([[1, 2, 3], [0, 0, 3]]), np.array([[1], [2]]))
    broken = msgpack.unpackb(v3(plain, plain_arch, task="data", task_file=file), raw=False)
    broken["task"]["sha256"] = "sha256:" + "0" * 64
    five = dict(plain)
    for l in range(1, 5):
        five |= {k.replace("blocks.0.", f"blocks.{l}."): v for k, v in plain.items() if k.startswith("blocks.0.")}
    return {
        "v3-tie-overclaim": (v3(tie, tie_arch, claimed=9), "rejected", "unsupported",
                             "format v3: tied unembedding columns make every input wrong (gelu MLP, LayerNorm)"),
        "v3-near-tie-overclaim": (v3(near, near_arch, claimed=exact(near, near_arch) + 1), "rejected", "unsupported",
                                  "format v3: one-ulp near-ties (open in float balls, settled in arb), claimed one above"),
        "v3-flat-layernorm-overclaim": (v3(flat, flat_arch, task="sort", claimed=exact(flat, flat_arch, "sort") + 1), "rejected",
                                        "unsupported", "format v3: LayerNorm over an exactly zero variance, claimed one above"),
        "v3-data-sha256-mismatch": (_reencode(broken), "invalid", "invalid", "format v3: the stated sha256 is not the task file's"),
        "v3-data-label-out-of-range": (v3(plain, plain_arch, task="data", total=1,
                                          task_file=data.write(np.array([[1, 2, 3]]), np.array([[3]]))), "invalid", "unsupported",
                                       "format v3: a label the model cannot output (d_vocab_out 3)"),
        "v3-silu": (v3(plain, {"activation": "silu", "normalization": "LN", "eps": "1e-05"}, total=9), "invalid", "unsupported",
                    "format v3: an activation outside the semantics"),
        "v3-rmsnorm": (v3(plain, {"activation": "relu", "normalization": "RMS", "eps": "1e-05"}, total=9), "invalid", "unsupported",
                       "format v3: RMSNorm is outside the semantics"),
        "v3-mlp-without-activation": (v3(plain, {"activation": "none", "normalization": "LN", "eps": "1e-05"}, total=9), "invalid",
                                      "unsupported", "format v3: MLP weights with activation none"),
        "v3-five-blocks": (v3(five, plain_arch, total=9), "invalid", "unsupported", "format v3: at most four blocks"),
        "v3-sort-wrong-total": (v3(flat, flat_arch, task="sort", total=3**4), "rejected", "unsupported",
                                "format v3: the sort domain is (d_vocab - 1)^k, not d_vocab^n_ctx"),
    }


def main() -> None:
    expected = {}
    for name, (raw, fast, pure, why) in entries().items():
        (HERE / f"{name}.msgpack").write_bytes(raw)
        expected[name] = {"fast": fast, "pure": pure, "why": why}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(expected)} certificates to {HERE}")


if __name__ == "__main__":
    main()

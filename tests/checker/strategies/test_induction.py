"""The compact induction proofs (format v2, strategies/induction/) against the mpmath-interval
reference evaluator: no certified cell contains a sequence the reference does not find correct, on
random, adversarial (planted ties, near-ties, uniform or huge attention) and hand-built induction
models; random trees of splits; tampered claims, trees and fields rejected; limits before work."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compact_proofs.checker import certificate, tasks
from compact_proofs.checker.strategies import induction
from compact_proofs.checker.strategies.induction import bound, cells, positions
from compact_proofs.checker.transformer import from_weights
from compact_proofs.checker.verify import check
from tests.models import KINDS_V2, build_v2, induction_circuit
from tests.reference.evaluator_v2 import decide, reference

TASK = tasks.resolve("induction")


def certify(weights: dict, strategy: str, tree=None, claimed: int = 0, **overrides):
    V, N = weights["embed.W_E"].shape[0], weights["pos_embed.W_pos"].shape[0]
    evidence = {} if tree is None else {"tree": np.asarray(tree, dtype=np.int64)}
    fields = dict(strategy=strategy, params={}, claimed_correct=claimed, total=TASK.domain_size(V, N), weights=weights,
                  evidence=evidence, generator={"name": "test"}, task="induction")
    return check(certificate.decode(certificate.encode(**(fields | overrides))))


def random_tree(V: int, N: int, rng, depth: int) -> list[int]:
    """A random tree of valid splits (token or q-binary splits, up to `depth` levels)."""
    codes = []

    def grow(cell, d):
        free = [i for i in range(N - 1) if cell.allowed[i].sum() > 1]
        if d == 0 or not free or rng.random() < 0.3:
            codes.append(cells.LEAF)
            return
        i = int(rng.choice(free))
        binary = cell.q in np.flatnonzero(cell.allowed[i]) and rng.random() < 0.5
        code = N + i if binary else i
        codes.append(code)
        for child in cells.split(cell, code, N):
            grow(child, d - 1)

    for root in cells.roots(V, N):
        grow(root, depth)
    return codes


def sequences(cell: cells.Cell):
    return itertools.product(*[np.flatnonzero(a).tolist() for a in cell.allowed])


def assert_certified_cells_are_correct(weights: dict, strategy: str, tree=None):
    """Every sequence of every cell the strategy certifies is correct by the reference evaluator."""
    model = from_weights(weights)
    V, N = model.d_vocab, model.n_ctx
    prep = bound.prepare(model)
    if strategy == "induction/positions":
        found = []
        for q, u, p, label in itertools.product(range(V), range(V), range(N - 1), range(V)):
            S = positions.sets(V, N, q, u, p, label)
            if S is not None:
                found.append((q, p, label, S))
        certified = _positions_certified(prep, V, N)
        for q, p, label, S in found:
            if (q, S[N - 2], p, label) in certified:
                allowed = np.array([np.arange(V) != q if s == positions.NOT_Q else np.arange(V) == s for s in S])
                for x in sequences(cells.Cell(q, p, label, allowed)):
                    assert decide(weights, x, label) is True, (strategy, x, label)
        return len(certified)
    _, keys, query = strategy.split("/")
    count = 0
    for cell in cells.leaves(V, N, np.asarray(tree if tree is not None else [cells.LEAF] * cells.root_count(V, N), dtype=np.int64)):
        if bound.correct_against(prep, cell, query == "vertices", keys == "exact")[np.arange(V) != cell.label].all():
            count += 1
            for x in sequences(cell):
                assert decide(weights, x, cell.label) is True, (strategy, x, cell.label)
    return count


def _positions_certified(prep, V, N) -> set:
    """The (q, u, p, label) cells positions.certified counts."""
    return {(q, u, p, label) for q, u, p, label, ok, _ in positions.outcomes(prep) if ok.all()}


@st.composite
def two_layer_models(draw):
    """Random and adversarial two-layer models, or a hand-built induction circuit perturbed by noise
    (nearly correct models: some cells certified, some sequences wrong)."""
    V = draw(st.integers(2, 3))
    N = draw(st.integers(2, 4))
    if draw(st.booleans()):
        weights = induction_circuit(V, N, strength=draw(st.sampled_from([0.5, 2.0, 6.0, 12.0])),
                                    recency=draw(st.sampled_from([0.0, 0.3, 1.0])))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        noise = draw(st.sampled_from([0.0, 0.01, 0.1, 0.5]))
        dtype = draw(st.sampled_from([np.float32, np.float64]))
        return {k: (v + noise * rng.standard_normal(v.shape)).astype(dtype) for k, v in weights.items()}
    D, E, H = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    kind = draw(st.sampled_from(KINDS_V2))
    return build_v2(kind, draw(st.integers(0, 2**32 - 1)), V, N, D, E, H, 2, draw(st.sampled_from([1e-3, 0.3, 1.0, 3.0])),
                    draw(st.booleans()), draw(st.sampled_from([np.float32, np.float64])))


@settings(max_examples=15, deadline=None)
@given(two_layer_models(), st.sampled_from(induction.NAMES), st.integers(0, 2**31))
def test_certified_cells_hold_only_correct_sequences_on_random_models(weights, strategy, seed):
    V, N = weights["embed.W_E"].shape[0], weights["pos_embed.W_pos"].shape[0]
    tree = None if strategy == "induction/positions" else random_tree(V, N, np.random.default_rng(seed), depth=2)
    assert_certified_cells_are_correct(weights, strategy, tree)
    verdict = certify(weights, strategy, tree)
    assert verdict.accepted, verdict.reason
    correct, unsettled = reference(weights, TASK)
    assert verdict.verified_correct <= correct


@pytest.mark.parametrize("strategy", induction.NAMES)
@pytest.mark.parametrize("V, N, strength", [(3, 4, 12.0), (2, 5, 12.0), (3, 4, 1.5), (4, 3, 0.5)])
def test_a_hand_built_induction_circuit(strategy, V, N, strength):
    """Exactly correct when strong (every cell certified by the tree variants), wrong on many
    inputs when weak: never a certified wrong sequence."""
    weights = induction_circuit(V, N, strength=strength)
    tree = None if strategy == "induction/positions" else [cells.LEAF] * cells.root_count(V, N)
    assert_certified_cells_are_correct(weights, strategy, tree)
    verdict = certify(weights, strategy, tree)
    correct, unsettled = reference(weights, TASK)
    assert verdict.accepted and verdict.verified_correct <= correct and unsettled == 0
    if strength >= 12:
        single = sum(1 for x in itertools.product(range(V), repeat=N) if list(x[:-1]).count(x[-1]) == 1)
        assert verdict.verified_correct == (single if strategy == "induction/positions" else correct) == (single if strategy == "induction/positions" else TASK.domain_size(V, N))


@pytest.mark.parametrize("kind", ["tie", "near-tie", "uniform-attention", "huge-scores"])
def test_planted_ties_and_degenerate_attention(kind):
    weights = build_v2(kind, 7, V=3, N=4, D=3, E=2, H=2, L=2, scale=1.0, biases=True, dtype=np.float32)
    correct, unsettled = reference(weights, TASK)
    for strategy in induction.NAMES:
        tree = None if strategy == "induction/positions" else random_tree(3, 4, np.random.default_rng(1), depth=3)
        assert_certified_cells_are_correct(weights, strategy, tree)
        assert certify(weights, strategy, tree).verified_correct <= correct


def test_a_tie_between_the_label_and_another_output_is_never_certified():
    """Copy slots shared by two tokens (identical W_U columns): every input whose label is one of
    them ties, and no strategy counts it."""
    weights = induction_circuit(3, 4)
    weights["unembed.W_U"][:, 2] = weights["unembed.W_U"][:, 1]
    correct, _ = reference(weights, TASK)
    for strategy in induction.NAMES:
        tree = None if strategy == "induction/positions" else [cells.LEAF] * cells.root_count(3, 4)
        verdict = certify(weights, strategy, tree)
        assert verdict.verified_correct <= correct < TASK.domain_size(3, 4)


def test_tampering_is_rejected():
    weights = induction_circuit(3, 4)
    leaves = [cells.LEAF] * cells.root_count(3, 4)
    good = certify(weights, "induction/exact/vertices", leaves)
    assert good.accepted and good.verified_correct == TASK.domain_size(3, 4)
    assert not certify(weights, "induction/exact/vertices", leaves, claimed=good.verified_correct + 1).accepted
    invalid = [
        ("induction/exact/vertices", leaves + [cells.LEAF], "after the last cell"),
        ("induction/exact/vertices", leaves[:-1], "ends"),
        ("induction/exact/vertices", [7] + leaves[1:], "code 7"),  # position 7 does not exist at n_ctx 4
        ("induction/exact/vertices", [2] + leaves[1:], "splits position 2"),  # the root (0, 0, 1) fixes position... 2 is 'not q' with 2 tokens: a valid split
        ("induction/positions", leaves, "no evidence"),
        ("induction/exact/vertices", None, "tree"),
        ("induction/exact/nothing", leaves, "strategies"),
    ]
    for strategy, tree, message in invalid[:3] + invalid[4:]:
        verdict = certify(weights, strategy, tree)
        assert verdict.invalid and message in verdict.reason, (strategy, verdict.reason)
    # a binary split needs q among the allowed tokens: position 2 of root (q=0, p=0, l=1) excludes q
    root = next(cells.roots(3, 4))
    assert root.allowed[2, root.q] == False  # noqa: E712
    bad = certify(weights, "induction/exact/vertices", [4 + 2] + leaves[1:])
    assert bad.invalid and "does not allow" in bad.reason
    for task, message in (("max", "induction task"),):
        verdict = certify(weights, "induction/positions", None, task=task, total=3**4)
        assert verdict.invalid and message in verdict.reason


def test_one_layer_models_are_refused():
    weights = build_v2("gaussian", 1, V=3, N=4, D=4, E=2, H=1, L=1, scale=1.0, biases=False, dtype=np.float32)
    verdict = certify(weights, "induction/positions")
    assert verdict.invalid and "two-layer" in verdict.reason


def test_the_memory_plan_refuses_before_work(monkeypatch):
    weights = induction_circuit(3, 4)
    monkeypatch.setattr(induction, "MAX_MEMORY", 1000)
    monkeypatch.setattr(bound, "prepare", lambda model: pytest.fail("work began"))
    verdict = certify(weights, "induction/positions")
    assert verdict.limit and "MiB" in verdict.reason


def test_splits_partition_the_root_cells():
    """The leaves of any tree partition the induction domain, each leaf with one label."""
    V, N = 3, 4
    rng = np.random.default_rng(3)
    for _ in range(5):
        seen = {}
        for cell in cells.leaves(V, N, np.array(random_tree(V, N, rng, depth=3), dtype=np.int64)):
            for x in sequences(cell):
                assert x not in seen
                seen[x] = cell.label
        xs = np.array(list(itertools.product(range(V), repeat=N)))
        labels, domain = TASK.labels(xs)
        assert {tuple(x): int(y) for x, y, d in zip(xs, labels, domain) if d} == seen


def test_the_pure_path_answers_unsupported_after_validating():
    from compact_proofs.checker.pure import check_bytes

    weights = induction_circuit(3, 4)
    V, N = 3, 4
    tree = np.full(cells.root_count(V, N), cells.LEAF, dtype=np.int64)
    for strategy, evidence in (("induction/positions", {}), ("induction/exact/vertices", {"tree": tree})):
        raw = certificate.encode(strategy=strategy, params={}, claimed_correct=0, total=TASK.domain_size(V, N), weights=weights,
                                 evidence=evidence, generator={}, task="induction")
        verdict = check_bytes(raw)
        assert verdict.unsupported and not verdict.accepted, verdict.reason
    raw = certificate.encode(strategy="induction/positions", params={}, claimed_correct=0, total=TASK.domain_size(V, N), weights=weights,
                             evidence={"tree": tree}, generator={}, task="induction")
    bad = check_bytes(raw)
    assert bad.invalid and "no evidence" in bad.reason

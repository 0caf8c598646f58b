"""Where a compact induction certificate's bound is lost (diagnostics, not proofs): per cell (by the
position p of the query token's occurrence, the cells not certified and their inputs), per step
(the bound again with one relaxation made exact: the key positions' previous-token mixtures, the
query's layer-0 mixture, or both), and, for models small enough to evaluate every input in float64,
the ceiling of the cell structure (the inputs in cells whose every sequence is correct).

The steps change only the data the checker's bound reads (checker/strategies/induction/): with the
keys exact, every key's layer-0 mixture sits on its two fixed positions (no free mass); with the
query exact, the last position's layer-0 scores to positions before n - 2 are removed. Neither is
a statement about the model; they say which relaxation costs what.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict

import numpy as np

from compact_proofs.checker.interval import Interval
from compact_proofs.checker.strategies.induction import bound, cells, positions
from compact_proofs.checker.tasks import resolve
from compact_proofs.checker.transformer import Transformer, from_weights

MAX_CEILING_INPUTS = 1 << 24
MAX_TREE_CEILING_INPUTS = 1 << 16  # a tree's leaves are matched to inputs one by one
STEPS = ("keys exact", "query exact", "keys and query exact")


def _keys_exact(prep: bound.Prepared) -> bound.Prepared:
    keys = tuple(dataclasses.replace(k, beta=np.zeros_like(k.beta), weights_hi=np.zeros_like(k.weights_hi)) for k in prep.keys)
    return dataclasses.replace(prep, keys=keys, key_deviation=tuple(np.zeros_like(d) for d in prep.key_deviation), _values={})


def _query_exact(prep: bound.Prepared) -> bound.Prepared:
    T = prep.tables
    N = T.n_ctx
    s0 = []
    for scores in T.s0:
        lo, hi = scores.lo.copy(), scores.hi.copy()
        lo[:, N - 1, :, : max(N - 2, 0)] = hi[:, N - 1, :, : max(N - 2, 0)] = -1e300
        s0.append(Interval(lo, hi))
    return dataclasses.replace(prep, tables=dataclasses.replace(T, s0=tuple(s0)), _values={})


def _cells_of(prep: bound.Prepared, strategy: str, tree: np.ndarray | None):
    """(p, size, certified, cell description) for every cell the strategy bounds."""
    V, N = prep.tables.d_vocab, prep.tables.n_ctx
    if strategy == "induction/positions":
        for q, u, p, label, ok, size in positions.outcomes(prep):
            yield p, size, bool(ok.all()), (q, u, p, label)
        return
    _, keys, query = strategy.split("/")
    for cell in cells.leaves(V, N, tree):
        ok = bound.correct_against(prep, cell, query == "vertices", keys == "exact")
        yield cell.p, cell.size, bool(ok[np.arange(V) != cell.label].all()), (cell.q, cell.p, cell.label, int(cell.allowed.sum()))


def explain(model: Transformer, strategy: str, tree: np.ndarray | None, total: int, stage) -> dict:
    V, N = model.d_vocab, model.n_ctx
    stage("ledger: the cells", 0, 1)
    prep = bound.prepare(model)
    by_p: dict = defaultdict(lambda: [0, 0, 0, 0])  # inputs, certified inputs, cells, certified cells
    lost = []
    certified = 0
    for p, size, ok, what in _cells_of(prep, strategy, tree):
        entry = by_p[p]
        entry[0] += size
        entry[2] += 1
        if ok:
            entry[1] += size
            entry[3] += 1
            certified += size
        else:
            lost.append((size, what))
    stage("ledger: the cells", 1, 1)
    lost.sort(key=lambda x: -x[0])
    report = {
        "certified": str(certified), "total": str(total),
        "by_p": [{"p": p, "inputs": str(e[0]), "certified": str(e[1]), "cells": e[2], "certified_cells": e[3]} for p, e in sorted(by_p.items())],
        "largest_lost_cells": [{"size": str(s), "cell": list(map(int, w))} for s, w in lost[:10]],
        "single_occurrence": str(single_occurrence(V, N)),
    }
    if strategy == "induction/positions" or (tree is not None and len(tree) <= 4096):
        steps = {}
        for name, prepared in zip(STEPS, (_keys_exact(prep), _query_exact(prep), _query_exact(_keys_exact(prep)))):
            stage(f"ledger: {name}", 0, 1)
            steps[name] = str(sum(size for _, size, ok, _ in _cells_of(prepared, strategy, tree) if ok))
            stage(f"ledger: {name}", 1, 1)
        report["steps"] = {"available": True, "certified": steps}
    else:
        report["steps"] = {"available": False, "reason": f"{len(tree)} cells: bounding them three more times is as long as three checks"}
    if V**N <= MAX_CEILING_INPUTS:
        stage("ledger: every input in float64", 0, 1)
        report["ceiling"] = ceiling(model, strategy, tree)
        stage("ledger: every input in float64", 1, 1)
    else:
        report["ceiling"] = {"available": False, "reason": f"{V}^{N} inputs: too many to evaluate each"}
    return report


def single_occurrence(d_vocab: int, n_ctx: int) -> int:
    """The inputs whose last token occurs exactly once before it: the most induction/positions can certify."""
    return d_vocab * (n_ctx - 1) * (d_vocab - 1) ** (n_ctx - 2) if n_ctx >= 2 else 0


def float_correct(model: Transformer, xs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The float64 forward pass (SEMANTICS.md, version 2) at the last position: label strictly first."""
    def softmax(z):
        z = z - z.max(-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(-1, keepdims=True)

    N = model.n_ctx
    r = model.W_E[xs] + model.W_pos
    mask = np.tril(np.ones((N, N), dtype=bool))
    for w in model.layers:
        out = r + w["b_O"]
        for h in range(model.n_heads):
            q = r @ w["W_Q"][h] + w["b_Q"][h]
            k = r @ w["W_K"][h] + w["b_K"][h]
            v = (r @ w["W_V"][h] + w["b_V"][h]) @ w["W_O"][h]
            s = np.where(mask, np.einsum("bie,bje->bij", q, k) / np.sqrt(model.d_head), -np.inf)
            out = out + np.einsum("bij,bjd->bid", softmax(s), v)
        r = out
    logits = r[:, -1] @ model.W_U + model.b_U
    right = logits[np.arange(len(xs)), labels]
    logits[np.arange(len(xs)), labels] = -np.inf
    return right > logits.max(axis=1)


def ceiling(model: Transformer, strategy: str, tree: np.ndarray | None) -> dict:
    """The float64 accuracy over the domain, and the inputs in cells (of the strategy's structure)
    whose every sequence is correct in float64: what a perfect bound on each cell would certify."""
    V, N = model.d_vocab, model.n_ctx
    task = resolve("induction")
    xs_all = np.indices((V,) * N).reshape(N, -1).T
    labels, inside = task.labels(xs_all)
    xs, labels = xs_all[inside], labels[inside]
    step = 1 << 16
    ok = np.concatenate([float_correct(model, xs[i:i + step], labels[i:i + step]) for i in range(0, len(xs), step)]) if len(xs) else np.zeros(0, bool)
    correct, total = int(ok.sum()), len(xs)
    if strategy == "induction/positions":
        earlier = xs[:, :-1] == xs[:, -1:]
        single = earlier.sum(axis=1) == 1
        p = np.argmax(earlier, axis=1)
        key = ((xs[:, -1] * V + xs[:, -2]) * N + p) * V + labels
        bad = np.zeros(V * V * N * V, dtype=bool)
        np.logical_or.at(bad, key[single], ~ok[single])
        in_good_cells = int((single & ~bad[key]).sum())
    elif len(xs) <= MAX_TREE_CEILING_INPUTS:
        leaf_of = np.full(len(xs), -1)
        index = {tuple(x): i for i, x in enumerate(xs.tolist())}
        for n, cell in enumerate(cells.leaves(V, N, tree)):
            for x in itertools.product(*[np.flatnonzero(a).tolist() for a in cell.allowed]):
                leaf_of[index[x]] = n
        bad = np.zeros(leaf_of.max() + 1, dtype=bool)
        np.logical_or.at(bad, leaf_of, ~ok)
        in_good_cells = int((~bad[leaf_of]).sum())
    else:
        return {"available": True, "float64_correct": str(correct), "domain": str(total), "in_all_correct_cells": None}
    return {"available": True, "float64_correct": str(correct), "domain": str(total), "in_all_correct_cells": str(in_good_cells)}


def from_certificate(cert, stage) -> dict:
    model = from_weights(cert.weights)
    tree = cert.evidence.get("tree")
    total = resolve("induction").domain_size(model.d_vocab, model.n_ctx)
    return explain(model, cert.strategy, tree, total, stage)


STRUCTURES = {
    "(q, p, l)": (),
    "(q, p, l, x[n-2])": ("u",),
    "(q, p, l, x[n-2], x[n-3])": ("u", "w"),
    "(q, p, l, p2, l2)": ("p2", "l2"),
    "(q, p, l, p2, l2, x[n-2])": ("p2", "l2", "u"),
}


def ceilings(model: Transformer) -> dict[str, float]:
    """For cells defined by the mechanism's variables (the query token q, its most recent earlier
    occurrence p, the label l, the tokens before the query, the second most recent occurrence p2
    and the token after it, l2), the share of the domain in cells whose every input is correct in
    float64: what any bound that treats a cell as a whole can certify, however tight. Also the
    float64 accuracy and the share of single-occurrence inputs in all-correct cells (q, x[n-2], p, l)."""
    V, N = model.d_vocab, model.n_ctx
    xs = np.indices((V,) * N).reshape(N, -1).T
    labels, inside = resolve("induction").labels(xs)
    xs, labels = xs[inside], labels[inside]
    step = 1 << 16
    ok = np.concatenate([float_correct(model, xs[i:i + step], labels[i:i + step]) for i in range(0, len(xs), step)])
    earlier = xs[:, :-1] == xs[:, -1:]
    p = N - 2 - np.argmax(earlier[:, ::-1], axis=1)
    others = earlier.copy()
    others[np.arange(len(xs)), p] = False
    has2 = others.any(axis=1)
    p2 = np.where(has2, N - 2 - np.argmax(others[:, ::-1], axis=1), -1)
    columns = {"u": xs[:, N - 2] if N >= 2 else 0, "w": xs[:, N - 3] if N >= 3 else 0, "p2": p2,
               "l2": np.where(has2, xs[np.arange(len(xs)), np.minimum(p2 + 1, N - 1)], -1)}
    out = {"float64 accuracy": float(ok.mean())}
    for name, extra in STRUCTURES.items():
        key = (xs[:, -1].astype(np.int64) * N + p) * V + labels
        for column in extra:
            key = key * (V + N + 1) + (columns[column] + 1)
        _, group = np.unique(key, return_inverse=True)
        bad = np.zeros(group.max() + 1, dtype=bool)
        np.logical_or.at(bad, group, ~ok)
        out[name] = float((~bad[group]).mean())
    single = earlier.sum(axis=1) == 1
    key = ((xs[:, -1].astype(np.int64) * V + columns["u"]) * N + p) * V + labels
    _, group = np.unique(key[single], return_inverse=True)
    bad = np.zeros(group.max() + 1, dtype=bool) if single.any() else np.zeros(0, dtype=bool)
    np.logical_or.at(bad, group, ~ok[single])
    out["single occurrence (q, x[n-2], p, l)"] = float((~bad[group]).sum() / len(xs)) if single.any() else 0.0
    return out

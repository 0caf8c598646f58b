"""The compact induction proofs (format v2, task `induction`, two layers of any number of heads):
correct inputs certified by cells of the domain instead of one by one.

    count = sum of |c| over the cells c for which every output o != label(c) is certainly below
            the label at every sequence of c

Every cell is a product set of sequences with one label, the cells are disjoint, so the count is at
most the number of correct inputs. Two ways to choose and bound the cells:

- `induction/<keys>/<query>` (evidence `tree`, <i8): the root cells (q, p, l) split further by the
  certificate's tree (cells.py); each leaf bounded by bound.py, the induction head's softmax over
  paths of options (x_{j-1}, x_j) checked as one sign per output. Axes: keys `exact` (the worst
  layer-0 mixture at each key, Dinkelbach certified by one sign) or `mixture` ((MIXTURE),
  cheaper); query `vertices` (the sign at every vertex of the query's deviation polytope) or
  `intervals` (each position alone).
- `induction/positions` (no evidence): the cells C(q, u, p, l) where q occurs once before the end,
  bounded position by position (positions.py); polynomial in d_vocab and n_ctx.
"""

from __future__ import annotations

import numpy as np

from compact_proofs.checker import memo
from compact_proofs.checker.errors import InvalidCertificate, ResourceLimit
from compact_proofs.checker.strategies.induction import bound, cells, positions
from compact_proofs.checker.tasks import Task
from compact_proofs.checker.transformer import Transformer

KEYS = ("exact", "mixture")
QUERIES = ("vertices", "intervals")
TREE_NAMES = [f"induction/{k}/{q}" for k in KEYS for q in QUERIES]
NAMES = TREE_NAMES + ["induction/positions"]
MAX_TREE = 1 << 24  # codes
MAX_MEMORY = 3 << 30  # bytes held at once
CHUNK = 1 << 21  # entries of the largest per-cell arrays (bound.py)


def evidence_fields(name: str) -> set[str]:
    return {"tree"} if name in TREE_NAMES else set()


def within_limits(name: str, task: Task, dims: dict[str, int]) -> None:
    """Refuse before any conversion what this strategy does not take (InvalidCertificate) or what
    exceeds the size and memory limits (ResourceLimit), from the weights' dimensions alone."""
    if task.name != "induction":
        raise InvalidCertificate("task", f"{name} proves the induction task, not {task.name!r}")
    if dims["L"] != 2:
        raise InvalidCertificate("weights", f"{name} takes two-layer models (a previous-token layer and an induction layer), not {dims['L']}")
    need = memory(name, dims)
    if need > MAX_MEMORY:
        raise ResourceLimit(name, f"the check would hold about {need >> 20} MiB at once, above the {MAX_MEMORY >> 20} MiB limit")


def memory(name: str, dims: dict[str, int]) -> int:
    """Bytes held at once, planned from the dimensions: the weights, the tables (intervals, 16 bytes
    an entry: layer-0 scores and weights per head [V, N, V, N]; per layer-1 head the query, key and
    value tables per layer-0 head and the fixed keys [N, V, V, E]), every label's value bounds
    [N, V, V, V] per layer-1 head, and the largest per-cell or per-query-cell arrays."""
    V, N, D, E, H, L = (dims[r] for r in "VNDEHL")
    weights = 8 * (2 * V * D + N * D + V + L * (4 * H * D * E + 3 * H * E + D))
    tables = 32 * H * (V * N) ** 2 + 16 * H * H * V * N * (3 * E + V) + 16 * H * N * V * V * E
    values = 8 * H * N * V**4
    work = 16 * N * V * V * max(N * V, 1) * (1 if name == "induction/positions" else 4) + 64 * CHUNK
    return weights + tables + values + work


def verify(model: Transformer, task: Task, tree: np.ndarray | None, name: str, progress) -> tuple[int, dict]:
    """The count this strategy establishes (within_limits has been called)."""
    V, N = model.d_vocab, model.n_ctx
    prepared = memo.cached(("induction-cells", model.key), lambda: bound.prepare(model))
    if name == "induction/positions":
        return memo.cached(("induction-positions", model.key), lambda: positions.certified(prepared, progress, name))
    if tree is None or tree.ndim != 1 or len(tree) > MAX_TREE:
        raise InvalidCertificate("evidence", f"tree must be one axis of at most {MAX_TREE} codes")
    _, keys, query = name.split("/")
    enumerate_vertices, exact_keys = query == "vertices", keys == "exact"
    total = sum(1 for _ in cells.leaves(V, N, tree))  # the whole tree is valid before any cell is bounded
    certified, counted = 0, 0
    for done, cell in enumerate(cells.leaves(V, N, tree)):
        progress(name, done, total)
        if bound.correct_against(prepared, cell, enumerate_vertices, exact_keys)[np.arange(V) != cell.label].all():
            certified += cell.size
            counted += 1
    progress(name, total, total)
    return certified, {"cells": total, "cells_certified": counted, "root_cells": cells.root_count(V, N)}


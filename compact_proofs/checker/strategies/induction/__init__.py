"""The compact induction proof (format v2, task `induction`, two layers of any number of heads):
certified correct inputs counted by cells instead of one by one.

    count = sum over the leaves c of the certificate's tree (cells.py) for which bound.correct_against
            holds for every output o != label(c) of |c|

Each leaf is a product set of sequences with one label (cells.py); a leaf counts only when every one
of its sequences is certainly correct (bound.py: the layer-0 mixtures bounded by mixture.py's
(MIXTURE), the induction head's attention and values taken together in one sign per output). The
leaves partition the domain, so the count is at most the number of correct inputs.

Variants (the attention handling): `induction/vertices` evaluates the sign at every vertex of the
query's deviation polytope of one layer-0 head; `induction/intervals` bounds each position alone
(cheaper, looser). Evidence: `tree`, the cells' splits (<i8, one code per node).
"""

from __future__ import annotations

import numpy as np

from compact_proofs.checker import cost, memo
from compact_proofs.checker.errors import InvalidCertificate, ResourceLimit
from compact_proofs.checker.strategies.induction import bound, cells, positions
from compact_proofs.checker.tasks import Task
from compact_proofs.checker.transformer import Transformer

KEYS = ("exact", "mixture")
QUERIES = ("vertices", "intervals")
TREE_NAMES = [f"induction/{k}/{q}" for k in KEYS for q in QUERIES]
NAMES = TREE_NAMES + ["induction/positions"]
MAX_TREE = 1 << 24  # codes
MAX_TABLE = 1 << 25  # entries of the layer-0 score tables, as brute force's


def evidence_fields(name: str) -> set[str]:
    return {"tree"} if name in TREE_NAMES else set()


def verify(model: Transformer, task: Task, tree: np.ndarray | None, name: str, progress) -> tuple[int, dict]:
    if name not in NAMES:
        raise InvalidCertificate("strategy", f"unknown strategy {name!r}")
    if task.name != "induction":
        raise InvalidCertificate("task", f"{name} proves the induction task, not {task.name!r}")
    if model.n_layers != 2:
        raise InvalidCertificate("weights", f"{name} takes two-layer models (a previous-token layer and an induction layer), not {model.n_layers}")
    V, N = model.d_vocab, model.n_ctx
    entries = model.n_heads * V * N * (V * N + model.d_model)
    if entries > MAX_TABLE:
        raise ResourceLimit(name, f"the layer-0 tables need {cost.quantity(entries)} entries, above {cost.quantity(MAX_TABLE)}")
    prepared = memo.cached(("induction-cells", model.key), lambda: bound.prepare(model))
    if name == "induction/positions":
        return positions.certified(prepared, progress, name)
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


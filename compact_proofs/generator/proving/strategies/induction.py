"""The search for the compact induction proofs' evidence: which cells to split (a branch and bound
over the cells of checker/strategies/induction/cells.py). The checker's own cell bound is the
oracle (used as a black box); the tree and the count it implies are the draft.

A root cell that the bound does not certify is split, up to `depth` levels, on the position the
mechanism reads most: first the token before the query (x_{n-2}: the previous-token head at the last
position reads it, so it fixes most of the induction head's query), then earlier occurrences of
the query token (a q-or-not split at the latest position before p that may hold q: the cells with
no further occurrence are the ones an induction head gets right), then the latest free position.
`induction/positions` needs no evidence.
"""

from __future__ import annotations

import numpy as np

from compact_proofs.checker.context import Progress
from compact_proofs.checker.strategies.induction import bound, cells
from compact_proofs.checker.transformer import from_weights
from compact_proofs.generator.proving.strategies.draft import Draft


def split_code(cell: cells.Cell, n_ctx: int) -> int | None:
    """The split the search tries on a cell it could not certify (None: nothing left to split)."""
    sizes = cell.allowed.sum(axis=1)
    if n_ctx >= 2 and sizes[n_ctx - 2] > 1:
        return n_ctx - 2
    for i in range(cell.p - 1, -1, -1):
        if sizes[i] > 1 and cell.allowed[i, cell.q]:
            return n_ctx + i
    free = [i for i in range(n_ctx - 1) if sizes[i] > 1]
    return max(free) if free else None


def prove(weights: dict[str, np.ndarray], progress: Progress, variant: str, depth: int = 1) -> Draft:
    """depth: how many times a root cell may be split along one branch (0: the root cells only)."""
    if variant == "induction/positions":
        return Draft()
    model = from_weights(weights)
    V, N = model.d_vocab, model.n_ctx
    _, keys, query = variant.split("/")
    prepared = bound.prepare(model)
    codes: list[int] = []
    certified = 0
    roots = list(cells.roots(V, N))
    for done, root in enumerate(roots):
        progress(variant, done, len(roots))
        stack = [(root, depth)]
        while stack:
            cell, left = stack.pop()
            if bound.correct_against(prepared, cell, query == "vertices", keys == "exact")[np.arange(V) != cell.label].all():
                codes.append(cells.LEAF)
                certified += cell.size
                continue
            code = split_code(cell, N) if left > 0 else None
            if code is None:
                codes.append(cells.LEAF)
                continue
            codes.append(code)
            stack.extend((child, left - 1) for child in reversed(cells.split(cell, code, N)))
    progress(variant, len(roots), len(roots))
    return Draft(evidence={"tree": np.array(codes, dtype=np.int64)}, claimed_correct=certified)

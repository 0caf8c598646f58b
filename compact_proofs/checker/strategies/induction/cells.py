"""The cells of the compact induction proof: a partition of the induction domain into product sets
on each of which the label is one token.

A root cell is (q, p, l): the last token q, the most recent earlier occurrence of q at p, the label
l = x_{p+1} (SEMANTICS.md, version 2). Its sequences are exactly those with x_{n-1} = q, x_p = q,
x_{p+1} = l and no q at positions p + 2 .. n - 2 (and l = q exactly when p = n - 2); positions before
p are free. Every sequence of the domain lies in exactly one root cell, and its label is l.

A certificate may split cells further (evidence `tree`, one code per node in preorder, root cells in
the order of `roots`): -1 is a leaf; i in [0, n_ctx - 1) splits position i into its single tokens
(ascending); n_ctx + i splits it into {q} and the other allowed tokens. A split partitions a cell's
allowed set at one position, so the leaves partition the domain, and a leaf's size is the product of
its allowed set sizes: the count of a set of leaves is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from compact_proofs.checker.errors import InvalidCertificate

LEAF = -1


@dataclass(frozen=True)
class Cell:
    q: int
    p: int
    label: int
    allowed: np.ndarray  # [n_ctx, d_vocab] bool: the tokens each position may hold

    @property
    def size(self) -> int:
        return int(np.prod([int(n) for n in self.allowed.sum(axis=1)], dtype=object))


def roots(d_vocab: int, n_ctx: int) -> Iterator[Cell]:
    """The root cells (q, p, l) in canonical order: q, then p, then l ascending."""
    V, N = d_vocab, n_ctx
    for q in range(V):
        for p in range(N - 1):
            for label in ([q] if p == N - 2 else [t for t in range(V) if t != q]):
                allowed = np.ones((N, V), dtype=bool)
                allowed[N - 1] = allowed[p] = np.arange(V) == q
                allowed[p + 1] = np.arange(V) == label
                allowed[p + 2 : N - 1, q] = False
                yield Cell(q, p, label, allowed)


def root_count(d_vocab: int, n_ctx: int) -> int:
    return d_vocab * ((n_ctx - 2) * (d_vocab - 1) + 1) if n_ctx >= 2 else 0


def leaves(d_vocab: int, n_ctx: int, tree: np.ndarray) -> Iterator[Cell]:
    """The leaves of the certificate's tree, in order; a code that does not split a splittable
    position, or a tree not consumed exactly, is an invalid certificate."""
    codes = tree.tolist()
    at = 0
    for root in roots(d_vocab, n_ctx):
        stack = [root]
        while stack:
            cell = stack.pop()
            if at >= len(codes):
                raise InvalidCertificate("evidence", f"tree ends after {len(codes)} codes, before every cell has one")
            code, at = codes[at], at + 1
            if code == LEAF:
                yield cell
                continue
            stack.extend(reversed(split(cell, code, n_ctx)))
    if at != len(codes):
        raise InvalidCertificate("evidence", f"tree has {len(codes) - at} codes after the last cell")


def split(cell: Cell, code: int, n_ctx: int) -> list[Cell]:
    position, binary = (code - n_ctx, True) if n_ctx <= code < 2 * n_ctx - 1 else (code, False)
    if not 0 <= position < n_ctx - 1:
        raise InvalidCertificate("evidence", f"tree code {code} is not -1, a position below {n_ctx - 1}, or n_ctx plus one")
    tokens = np.flatnonzero(cell.allowed[position])
    if len(tokens) < 2 or (binary and cell.q not in tokens):
        raise InvalidCertificate("evidence", f"tree code {code} splits position {position}, which does not allow that split")
    parts = [[cell.q], [t for t in tokens if t != cell.q]] if binary else [[t] for t in tokens]
    children = []
    for part in parts:
        allowed = cell.allowed.copy()
        allowed[position] = np.isin(np.arange(allowed.shape[1]), part)
        children.append(Cell(cell.q, cell.p, cell.label, allowed))
    return children

"""Exact counting of the inputs a family of cases covers.

An input x is assigned to exactly one case (m, q, c): m = max(x), q = x_{n-1} (the query), and
c = the number of non-query positions whose token is not m. Every input has such a triple and
only one, so the cases partition the input space. Given (m, q, c), the non-query positions
hold c tokens below m and n-1-c copies of m; when q < m, at least one copy of m is among them
(c <= n-2). The number of inputs in case (m, q, c) whose c non-max tokens all lie in a set G
of tokens below m is C(n-1, c) |G|^c: choose the c positions, then a token of G for each.
"""

from __future__ import annotations

from math import comb


def copy_counts(m: int, q: int, n_ctx: int) -> range:
    """The values of c that case (m, q, .) can take (empty unless q <= m)."""
    if q > m:
        return range(0)
    return range(n_ctx) if q == m else range(n_ctx - 1)


def inputs_covered(n_ctx: int, c: int, tokens: int) -> int:
    """Inputs of one (m, q, c) case whose c non-max tokens are drawn from `tokens` choices
    (for c = 0: the single input whose non-query positions all hold m)."""
    return comb(n_ctx - 1, c) * tokens**c


def check_partition(d_vocab: int, n_ctx: int) -> bool:
    """The (m, q, c) cases with every token below m allowed cover exactly d_vocab^n_ctx inputs."""
    total = sum(
        inputs_covered(n_ctx, c, m)
        for m in range(d_vocab)
        for q in range(m + 1)
        for c in copy_counts(m, q, n_ctx)
    )
    return total == d_vocab**n_ctx

"""Proof-length metrics by the paper's definitions: unexplained dimension and complexity class.

These describe a strategy on a model's shapes; they are reported, not trusted (no verdict
depends on them). FLOPs and the checker's own operation count come from checker/cost.py.

Unexplained dimension (the reference code's effective-dimension estimate): brute force
d_vocab^(n+1); cubic 3 d_vocab^2 + 2 n d_vocab; subcubic: an EUPU term + an attention-error term
+ d_vocab (PVOU) + d_vocab^2 (EVOU), with
  EUPU: global_max_diff_exact 2, max_diff_exact 2 d_vocab, max_diff_exact_per_max d_vocab^2,
        mean_query+max_diff_exact_per_max d_vocab^2 + d_vocab, mean_query / svd_query
        d_vocab + d_vocab d_model + 2, max_diff d_vocab d_model + 2;
  attention error (r: vectors per low-rank hint, 1 in the paper): svd 2 r d_vocab, max_diff_exact
        (2 r + 2) d_vocab, exact_EQKE d_vocab^2, max_diff and mean+max_diff 2 r d_vocab + 2 d_model, every other
        2 d_vocab + 2 d_model, plus d_vocab when its name starts with "mean".
Complexity classes: brute force d_vocab^n_ctx; cubic d_vocab^3 n_ctx^2; subcubic: "almost
quadratic" when both the EUPU and the attention-error handling avoid d_vocab^2 d_model and
d_vocab d_model^2 terms (EUPU not *_exact; error *_recursive), "subcubic: d_vocab d_model^2" when
EUPU avoids them and the error handling is svd, max_diff, mean+max_diff or a non-recursive
subproduct, else "subcubic: d_vocab^2 d_model"; the refined and tiered families
(query_slot+ov_blocks+chords, query_slot+ov_tiers+levels) "subcubic: d_vocab^2 (d_model + n_ctx
sqrt(d_vocab))" (their OV blocks and tiers).
"""

from __future__ import annotations


def unexplained_dimension(strategy: str, d_vocab: int, n_ctx: int, d_model: int, rank: int = 1) -> int:
    """rank: vectors per hint of the low-rank EQKE splits (their 2 d_vocab becomes 2 rank d_vocab)."""
    V, N, D = d_vocab, n_ctx, d_model
    if strategy == "brute-force":
        return V ** (N + 1)
    if strategy.startswith("cubic"):
        return 3 * V * V + 2 * N * V
    _, eupu, _, error = strategy.split("/", 3)
    eupu_term = {"global_max_diff_exact": 2, "max_diff_exact": 2 * V, "max_diff_exact_per_max": V * V,
                 "mean_query+max_diff_exact_per_max": V * V + V, "max_diff": V * D + 2}.get(eupu, V + V * D + 2)
    if error == "svd":
        error_term = 2 * rank * V
    elif error == "max_diff_exact":
        error_term = 2 * rank * V + 2 * V
    elif error.startswith("exact_EQKE"):
        error_term = V * V
    else:
        hints = 2 * rank * V if error in ("max_diff", "mean+max_diff") else 2 * V
        error_term = hints + 2 * D + (V if error.startswith("mean") else 0)
    return eupu_term + error_term + V + V * V


def complexity(strategy: str) -> str:
    if strategy == "brute-force":
        return "d_vocab^n_ctx"
    if strategy.startswith("cubic"):
        return "d_vocab^3 n_ctx^2"
    if strategy == "induction/positions":
        return "d_vocab^4 n_ctx (n_ctx + d_head)"
    if strategy == "induction/positions2":
        return "d_vocab^4 n_ctx^2 (n_ctx + d_head)"
    if strategy.startswith("induction/"):
        keys, query = strategy.split("/")[1:]
        return "cells x " + ("n_ctx^3 d_vocab^4" if keys == "exact" else "n_ctx^2 d_vocab^4" if query == "vertices" else "n_ctx^2 d_vocab^3 d_head")
    _, eupu, attention, error = strategy.split("/", 3)
    if attention in ("query_slot+ov_blocks+chords", "query_slot+ov_tiers+levels"):
        return "subcubic: d_vocab^2 (d_model + n_ctx sqrt(d_vocab))"
    eupu_quadratic = "exact" not in eupu
    if eupu_quadratic and error.endswith("_recursive"):
        return "almost quadratic"
    if eupu_quadratic and error in ("svd", "max_diff", "mean+max_diff", "max_diff_subproduct", "mean+max_diff_subproduct"):
        return "subcubic: d_vocab d_model^2"
    return "subcubic: d_vocab^2 d_model"

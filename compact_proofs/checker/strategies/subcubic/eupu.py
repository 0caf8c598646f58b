"""The direct path EUPU[q, o] = ((Ebar[q] + b_O) W_U + b_U)[o], bounded for every query q and max m:

    EUPU[q, o] - EUPU[q, m] <= mean[o] - mean[m] + err[q]        (all o != m)

Handlings (the paper's names):
- mean_query+max_diff: w = the mean of the rows of Ebar (rounded; any w is sound), mean = (w + b_O) W_U + b_U,
  err[q] = sum_d |Ebar[q, d] - w_d| rho_d, rho_d = max_o W_U[d, o] - min_o W_U[d, o]: since
  EUPU[q,o] - EUPU[q,m] - (mean[o] - mean[m]) = (Ebar[q] - w) . (W_U[:, o] - W_U[:, m]).   O(d_vocab d_model)
- svd_query+max_diff: the same with w = a certificate hint (`eupu_direction`, d_model floats).
- max_diff: w = 0.
- max_diff_exact: EUPU in full (d_vocab^2 d_model); mean = 0, err[q] = max_o EUPU[q, o] - min_o EUPU[q, o].
- global_max_diff_exact: as max_diff_exact with err[q] = max EUPU - min EUPU over all entries.
- max_diff_exact_per_max (new): EUPU in full; mean = 0 and the error per (q, m),
  err[q, m] = max_{o != m} EUPU[q, o] - EUPU[q, m] (the two largest entries of each row: d_vocab^2).
- mean_query+max_diff_exact_per_max (new): EUPU in full, centred on the mean query's direct path
  mean = (w + b_O) W_U + b_U (w the rounded mean row of Ebar, as mean_query+max_diff), so that the
  part every query shares enters the cell bounds jointly with the values, output by output:
  err[q, m] = max_{o != m} C[q, o] - C[q, m] with C = EUPU - mean (exact), since
  EUPU[q, o] - EUPU[q, m] - (mean[o] - mean[m]) = C[q, o] - C[q, m].   d_vocab^2 d_model
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compact_proofs.checker import memo
from compact_proofs.checker.context import Evidence
from compact_proofs.checker.exact import Dyadic, mean_rows
from compact_proofs.checker.weights import Model

HANDLINGS = ("mean_query+max_diff", "svd_query+max_diff", "max_diff", "max_diff_exact", "global_max_diff_exact",
             "max_diff_exact_per_max", "mean_query+max_diff_exact_per_max")
PER_MAX = HANDLINGS[5:]  # err per (q, m)


@dataclass(frozen=True)
class DirectBound:
    mean: Dyadic  # [1, d_vocab]
    err: Dyadic  # [d_vocab, 1], or [d_vocab (q), d_vocab (m)] for max_diff_exact_per_max


def _rows(row: Dyadic, count: int) -> Dyadic:
    return Dyadic(np.repeat(row.ints, count, axis=0), row.exp)


def direct_bound(handling: str, model: Model, e_bar: Dyadic, evidence: Evidence) -> DirectBound:
    """The bound for this handling (computed once per process for equal inputs, memo.py)."""
    hint = evidence.tensor("eupu_direction", "<f8", (model.d_model,)) if handling == "svd_query+max_diff" else None
    key = ("direct_bound", model.key, handling, e_bar.digest(), None if hint is None else hint.tobytes())
    return memo.cached(key, lambda: _bound(handling, model, e_bar, hint))


def _bound(handling: str, model: Model, e_bar: Dyadic, hint: np.ndarray | None) -> DirectBound:
    V, D = model.d_vocab, model.d_model
    if handling in ("max_diff_exact", "global_max_diff_exact") + PER_MAX:
        eupu = (e_bar + _rows(model.b_O, V)) @ model.W_U + _rows(model.b_U, V)
        if handling == "max_diff_exact_per_max":
            return DirectBound(Dyadic.zeros(1, V), Dyadic(_largest_other(eupu.ints) - eupu.ints, eupu.exp))
        if handling == "mean_query+max_diff_exact_per_max":
            mean = (mean_rows(e_bar) + model.b_O) @ model.W_U + model.b_U
            centred = eupu - _rows(mean, V)
            return DirectBound(mean, Dyadic(_largest_other(centred.ints) - centred.ints, centred.exp))
        err = eupu.spread().reshape(V, 1)
        if handling == "global_max_diff_exact":
            err = _rows(Dyadic(np.array([[eupu.ints.max() - eupu.ints.min()]], dtype=object), eupu.exp), V)
        return DirectBound(Dyadic.zeros(1, V), err)
    if handling == "mean_query+max_diff":
        w = mean_rows(e_bar)
    elif handling == "svd_query+max_diff":
        w = Dyadic.from_floats(hint.reshape(1, D))
    else:
        w = Dyadic.zeros(1, D)
    rho = model.W_U.spread().reshape(D, 1)
    err = abs(e_bar - _rows(w, V)) @ rho
    mean = (w + model.b_O) @ model.W_U + model.b_U
    return DirectBound(mean, err)


def _largest_other(ints: np.ndarray) -> np.ndarray:
    """[q, m] -> max_{o != m} ints[q, o] (ints[q, m] itself when d_vocab = 1): the largest entry of
    each row, or the second largest in the column of the largest."""
    rows = np.arange(ints.shape[0])
    top = np.argmax(ints, axis=1)
    first = ints[rows, top]
    rest = ints.copy()
    rest[rows, top] = ints[rows, np.argmin(ints, axis=1)]  # the row's minimum stands in for the largest
    second = rest.max(axis=1) if ints.shape[1] > 1 else first
    return np.where(np.arange(ints.shape[1])[None, :] == top[:, None], second[:, None], first[:, None])

"""The cubic proof, O(d_vocab^3 n_ctx^2): a bound on the largest wrong logit for every case
(m, q, c, k) = (max token, query token, number of non-max non-query tokens, that token).

Notation (exact; outputs o != m; every table centred on column m):
    EUc[q,o] = EUPU[q,o] - EUPU[q,m],   EVc[t,o] = EVOU[t,o] - EVOU[t,m],   PVc[p,o] = PVOU[p,o] - PVOU[p,m].

1. Slot coefficients. For an input x with label m and query q, since the attention a_i sums to 1,
       logits[o] - logits[m] = sum_i a_i (EUc[q,o] + EVc[x_i,o] + PVc[i,o]).                       (1)
   A test is a triple (f_m, f_k, f_q): values for the slots holding m, the slots holding the
   non-max token, and the query slot (position n-1). A test covers output o if every slot's
   value is at least that slot's term of (1) at o, for every position the slot may occupy. A
   case's tests must cover every o != m; then max_o (logits[o] - logits[m]) <= max over tests of
   F = sum_i a_i f_{slot(i)}.
2. Claims. The certificate claims, per case, an upper bound `claim` on F for every test and
   every arrangement of the m- and k-slots. The checker verifies the sign of
       F - claim  ~  e^{E_m} T (f_m - claim) + e^{E_k} (Z - T)(f_k - claim) + e^{E_q + P_{n-1}} (f_q - claim),
   (E_t = EQKE[q,t]/sqrt(d), P_p = EQKP[q,p]/sqrt(d), T = sum of e^{P_p} over the m-slots, Z over all
   non-query slots), which is linear in T: its maximum over arrangements is at the smallest or
   the largest T, i.e. with the n-1-c copies of m on the lowest or on the highest EQKP[q,p].
   So two arrangements per test suffice.
3. Mixtures. Let G = {k < m : claim(m,q,c,k) < 0}. Take an input of case (m,q,c) whose non-max
   tokens lie in G, in any mixture, and an output o. All slot values are position-independent,
   so sum_i e^{s_i} A_{x_i}(o) is at most the same sum with every k-slot holding the k* in G that
   maximises e^{E_k} A_k(o); that input lies in case (m,q,c,k*), whose tests cover o and stay below
   its claim < 0. So every such input is correct: (m,q,c) contributes C(n-1,c)|G|^c (counting.py).

Variants (both in one case layout; evidence `claims`, <f4, one per case in the canonical order of
`cases_of` for m = 0, 1, ...):
- `cubic/reference`, as in the paper's code: one test per case, f_t = EUpess[q] + Ev[t] with
  EUpess[q] = max_o EUc[q,o], Ev[t] = max_o (EVc[t,o] + Pall[o]), Pall[o] = max over all p of PVc[p,o].
- `cubic` (default, tighter, same cost): the direct path is shared out over the slots inside the
  max over o, the query slot uses its own position, and other slots only positions 0..n-2:
      A_t(o) = EUc[q,o] + EVc[t,o] + Pk[o],  Pk[o] = max_{p<n-1} PVc[p,o];   A_q(o) = EUc[q,o] + EVc[q,o] + PVc[n-1,o].
  Tests: for each o in S = {k} + candidates(m,q) (evidence `candidates`, <i8 [cases (m,q), r],
  outputs the generator expects to be dangerous), the exact joint test (A_m(o), A_k(o), A_q(o));
  plus one test for all other o: (max_{o not in S} A_m, EUpess[q] + max_{o != k} (EVc[k,o] + Pk[o]),
  max_{o not in S} A_q). Each value is at least its reference counterpart, test by test.
Case c = 0 (no k-slot, one input): one joint test per output o (both variants).

Arithmetic: the per-m tables are enclosed in outward-rounded float64 intervals (interval.py; the
same formulas, max being monotone); the per-case values are evaluated twice from the same
formulas: in float64 from the upper ends, rounded upward (every value >= its exact counterpart,
as only + and max, both monotone, follow), to filter (float_filter, Lemma 2; weights by Lemma 3),
and exactly, from exact integer tables computed only for the m that need them
(enclosure.exp_sum_sign), for whatever the filter leaves undecided. (The derived format also
filters from the lower ends, rounded downward, to fail cases at once.)
"""

from __future__ import annotations

import numpy as np

from compact_proofs.checker import cost, memo
from compact_proofs.checker.context import Context, Outcome
from compact_proofs.checker.counting import check_partition, copy_counts, inputs_covered
from compact_proofs.checker.enclosure import exp_sum_sign, exp_table
from compact_proofs.checker.errors import CheckError, InvalidCertificate, ResourceLimit
from compact_proofs.checker.exact import Dyadic, align
from compact_proofs.checker.float_filter import Threshold, coefficient_bound
from compact_proofs.checker.interval import Interval, next_down, next_up
from compact_proofs.checker.paths import paths

MAX_CANDIDATES = 16
MAX_CASES = 1 << 24  # with per-case claims
MAX_DERIVED_CASES = 1 << 31  # derived: the evidence stays at most d_vocab^2 (d_vocab + 1) / 2 x 16


def count_cases(d_vocab: int, n_ctx: int) -> int:
    """The number of cases: per m, the query m has 1 + (n-1) m cases, each query q < m has 1 + (n-2) m."""
    return sum(1 + (n_ctx - 1) * m + (m * (1 + (n_ctx - 2) * m) if n_ctx >= 2 else 0) for m in range(d_vocab))


def cases_of(m: int, n_ctx: int) -> np.ndarray:
    """The cases of max token m, in canonical order, as rows (m, q, c, k): q = 0..m, c over
    copy_counts(m, q, n_ctx), and k = 0..m-1 for c > 0 (k = m, a placeholder, for c = 0)."""
    pairs = np.array([(q, c) for q in range(m + 1) for c in copy_counts(m, q, n_ctx)], dtype=np.int64).reshape(-1, 2)
    sizes = np.where(pairs[:, 1] > 0, m, 1)
    q, c = np.repeat(pairs[:, 0], sizes), np.repeat(pairs[:, 1], sizes)
    within = np.arange(len(q)) - np.repeat(np.cumsum(sizes) - sizes, sizes)  # 0, 1, ... inside each (q, c)
    return np.column_stack([np.full_like(q, m), q, c, np.where(c > 0, within, m)])


# ------------------------------------------------------------------------------------------
# Two arithmetics for the same formulas: exact integers (object arrays) and float64 rounded up.


def _add_exact(a, b):
    return a + b


def _add_up(a, b):
    return next_up(a + b)


def _add_down(a, b):
    return next_down(a + b)


def _nearest(ints: np.ndarray, exp: int) -> np.ndarray:
    """The nearest float64 of every exact entry: next_up of it is >= the entry, next_down <= it."""
    try:
        return Dyadic(ints, exp).to_float()
    except OverflowError:
        raise CheckError("cubic", "logit magnitudes beyond float64; the cubic check does not cover them") from None


class _Exact(dict):
    """The exact tables of one m, computed on first use."""

    def __init__(self, compute):
        super().__init__()
        self.compute = compute

    def __missing__(self, key):
        self.update(self.compute())
        return self[key]


def _tables(ov: dict[str, np.ndarray], m: int, n_ctx: int, reference: bool) -> dict[str, np.ndarray]:
    """Tables for max token m, exact (integer object arrays) or enclosed (Interval); columns are
    the outputs o != m in increasing order, so output k < m is column k. c0_m[q], c0_q[q]: the
    slot values of the c = 0 tests, one column per output."""
    others = np.array([o for o in range(ov["EVOU"].shape[1]) if o != m], dtype=np.int64)
    centre = lambda t: t[:, others] - t[:, [m]]  # noqa: E731
    eu, ev, pv = centre(ov["EUPU"][: m + 1]), centre(ov["EVOU"][: m + 1]), centre(ov["PVOU"])
    if reference:
        p_all = pv.max(axis=0)
        return {"c0_m": eu + ev[m] + p_all, "c0_q": eu + ev + p_all, "Ev": (ev + p_all).max(axis=1), "EUpess": eu.max(axis=1)}
    p_k = pv[:-1].max(axis=0) if n_ctx > 1 else pv[-1]  # (with n_ctx = 1 there are no non-query slots)
    return {"c0_m": eu + ev[m] + p_k, "c0_q": eu + ev + pv[-1], "EUc": eu, "KV": ev[:m] + p_k}


def _top2(values: np.ndarray, excluded: np.ndarray):
    """Per row: the largest entry outside `excluded`, its column, the second largest, and how
    many columns are outside. Excluded entries are replaced by the row minimum, which is picked
    only when it ties the largest remaining entry, so the values are the remaining maxima
    whenever enough columns remain."""
    low = values.min(axis=1, keepdims=True)
    masked = np.where(excluded, low, values)
    rows = np.arange(len(values))
    first = masked.argmax(axis=1)
    largest = masked[rows, first]
    if values.shape[1] > 1:
        masked[rows, first] = low[:, 0]  # the second largest: the largest once the first is set to the minimum
    return largest, first, masked.max(axis=1), (~excluded).sum(axis=1)


class _Tests:
    """The tests of every c >= 1 case of one max token m, in one arithmetic (`add`)."""

    def __init__(self, tab: dict[str, np.ndarray], add, cand: np.ndarray | None):
        self.tab, self.add, self.cand = tab, add, cand
        if cand is None:
            return
        excluded = np.zeros(tab["c0_m"].shape, bool)
        np.put_along_axis(excluded, cand, True, axis=1)
        self.excluded = excluded
        self.rest_m, self.rest_q = _top2(tab["c0_m"], excluded), _top2(tab["c0_q"], excluded)
        kv = tab["KV"]
        own = np.zeros(kv.shape, bool)
        own[np.arange(len(kv)), np.arange(len(kv))] = True  # row k, column k: output k itself
        self.kv_rest = _top2(kv, own)[0]  # max over o not in {m, k}
        self.eu_max = tab["EUc"].max(axis=1)

    def __call__(self, qs: np.ndarray, ks: np.ndarray):
        """(f_m, f_k, f_q, valid), each [cases, tests]."""
        tab, add = self.tab, self.add
        if self.cand is None:  # reference: f_t = EUpess[q] + Ev[t]
            m = len(tab["Ev"]) - 1
            value = lambda t: add(tab["EUpess"][qs], tab["Ev"][t])[:, None]  # noqa: E731
            return value(np.full_like(qs, m)), value(ks), value(qs), np.ones((len(qs), 1), bool)
        cols = np.concatenate([ks[:, None], self.cand[qs]], axis=1)  # S = {k} + candidates
        q2, k2 = qs[:, None], ks[:, None]
        joint_m, joint_q = tab["c0_m"][q2, cols], tab["c0_q"][q2, cols]
        joint_k = add(tab["EUc"][q2, cols], tab["KV"][k2, cols])

        def outside_s(top):  # max over outputs outside S = candidates + {k}
            v1, i1, v2, _ = top
            return np.where(i1[qs] == ks, v2[qs], v1[qs])[:, None]

        left = self.rest_m[3][qs] - ~self.excluded[qs, ks]
        rest_k = add(self.eu_max[qs], self.kv_rest[ks])[:, None]
        valid = np.concatenate([np.ones(cols.shape, bool), (left >= 1)[:, None]], axis=1)
        return (np.concatenate([joint_m, outside_s(self.rest_m)], axis=1),
                np.concatenate([joint_k, rest_k], axis=1),
                np.concatenate([joint_q, outside_s(self.rest_q)], axis=1), valid)


# ------------------------------------------------------------------------------------------
# Verification


class _Weights:
    """e^{E_t} and arrangement sums for every query q (Lemma 3: exp tables, products, sums)."""

    def __init__(self, p, n_ctx: int):
        self.w_tok, w_pos = exp_table(p.EQKE, p.d_head), exp_table(p.EQKP, p.d_head)
        (self.eqke, self.eqkp), self.score_exp = align(p.EQKE, p.EQKP)
        self.d_head, self.n = p.d_head, n_ctx
        free = n_ctx - 1
        self.order = np.argsort(self.eqkp[:, :free], axis=1, kind="stable").astype(np.int64)  # exact order
        ranked = np.take_along_axis(w_pos[:, :free], self.order, axis=1)
        zero = np.zeros((len(ranked), 1))
        self.prefix = np.concatenate([zero, np.cumsum(ranked, axis=1)], axis=1)  # sum of the j lowest
        self.suffix = np.concatenate([np.cumsum(ranked[:, ::-1], axis=1)[:, ::-1], zero], axis=1)  # from j on
        self.query = self.w_tok[np.arange(len(ranked)), np.arange(len(ranked))] * w_pos[:, free]
        self.threshold_terms = Threshold.product_weights(max(free, 1))

    def arrangements(self, m: int, qs, cs, ks):
        """W_m, W_k [cases, 2] for (m-copies lowest, m-copies highest), and W_q [cases]."""
        free_m = self.n - 1 - cs
        t = np.stack([self.prefix[qs, free_m], self.suffix[qs, cs]], axis=1)
        z = np.stack([self.suffix[qs, free_m], self.prefix[qs, cs]], axis=1)
        return self.w_tok[qs, m][:, None] * t, self.w_tok[qs, ks][:, None] * z, self.query[qs]

    def slots(self, q: int, c: int, arrangement: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the m-copies and of the k-copies in an arrangement."""
        order, free_m = self.order[q], self.n - 1 - c
        return (order[:free_m], order[free_m:]) if arrangement == 0 else (order[c:], order[:c])

    def exact_sign(self, q: int, m: int, k: int, c: int, arrangement: int, coeffs, claim: float) -> int:
        """Exact sign of sum over slots of e^{s_i} (f_slot - claim)."""
        num, den = float(claim).as_integer_ratio()
        exp = min(coeffs[3], 1 - den.bit_length())
        scale = lambda f: int(f) * (1 << (coeffs[3] - exp)) - num * (1 << (1 - den.bit_length() - exp))  # noqa: E731
        f_m, f_k, f_q = (scale(f) for f in coeffs[:3])
        m_slots, k_slots = self.slots(q, c, arrangement)
        terms = [(int(self.eqke[q, m] + self.eqkp[q, p]), f_m) for p in m_slots]
        terms += [(int(self.eqke[q, k] + self.eqkp[q, p]), f_k) for p in k_slots]
        terms.append((int(self.eqke[q, q] + self.eqkp[q, self.n - 1]), f_q))
        return exp_sum_sign(terms, self.score_exp, self.d_head)


def _filter(w_m, w_k, w_q, f_m, f_k, f_q, claims, valid, eps_eta, sign: int = -1):
    """Mask of the valid tests whose sum, for some arrangement, is not certainly below zero (sign
    -1: the f are upper bounds), or (sign +1: the f are lower bounds) of the valid tests whose sum
    is certainly above zero for some arrangement. Sums [cases, tests, arrangements]."""
    coeff = coefficient_bound(max(float(np.abs(f).max(initial=0)) for f in (f_m, f_k, f_q)), float(np.abs(claims).max(initial=0)))
    threshold = Threshold.for_sums(3, coeff, *eps_eta)
    d = [(f - claims[:, None])[:, :, None] for f in (f_m, f_k, f_q)]
    sums = (w_m[:, None, :] * d[0] + w_k[:, None, :] * d[1]) + w_q[:, None, None] * d[2]
    weights = (w_m + w_k + w_q[:, None])[:, None, :]
    positive, negative = threshold.classify(sums, np.broadcast_to(weights, sums.shape))
    cost.add(8 * sums.size, 12 * sums.size)  # pragma: no mutate (accounting)
    if sign > 0:
        return positive.any(axis=2) & valid
    return ~negative & valid[:, :, None]


def _candidates(ctx: Context, d_vocab: int) -> np.ndarray:
    """Evidence `candidates` [(m, q <= m) pairs, r], as column indices among the outputs o != m."""
    return candidate_columns(ctx.evidence.tensor("candidates", "<i8", (d_vocab * (d_vocab + 1) // 2, None)), d_vocab)


def candidate_columns(raw: np.ndarray, d_vocab: int) -> np.ndarray:
    """Candidates [(m, q <= m) pairs, r] (outputs), validated, as column indices among the outputs o != m."""
    if raw.shape[1] > MAX_CANDIDATES:
        raise InvalidCertificate("evidence", f"at most {MAX_CANDIDATES} candidates per (m, q)")
    m_of_pair = np.repeat(np.arange(d_vocab), np.arange(1, d_vocab + 1))[:, None]
    if raw.size and (raw.min() < 0 or raw.max() >= d_vocab or (raw == m_of_pair).any()):
        raise InvalidCertificate("evidence", "candidates must be outputs in [0, d_vocab) other than m")
    return raw - (raw > m_of_pair)


class _Block:
    """The cases of one max token m (rows m, q, c, k of `block`) and what checking them needs.
    tabs: the exact tables, rounded up, and (derived) rounded down. The slot values of a (q, k)
    pair do not depend on c, so those over the rounded-up tables are formed once (`pairs`, row
    q m + k)."""

    def __init__(self, m, block, claims, tabs, ov_exp, weights, cand, derived: bool):
        self.m, self.block, self.claims, self.tabs, self.ov_exp = m, block, claims, tabs, ov_exp
        self.weights, self.cand, self.derived = weights, cand, derived
        self.exact_checks = 0
        every_q, every_k = np.repeat(np.arange(m + 1), m), np.tile(np.arange(m), m + 1)
        self.pairs = _Tests(tabs[1], _add_up, cand)(every_q, every_k) if m and (block[:, 2] > 0).any() else None

    def tests(self, which: int, qs, ks, c: int):
        """(f_m, f_k, f_q, valid) over table `which` (0 exact, 1 up, 2 down) for pairs (qs, ks), of
        the cases c = 0 or (any c > 0) c >= 1."""
        tab, add = self.tabs[which], (_add_exact, _add_up, _add_down)[which]
        if c == 0:  # one test per output; no k-slots, so both arrangements coincide
            f_m, f_q = tab["c0_m"][qs], tab["c0_q"][qs]
            return f_m, f_m * 0, f_q, np.ones(f_m.shape, bool)
        if which == 1:
            index = qs * self.m + ks  # rows of consecutive (q, k) pairs: a view
            if len(index) and (np.diff(index) == 1).all():
                return tuple(f[index[0] : index[-1] + 1] for f in self.pairs)
            return tuple(f[index] for f in self.pairs)
        return _Tests(tab, add, self.cand)(qs, ks)

    def negative(self, qs, cs, ks, claims, arrangements) -> np.ndarray:
        """Per case (qs, cs, ks) [r], with claims [r] and arrangements [r, 2] (the copy count each
        arrangement is taken at: column 0 m-copies lowest, column 1 highest; usually cs twice):
        is every valid test's sum, at both arrangements, established below the claim (derived:
        strictly below 0)? With claims, a test that fails raises CheckError."""
        if not len(qs):
            return np.ones(0, bool)
        c, m, weights = int(cs[0]), self.m, self.weights
        low, high = weights.arrangements(m, qs, arrangements[:, 0], ks), weights.arrangements(m, qs, arrangements[:, 1], ks)
        w_m, w_k = (np.stack([low[i][:, 0], high[i][:, 1]], axis=1) for i in (0, 1))
        f_up = self.tests(1, qs, ks, c)
        undecided = _filter(w_m, w_k, low[2], *f_up[:3], claims, f_up[3], weights.threshold_terms)
        established = np.ones(len(qs), bool)
        if not undecided.any():
            return established
        if self.derived:  # the cases with a test certainly above zero fail at once
            open_rows = np.flatnonzero(undecided.any(axis=(1, 2)))
            f_down = self.tests(2, qs[open_rows], ks[open_rows], c)
            failing = _filter(w_m[open_rows], w_k[open_rows], low[2][open_rows], *f_down[:3], claims[open_rows], f_down[3],
                              weights.threshold_terms, sign=1).any(axis=1)
            established[open_rows[failing]] = False
            undecided &= established[:, None, None]
        pending = list(zip(*np.nonzero(undecided)))
        if not pending:
            return established
        exact_rows = np.unique([row for row, _, _ in pending])
        f_exact = self.tests(0, qs[exact_rows], ks[exact_rows], c)  # only the rows that need an exact decision
        position = {int(row): i for i, row in enumerate(exact_rows)}
        for row, test, arrangement in pending:
            if not established[row]:
                continue
            self.exact_checks += 1
            coeffs = tuple(f[position[int(row)], test] for f in f_exact[:3]) + (self.ov_exp,)
            copies = int(arrangements[row, arrangement])
            try:
                sign = weights.exact_sign(qs[row], m, ks[row], copies, arrangement, coeffs, claims[row])
            except CheckError:  # not settled at the precision cap: not established
                sign = None
            if sign == -1 or (sign == 0 and not self.derived):  # F - claim certainly <= 0 (< 0 derived)
                continue
            established[row] = False
            if not self.derived:
                raise CheckError("cubic", f"claim {float(claims[row])!r} for case (m={m}, q={qs[row]}, c={cs[row]}, "
                                 f"k={ks[row]}) is not established: " + ("below the bound the checker derives"
                                 if sign == 1 else "its sign is not settled within the precision cap"))
        return established

    def nonnegative(self, qs, ks, copies, arrangement: int, test) -> np.ndarray:
        """Per pair (qs, ks) [r]: is the sum of test `test[r]` at `arrangement` of case c = copies[r]
        (>= 1) certainly >= 0? (filter over values rounded down, then exact; unsettled: no)."""
        out = np.zeros(len(qs), bool)
        if not len(qs):
            return out
        weights, pick = self.weights, lambda f, rows=slice(None): np.take_along_axis(f, test[rows, None], axis=1)  # noqa: E731
        w = weights.arrangements(self.m, qs, copies, ks)
        w_m, w_k = (w[i][:, [arrangement, arrangement]] for i in (0, 1))
        f_down = [pick(f) for f in self.tests(2, qs, ks, 1)]
        out[:] = _filter(w_m, w_k, w[2], *f_down[:3], np.zeros(len(qs)), f_down[3], weights.threshold_terms, sign=1)[:, 0]
        open_rows = np.flatnonzero(~out & f_down[3][:, 0])  # a test the pair does not have is never a witness
        if not len(open_rows):
            return out
        f_exact = [pick(f, open_rows) for f in self.tests(0, qs[open_rows], ks[open_rows], 1)]
        for i, row in enumerate(open_rows):
            self.exact_checks += 1
            coeffs = tuple(f[i, 0] for f in f_exact[:3]) + (self.ov_exp,)
            try:
                sign = weights.exact_sign(qs[row], self.m, ks[row], int(copies[row]), arrangement, coeffs, 0.0)
            except CheckError:  # not settled at the precision cap: not shown
                continue
            out[row] = sign >= 0
        return out

    def check(self, rows: np.ndarray) -> np.ndarray:
        """Case by case: is each of `rows` (indices into the block) established? One c at a time."""
        block, out = self.block, np.zeros(len(rows), bool)
        for c in np.unique(block[rows, 2]):
            at = np.flatnonzero(block[rows, 2] == c)
            qs, cs, ks = (block[rows[at], i] for i in (1, 2, 3))
            out[at] = self.negative(qs, cs, ks, self.claims[rows[at]], np.stack([cs, cs], axis=1))
        return out


def _check_block(m, block, claims, tabs, ov_exp, weights, cand, derived: bool) -> tuple[np.ndarray, int]:
    """Check every case of max token m (block rows: m, q, c, k) against its claim; returns the
    cases whose every test is established, and the number of exact decisions. With claims, a
    test that fails raises CheckError; derived (every claim 0), it leaves its case uncounted,
    and a test passes only if its sum is certainly below 0 (the bound strictly negative): the
    sums over values rounded up that are certainly negative pass (monotonicity); one over values
    rounded down that is certainly positive fails, with no exact decision. Derived, the cases
    c >= 1 go by intervals of c (`_intervals`)."""
    checker = _Block(m, block, claims, tabs, ov_exp, weights, cand, derived)
    if not derived or checker.pairs is None:
        return checker.check(np.arange(len(block))), checker.exact_checks
    established = np.zeros(len(block), bool)
    zero = np.flatnonzero(block[:, 2] == 0)
    established[zero] = checker.check(zero)
    _intervals(checker, established)
    return established, checker.exact_checks


def _intervals(checker: _Block, established: np.ndarray) -> None:
    """The derived cases c >= 1 of one m, by intervals of c per (q, k) pair (sets `established`).

    Fix a pair and a valid test. With T the e^P-mass of the m-slots, the test's sum is affine in T,
        g(T) = e^{E_m} T f_m + e^{E_k} (Z - T) f_k + e^{E_q + P_{n-1}} f_q,
    and case c passes it iff g(L_c) < 0 and g(H_c) < 0, L_c <= H_c being T with the n-1-c m-copies on
    the lowest and on the highest positions. Both L_c and H_c strictly decrease in c, so for
    c1 <= c <= c2, L_c and H_c lie in [L_{c2}, H_{c1}], and H_c in [H_{c2}, H_{c1}], L_c in [L_{c2}, L_{c1}].
    An affine function negative (non-negative) at both ends of a segment is so between. Hence:
      (i) if every valid test is negative at L_b and at H_a, every case a..b passes;
      (ii) if one test is >= 0 at H_1 and at H_{a-1}, every case 1..a-1 fails;
      (iii) if one test is >= 0 at L_{b+1} and at L_top, every case b+1..top fails.
    A float guess of a, b and the two tests (any guess is sound) is confirmed by (i)-(iii), each
    end decided like any case (filter, then exact); then the pair's cases that pass are exactly
    a..b (none if a > b, when (ii) and (iii) cover 1..top). A pair not confirmed goes case by case."""
    m, block, n = checker.m, checker.block, checker.weights.n
    upper = block[:, 2] > 0
    rows_of = np.full(((m + 1) * m, n), -1, np.int64)  # [pair q m + k, c] -> block row (c >= 1), else -1
    rows_of[block[upper, 1] * m + block[upper, 3], block[upper, 2]] = np.flatnonzero(upper)
    qs, ks = np.repeat(np.arange(m + 1), m), np.tile(np.arange(m), m + 1)
    top = np.where(qs == m, n - 1, n - 2)  # the largest c of the pair
    a, b, test_a, test_b = _guess(checker, qs, ks, top)
    a, b = np.clip(a, 1, top + 1), np.clip(b, 0, top)  # (a guess outside 1..top means the same as at its edge)
    test_a, test_b = (np.clip(t, 0, checker.pairs[0].shape[1] - 1) for t in (test_a, test_b))
    live = top >= 1
    confirmed = live.copy()
    inside = np.flatnonzero(live & (a <= b))  # (i): L at c = b, H at c = a
    confirmed[inside] = checker.negative(qs[inside], a[inside], ks[inside], np.zeros(len(inside)),
                                         np.stack([b[inside], a[inside]], axis=1))
    one = np.ones_like(a)
    for below, ends, test, arrangement in ((a > 1, (one, a - 1), test_a, 1), (b < top, (b + 1, top), test_b, 0)):  # (ii), (iii)
        for copies in ends:
            pairs = np.flatnonzero(live & below & confirmed)
            confirmed[pairs] = checker.nonnegative(qs[pairs], ks[pairs], copies[pairs], arrangement, test[pairs])
    c = np.arange(n)[None, :]
    passing = confirmed[:, None] & (a[:, None] <= c) & (c <= b[:, None]) & (rows_of >= 0)
    established[rows_of[passing]] = True
    rest = rows_of[live & ~confirmed]
    rest = rest[rest >= 0]
    established[rest] = checker.check(rest)


def _guess(checker: _Block, qs, ks, top) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Float guess (unverified) of the interval [a, b] of c in 1..top where every valid test's
    affine sum g(T) = alpha T + beta is negative at both L_c and H_c (a > b: none), and of the
    tests that fail the cases below a (at H) and above b (at L)."""
    w, m, n = checker.weights, checker.m, checker.weights.n
    f_m, f_k, f_q, valid = checker.pairs
    with np.errstate(all="ignore"):
        e_m, e_k = w.w_tok[qs, m][:, None], w.w_tok[qs, ks][:, None]
        alpha = e_m * f_m - e_k * f_k
        beta = e_k * w.prefix[qs, n - 1][:, None] * f_k + w.query[qs][:, None] * f_q
        root = -beta / alpha
        beyond = np.arange(1, n)[None, :] > top[:, None]  # c = 1 .. n - 1, past the pair's largest c
        high = np.where(beyond, -np.inf, w.suffix[qs, 1:n])[:, None, :]  # H_c
        low = np.where(beyond, -np.inf, w.prefix[qs, n - 2 :: -1])[:, None, :]  # L_c
        rising, falling = alpha > 0, alpha < 0
        lo = np.where(rising, 1 + (high >= root[:, :, None]).sum(axis=2), np.where(falling | (beta < 0), 1, top[:, None] + 1))
        hi = np.where(falling, (low > root[:, :, None]).sum(axis=2), top[:, None])
    lo, hi = np.where(valid, lo, 1), np.where(valid, hi, top[:, None])
    test_a, test_b = lo.argmax(axis=1), hi.argmin(axis=1)
    rows = np.arange(len(qs))
    return lo[rows, test_a], hi[rows, test_b], test_a, test_b


def _count(block: np.ndarray, counted: np.ndarray, n_ctx: int) -> int:
    """Inputs covered by the counted cases: 1 per c = 0 case, C(n-1,c)|G|^c per (q, c)."""
    negative = counted
    total = int(np.count_nonzero(negative & (block[:, 2] == 0)))
    keys = block[:, 1] * n_ctx + block[:, 2]
    sizes = np.bincount(keys[negative & (block[:, 2] > 0)], minlength=int(keys.max(initial=0)) + 1)
    for key in np.flatnonzero(sizes):
        total += inputs_covered(n_ctx, int(key % n_ctx), int(sizes[key]))
    return total


def _verify(ctx: Context, reference: bool) -> Outcome:
    """Claims given: each must be at least its case's bound. Claims absent (the derived format,
    evidence of size d_vocab^2 at most): the checker derives which bounds are negative itself."""
    model = ctx.model
    V, N = model.d_vocab, model.n_ctx
    derived = not ctx.evidence.present("claims")
    cases, cap = count_cases(V, N), (MAX_DERIVED_CASES if derived else MAX_CASES)
    if cases > cap:
        raise ResourceLimit("cubic", f"{cost.quantity(cases)} cases exceed the cubic limit {cost.quantity(cap)}")
    claims = np.zeros(cases) if derived else ctx.evidence.tensor("claims", "<f4", (cases,)).astype(np.float64)
    cand = None if reference else _candidates(ctx, V)
    if not check_partition(V, N):  # holds by counting.py; checked because the count rests on it
        raise CheckError("cubic", "the cases do not partition the inputs")
    if not derived:
        return _check_all(ctx, model, claims, cand, reference, derived)
    key = ("cubic-derived", model.key, reference, None if cand is None else cand.tobytes())
    return memo.cached(key, lambda: _check_all(ctx, model, claims, cand, reference, derived))


def _check_all(ctx: Context, model, claims: np.ndarray, cand, reference: bool, derived: bool) -> Outcome:
    verified = exact_checks = 0
    for m, block, counted, checks in counted_cases(model, claims, cand, reference, derived, ctx.progress):
        verified += _count(block, counted, model.n_ctx)
        exact_checks += checks
    return Outcome(verified_correct=verified, notes={"cases": len(claims), "exact_decisions": exact_checks,
                                                     "evidence": "derived" if derived else "claims"})


def counted_cases(model, claims: np.ndarray, cand, reference: bool, derived: bool, progress=lambda *a: None):
    """Per max token m: (m, its cases (rows m, q, c, k), the mask of those counted, the number of
    exact decisions). With claims, every negative claim is checked (CheckError if one fails)."""
    V, N = model.d_vocab, model.n_ctx
    p = paths(model)
    (evou, pvou, eupu), ov_exp = align(p.EVOU, p.PVOU, p.EUPU)
    ov = {"EVOU": evou, "PVOU": pvou, "EUPU": eupu}
    weights = _Weights(p, N)
    start = 0
    enclosed = {}
    for key, value in ov.items():
        nearest = _nearest(value, ov_exp)
        enclosed[key] = Interval(next_down(nearest), next_up(nearest))
    for m in range(V):
        progress("cubic", m, V)  # pragma: no mutate (display)
        block = cases_of(m, N)
        block_claims = claims[start : start + len(block)]
        start += len(block)
        counted, checks = block_claims < 0, 0
        if V > 1:  # with one token there is no wrong output, and every claim holds
            with cost.isolated():  # (the tables' own cost is not counted, as for the exact ones)
                bounds = _tables(enclosed, m, N, reference)  # the same formulas in outward-rounded intervals
            if not all(np.isfinite(b.lo).all() and np.isfinite(b.hi).all() for b in bounds.values()):
                raise CheckError("cubic", "logit magnitudes beyond float64; the cubic check does not cover them")
            up_tab = {key: b.hi for key, b in bounds.items()}
            down_tab = {key: b.lo for key, b in bounds.items()} if derived else None
            exact_tab = _Exact(lambda m=m: _tables(ov, m, N, reference))  # only where a sign is decided exactly
            local = None if cand is None else cand[m * (m + 1) // 2 : (m + 1) * (m + 2) // 2]
            established, checks = _check_block(m, block, block_claims, (exact_tab, up_tab, down_tab), ov_exp, weights,
                                               local, derived)  # memory: one c at a time, (m + 1) m cases
            if derived:
                counted = established
        elif derived:
            counted[:] = True  # one token: no wrong output exists
        yield m, block, counted, checks
    progress("cubic", V, V)  # pragma: no mutate (display)


def verify(ctx: Context) -> Outcome:
    return _verify(ctx, reference=False)


def verify_reference(ctx: Context) -> Outcome:
    return _verify(ctx, reference=True)

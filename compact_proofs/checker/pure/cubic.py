"""The cubic check in the standard library (the second path of checker/strategies/cubic.py).

The same cases, tests, arrangements and counting as the fast path (whose docstring derives them),
computed independently: every table is held as Python integers at one power-of-two scale, and each
test's sign, sum over slots of e^{s_i / sqrt(d_head)} (f_slot - claim), is first bounded with
integer enclosures of the exponentials (arith.exp_bounds at 64 bits, rounded outward to integers):
an upper bound <= 0 passes the test, a lower bound > 0 fails it, and only what lies between is
decided exactly (arith.sign_of_exp_sum). A sign left unsettled never passes.
"""

from __future__ import annotations

from fractions import Fraction
from math import comb
from typing import Callable

from compact_proofs.checker.pure.arith import exp_bounds, rsqrt_bounds, sign_of_exp_sum
from compact_proofs.checker.pure.errors import Reject

BITS = 64  # fixed-point bits of the exponential enclosures


def _scale(values) -> int:
    """The smallest s with every value (a dyadic Fraction) an integer times 2^-s."""
    return max((v.denominator.bit_length() - 1 for v in values), default=0)


def _ints(table, scale: int):
    return [[v.numerator * (1 << scale) // v.denominator for v in row] for row in table]


def _enclosures(rows, d_head: int) -> list[list[tuple[int, int]]]:
    """Per row: (lo, hi) integers with lo <= e^{(x - max(row)) / sqrt(d_head)} 2^BITS <= hi."""
    r_lo, r_hi = rsqrt_bounds(d_head, BITS + 8)
    out = []
    for row in rows:
        top = max(row)
        pairs = []
        for x in row:
            diff = x - top  # <= 0: the exponent lies in [diff r_hi, diff r_lo]
            lo, _ = exp_bounds(diff * r_hi, BITS)
            _, hi = exp_bounds(diff * r_lo, BITS)
            pairs.append(((lo.numerator << BITS) // lo.denominator, -((-hi.numerator << BITS) // hi.denominator)))
        out.append(pairs)
    return out


def _partial(pairs: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Sums of the first j and of all from j on, for j = 0..len(pairs), endpoint by endpoint."""
    prefix, suffix = [(0, 0)], [(0, 0)]
    for lo, hi in pairs:
        prefix.append((prefix[-1][0] + lo, prefix[-1][1] + hi))
    for lo, hi in reversed(pairs):
        suffix.append((suffix[-1][0] + lo, suffix[-1][1] + hi))
    return prefix, suffix[::-1]


def _per_query_tests(ev, pv, eu_row, m: int, q: int, N: int, others, cand, reference: bool):
    """What every case (m, q, c, k) needs: c = 0 tests, and a function k -> tests for c >= 1."""
    eu = {o: eu_row[o] - eu_row[m] for o in others}
    evc = lambda t, o: ev[t][o] - ev[t][m]  # noqa: E731
    pvc = lambda i, o: pv[i][o] - pv[i][m]  # noqa: E731
    if reference:
        p_all = {o: max(pvc(i, o) for i in range(N)) for o in others}
        zero = [(eu[o] + evc(m, o) + p_all[o], 0, eu[o] + evc(q, o) + p_all[o]) for o in others]
        pess = max(eu.values())
        value = lambda t: pess + max(evc(t, o) + p_all[o] for o in others)  # noqa: E731
        at_m, at_q = value(m), value(q)
        return zero, lambda k: [(at_m, value(k), at_q)]
    p_k = {o: max(pvc(i, o) for i in range(N - 1)) if N > 1 else pvc(N - 1, o) for o in others}
    a_m = {o: eu[o] + evc(m, o) + p_k[o] for o in others}
    a_q = {o: eu[o] + evc(q, o) + pvc(N - 1, o) for o in others}
    zero = [(a_m[o], 0, a_q[o]) for o in others]
    pess = max(eu.values())
    outside = [o for o in others if o not in cand]  # the rest test's outputs, before removing k

    def tests(k: int):
        chosen = [k] + cand
        out = [(a_m[o], eu[o] + evc(k, o) + p_k[o], a_q[o]) for o in chosen]
        rest = [o for o in outside if o != k]
        if rest:
            kv = max(evc(k, o) + p_k[o] for o in others if o != k)
            out.append((max(a_m[o] for o in rest), pess + kv, max(a_q[o] for o in rest)))
        return out

    return zero, tests


def check(w: dict, p: dict, claims: list[float] | None, cand_rows: list | None, reference: bool,
          progress: Callable[[str, int, int], None]) -> tuple[int, dict]:
    """The verified count. With claims, every claim is checked against its tests (a failure
    rejects) and the negative ones are counted; without (derived), a case counts iff each of its
    tests' sums is certainly below 0."""
    V, N, H = w["V"], w["N"], w["H"]
    derived = claims is None
    exact_claims = [Fraction(0)] * count_cases(V, N) if derived else [Fraction(c) for c in claims]
    scale = _scale([v for t in (p["EVOU"], p["PVOU"], p["EUPU"]) for row in t for v in row] + exact_claims)
    ev, pv, eu = (_ints(p[name], scale) for name in ("EVOU", "PVOU", "EUPU"))
    claim_ints = [c.numerator * (1 << scale) // c.denominator for c in exact_claims]
    tok, pos = _enclosures(p["EQKE"], H), _enclosures(p["EQKP"], H)
    index = count = exact = 0
    negative: dict[tuple[int, int, int], int] = {}
    for m in range(V):
        progress("cubic (pure)", m, V)
        others = [o for o in range(V) if o != m]
        for q in range(m + 1):
            cand = None if reference else cand_rows[m * (m + 1) // 2 + q]  # validated by the caller
            zero, tests_of = _per_query_tests(ev, pv, eu[q], m, q, N, others, cand, reference) if V > 1 else ([], None)
            order = sorted(range(N - 1), key=lambda i: p["EQKP"][q][i])
            prefix, suffix = _partial([pos[q][i] for i in order])
            query_w = (tok[q][q][0] * pos[q][N - 1][0], tok[q][q][1] * pos[q][N - 1][1])
            for c in (range(N) if q == m else range(N - 1)):
                free_m = N - 1 - c
                for k in (range(m) if c else (m,)):
                    claim = claim_ints[index]
                    tests = (tests_of(k) if c else zero) if V > 1 else []
                    established = True
                    for arrangement in (0, 1):
                        m_sum = prefix[free_m] if arrangement == 0 else suffix[c]
                        k_sum = suffix[free_m] if arrangement == 0 else prefix[c]
                        w_m = (tok[q][m][0] * m_sum[0], tok[q][m][1] * m_sum[1])
                        w_k = (tok[q][k][0] * k_sum[0], tok[q][k][1] * k_sum[1])
                        for f_m, f_k, f_q in tests if established else ():
                            slots = ((w_m, f_m - claim), (w_k, f_k - claim), (query_w, f_q - claim))
                            upper = sum((hi if d > 0 else lo) * d for (lo, hi), d in slots)
                            if upper < 0 or (upper == 0 and not derived):
                                continue
                            lower = sum((lo if d > 0 else hi) * d for (lo, hi), d in slots)
                            exact += 1
                            sign = None if lower > 0 else _exact_sign(
                                p, q, m, k, order, free_m, c, arrangement, N, H, Fraction(f_m - claim, 1 << scale),
                                Fraction(f_k - claim, 1 << scale), Fraction(f_q - claim, 1 << scale))
                            if sign == -1 or (sign == 0 and not derived):
                                continue
                            if not derived:
                                raise Reject(f"claim for case {(m, q, c, k)} is not established")
                            established = False
                            break
                    if (exact_claims[index] < 0) if not derived else established:
                        if c == 0:
                            count += 1
                        else:
                            negative[(m, q, c)] = negative.get((m, q, c), 0) + 1
                    index += 1
    progress("cubic (pure)", V, V)
    count += sum(comb(N - 1, c) * g**c for (m, q, c), g in negative.items())
    return count, {"cases": index, "exact_decisions": exact, "evidence": "derived" if derived else "claims"}


def count_cases(V: int, N: int) -> int:
    return sum(1 + (N - 1) * m + (m * (1 + (N - 2) * m) if N >= 2 else 0) for m in range(V))


def _exact_sign(p, q, m, k, order, free_m, c, arrangement, N, H, d_m, d_k, d_q) -> int | None:
    m_slots, k_slots = (order[:free_m], order[free_m:]) if arrangement == 0 else (order[c:], order[:c])
    terms = [(p["EQKE"][q][m] + p["EQKP"][q][i], d_m) for i in m_slots]
    terms += [(p["EQKE"][q][k] + p["EQKP"][q][i], d_k) for i in k_slots]
    terms.append((p["EQKE"][q][q] + p["EQKP"][q][N - 1], d_q))
    try:
        return sign_of_exp_sum(terms, H)
    except ArithmeticError:
        return None

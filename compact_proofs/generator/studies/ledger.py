"""The slack ledger: where a certificate's bound is lost. Diagnostics, not proofs: nothing here
changes a verdict, and every bound it quotes is the checker's verdict on a real certificate.

- Where the inputs are lost: the inputs a certificate does not certify, by max token m, query
  (last) token q and copies of the max, against the wrong inputs there (every input evaluated in
  float64, where d_vocab^n_ctx <= ENUMERATE_UP_TO; a diagnostic near exact ties). Brute force
  certifies exactly the correct inputs; a cubic certificate (per-case claims) its cases (m, q, c)
  over the tokens k with a negative claim (in the derived format, over those the checker
  establishes); a subcubic one whole cells (q, m, c) with their gaps.
- What each approximation step costs: for a subcubic variant, its bound with one axis swapped for
  its tightest handling (the direct path, the attention pessimisation, the EQKE split), against
  the cubic bound as the reference; and with the attention pessimisation or the OV worst case
  replaced by its exact counterpart (float64 over every input: exact_steps), and the ceiling of
  the cell structure itself; for cubic/reference, the paper's pessimisation over outputs
  swapped for cubic's joint maxima; both cubics against the exact accuracy (brute force, where
  feasible). Single-step gains need not add up to the gap; the ledger says how much they cover.
"""

from __future__ import annotations

import numpy as np

from compact_proofs.checker import certificate as certificates
from compact_proofs.checker.counting import inputs_covered
from compact_proofs.checker.strategies import subcubic as definition

ENUMERATE_UP_TO = 1 << 24
REFERENCE_LABEL = {"cubic": "the cubic proof's bound, for comparison", "exact accuracy (brute force)": "exact accuracy, for comparison"}
TIGHTEST = {"direct path (EUPU summary)": (0, "max_diff_exact"),
            "attention pessimisation": (1, "per_output+chords"),
            "EQKE split (attention error)": (2, "exact_EQKE+max_diff_exact")}


def wrong_inputs(weights: dict) -> np.ndarray | None:
    """[m, q, copies] counts of inputs the model gets wrong (float64, ties wrong), or None when
    d_vocab^n_ctx > ENUMERATE_UP_TO."""
    from compact_proofs.generator.studies.sweep import _float64_logits, label_strictly_largest

    V, N = weights["embed.W_E"].shape[0], weights["pos_embed.W_pos"].shape[0]
    if V**N > ENUMERATE_UP_TO:
        return None
    logits_of = _float64_logits(weights)
    counts = np.zeros(V * V * (N + 1), np.int64)
    for start in range(0, V**N, 1 << 16):
        index = np.arange(start, min(start + (1 << 16), V**N))
        tokens = np.stack([(index // V ** (N - 1 - i)) % V for i in range(N)], axis=1)
        wrong = ~label_strictly_largest(tokens, logits_of(tokens))
        m = tokens.max(axis=1)
        key = (m * V + tokens[:, -1]) * (N + 1) + (tokens == m[:, None]).sum(axis=1)
        counts += np.bincount(key[wrong], minlength=len(counts))
    return counts.reshape(V, V, N + 1)


def all_inputs(V: int, N: int) -> np.ndarray:
    """[m, q, copies] counts of all inputs."""
    out = np.zeros((V, V, N + 1), dtype=object)
    for m in range(V):
        for copies in range(1, N + 1):
            others = N - copies  # non-max tokens, each below m
            for q in range(m + 1):
                if q == m:  # the query is a copy: the other copies - 1 among the first N - 1
                    out[m, q, copies] = inputs_covered(N, others, m)
                elif copies < N:  # the query is one of the non-max tokens
                    out[m, q, copies] = inputs_covered(N, others - 1, m)
    return out


def certified_inputs(cert) -> np.ndarray | None:
    """[m, q, copies] counts of the inputs a certificate certifies: a subcubic one's counted cells,
    a cubic one's cases (m, q, c) with G = {k : case (m, q, c, k) counted} (C(n-1, c) |G|^c inputs,
    c non-max non-query tokens): with claims, the negative ones; in the derived format, those the
    checker establishes (its own case decisions, run again here). None for brute force."""
    if cert.strategy.startswith("cubic"):
        return _cubic_certified(cert)
    if not cert.strategy.startswith("subcubic/"):
        return None
    gaps, claims = cert.evidence["gaps"], cert.evidence["claims"]
    V, _, N = gaps.shape
    out = np.zeros((V, V, N + 1), dtype=object)
    for q, m, c in zip(*np.nonzero(definition.valid_cells(V, N) & (claims < 0))):
        out[m, q, N - c] = definition.cell_inputs(np.array([q]), np.array([m]), np.array([c]), gaps[q, m, c : c + 1], N)
    return out


def _cubic_certified(cert) -> np.ndarray:
    from compact_proofs.checker.strategies import cubic
    from compact_proofs.checker.weights import model_from_weights

    V, N = cert.weights["embed.W_E"].shape[0], cert.weights["pos_embed.W_pos"].shape[0]
    if "claims" in cert.evidence:
        claims, offset, blocks = np.asarray(cert.evidence["claims"], dtype=np.float64), 0, []
        for m in range(V):
            cases = cubic.cases_of(m, N)
            blocks.append((m, cases, claims[offset : offset + len(cases)] < 0))
            offset += len(cases)
    else:
        reference = cert.strategy == "cubic/reference"
        cand = None if reference else cubic.candidate_columns(np.asarray(cert.evidence["candidates"]), V)
        model = model_from_weights(cert.weights)
        blocks = (block[:3] for block in cubic.counted_cases(model, np.zeros(cubic.count_cases(V, N)), cand, reference, True))
    out = np.zeros((V, V, N + 1), dtype=object)
    for m, cases, counted in blocks:
        keys = cases[:, 1] * (N + 1) + cases[:, 2]
        good = np.bincount(keys[counted], minlength=(m + 1) * (N + 1))
        for key in np.unique(keys):
            q, c = divmod(int(key), N + 1)
            copies = N - c if q == m else N - 1 - c
            out[m, q, copies] = inputs_covered(N, c, int(good[key])) if c > 0 else int(good[key])
    return out


def where_lost(cert, weights: dict) -> dict:
    """Inputs, certified, not certified and (where enumerable) wrong, per [m, q, copies] and as
    marginals by copies and by max token."""
    V, N = weights["embed.W_E"].shape[0], weights["pos_embed.W_pos"].shape[0]
    if cert.strategy not in ("brute-force", "cubic", "cubic/reference") and not cert.strategy.startswith("subcubic/"):
        return {"available": False, "reason": f"no per-input ledger for {cert.strategy}"}
    total = all_inputs(V, N)
    certified = certified_inputs(cert)
    wrong = wrong_inputs(weights)
    if certified is None and cert.strategy == "brute-force" and wrong is not None:
        certified = total - wrong  # brute force certifies exactly the correct inputs
    if certified is None:
        return {"available": False, "reason": f"no per-input ledger for {cert.strategy} yet"}
    lost = total - certified

    def marginal(axis_sum):
        rows = []
        for i in range(lost.shape[axis_sum[0]]):
            pick = (slice(None),) * axis_sum[0] + (i,)
            rows.append({"inputs": int(total[pick].sum()), "not_certified": int(lost[pick].sum()),
                         "wrong": None if wrong is None else int(wrong[pick].sum())})
        return rows

    cells = [{"m": int(m), "q": int(q), "copies": int(k), "inputs": int(total[m, q, k]), "not_certified": int(lost[m, q, k]),
              "wrong": None if wrong is None else int(wrong[m, q, k])} for m, q, k in zip(*np.nonzero(lost > 0))]
    return {"available": True, "total": int(total.sum()), "certified": int(certified.sum()), "not_certified": int(lost.sum()),
            "wrong": None if wrong is None else int(wrong.sum()), "wrong_method": "float64 evaluation of every input (diagnostic)",
            "by_copies": marginal((2,)), "by_max": marginal((0,)), "cells": cells}


def step_costs(weights: dict, strategy: str, base: float | None = None) -> dict:
    """For a subcubic variant: its bound, the bound with each approximation step swapped for its
    tightest handling, and the cubic bound (the reference without these approximations). `base`:
    the strategy's own bound when the caller has the checker's verdict (else it is proved here)."""
    from compact_proofs.generator.proving.prover import prove

    def bound(name: str) -> float:
        verdict = prove(weights, name).verdict
        return verdict.verified_correct / verdict.total

    if strategy in ("cubic", "cubic/reference"):
        return _cubic_step_costs(weights, strategy, bound, bound(strategy) if base is None else base)
    if not strategy.startswith("subcubic/"):
        return {"available": False, "reason": "step costs are defined for cubic and subcubic certificates"}

    axes = list(definition.axes(strategy))
    base = bound(strategy) if base is None else base
    steps = []
    for step, (axis, tightest) in TIGHTEST.items():
        swapped = axes.copy()
        swapped[axis] = tightest
        name = "subcubic/" + "/".join(swapped)
        if name not in definition.NAMES:  # the refined family pairs its own handlings: no such swap
            continue
        value = base if name == strategy else bound(name)
        steps.append({"step": step, "from": axes[axis], "to": tightest, "bound": value, "gain": value - base})
    reference = bound("cubic")
    gains = sum(max(s["gain"], 0.0) for s in steps)
    return {"available": True, "bound": base, "reference": "cubic", "reference_bound": reference, "gap": reference - base, "steps": steps,
            "gains_cover": None if reference <= base else gains / (reference - base)}


def _cubic_step_costs(weights: dict, strategy: str, bound, base: float) -> dict:
    """cubic/reference: its pessimisation over outputs swapped for the joint maxima of `cubic`;
    both: against the exact accuracy (brute force, where d_vocab^n_ctx <= ENUMERATE_UP_TO)."""
    from compact_proofs.checker.strategies.brute_force import MAX_INPUTS

    V, N = weights["embed.W_E"].shape[0], weights["pos_embed.W_pos"].shape[0]
    steps = []
    if strategy == "cubic/reference":
        value = bound("cubic")
        steps.append({"step": "pessimisation over outputs", "from": "the paper's (per slot, max over o apart)",
                      "to": "joint maxima over outputs (cubic)", "bound": value, "gain": value - base})
    exact = bound("brute-force") if V**N <= min(ENUMERATE_UP_TO, MAX_INPUTS) else None
    gains = sum(max(s["gain"], 0.0) for s in steps)
    return {"available": True, "bound": base, "reference": "exact accuracy (brute force)", "reference_bound": exact,
            "gap": None if exact is None else exact - base, "steps": steps,
            "gains_cover": None if exact is None or exact <= base else gains / (exact - base)}


class ExactAttention(definition.Bounds):
    """Diagnostic Bounds: the attention on the max copies of a cell at gap g is the float64 range
    over the cell's own inputs (`stats`, from cell_statistics) instead of its proven enclosure."""

    stats: dict = {}

    def attention(self, q, m, c, g):
        low, high = self.stats["attention_low"][q, m, c, g], self.stats["attention_high"][q, m, c, g]
        empty = ~np.isfinite(low)  # a cell without inputs at this gap: any value will do
        return np.where(empty, 1.0, low), np.where(empty, 1.0, high)


class ExactOV(definition.Bounds):
    """Diagnostic Bounds: the non-max tokens' value N[o] is the joint maximum over the allowed
    tokens k of EVOU[k, o] - EVOU[k, m] (the exact tables in float64), instead of W(m, g) or
    max_k EVOU[k, o] - min_k EVOU[k, m]; for the score tiers, the last tier's value (every allowed
    token, the far ones through OV blocks) becomes that joint maximum (the near tiers are exact)."""

    def nonmax_values(self, m, top):
        from compact_proofs.checker.interval import Interval

        evou = self.evou.to_float()
        allowed = np.arange(self.V)[None, :] <= np.asarray(top)[:, None]  # [r, k]
        diff = evou[None, :, :] - evou[:, m].T[:, :, None]  # [r, k, o]
        joint = np.where(allowed[:, :, None], diff, -np.inf).max(axis=1)
        if self.handling != definition.TIERED:
            return Interval(joint[:, None, :], joint[:, None, :])
        table = super().nonmax_values(m, top)  # [r, R + 1, o]: the last tier's value becomes the joint maximum
        lo, hi = table.lo.copy(), table.hi.copy()
        lo[:, -1], hi[:, -1] = np.maximum(lo[:, -2], joint), np.maximum(hi[:, -2], joint)
        return Interval(lo, hi)


class ExactBoth(ExactAttention, ExactOV):
    """Both steps exact."""


def cell_statistics(weights: dict) -> dict | None:
    """Per cell (q, m, c) and gap g, over the cell's inputs (max m, query q, c non-max tokens, all
    <= m - g), every input evaluated in float64 (diagnostics): the range of the attention on the
    max copies, and `need`[q, m, c], the smallest gap at which every input of the cell is correct;
    `all_m_correct`[m] for the input of m alone. None above ENUMERATE_UP_TO inputs."""
    from compact_proofs.generator.studies.sweep import _float64_logits, label_strictly_largest

    V, N = weights["embed.W_E"].shape[0], weights["pos_embed.W_pos"].shape[0]
    if V**N > ENUMERATE_UP_TO:
        return None
    logits_of = _float64_logits(weights)
    low, high = np.full((V, V, N, V + 2), np.inf), np.full((V, V, N, V + 2), -np.inf)  # [q, m, c, own gap]
    need, all_m_correct = np.ones((V, V, N), np.int64), np.ones(V, bool)
    for start in range(0, V**N, 1 << 16):
        index = np.arange(start, min(start + (1 << 16), V**N))
        tokens = np.stack([(index // V ** (N - 1 - i)) % V for i in range(N)], axis=1)
        logits, attention = logits_of(tokens, attention=True)
        wrong = ~label_strictly_largest(tokens, logits)
        m, q = tokens.max(axis=1), tokens[:, -1]
        is_m = tokens == m[:, None]
        c = N - is_m.sum(axis=1)
        own_gap = np.where(c > 0, m - np.where(is_m, -1, tokens).max(axis=1), V + 1)  # in every cell with gap <= own_gap
        on_max = (attention * is_m).sum(axis=1)
        np.minimum.at(low, (q, m, c, own_gap), on_max)
        np.maximum.at(high, (q, m, c, own_gap), on_max)
        bad = wrong & (c > 0)
        np.maximum.at(need, (q[bad], m[bad], c[bad]), own_gap[bad] + 1)
        all_m_correct[m[wrong & (c == 0)]] = False
    # a cell at gap g holds the inputs whose own gap is >= g
    return {"attention_low": np.minimum.accumulate(low[..., ::-1], axis=-1)[..., ::-1],
            "attention_high": np.maximum.accumulate(high[..., ::-1], axis=-1)[..., ::-1],
            "need": need, "all_m_correct": all_m_correct}


def cell_ceiling(stats: dict, V: int, N: int) -> int:
    """The most inputs any proof by cells (q, m, c) with gaps certifies: each cell at the
    smallest gap where all its inputs are correct (float64), plus the correct all-m inputs."""
    valid = definition.valid_cells(V, N)
    q, m, c = np.nonzero(valid & (np.arange(N)[None, None, :] > 0))
    g = stats["need"][q, m, c]
    fits = g <= m
    return int(stats["all_m_correct"].sum()) + definition.cell_inputs(q[fits], m[fits], c[fits], g[fits], N)


def exact_steps(weights: dict, strategy: str, base: float) -> dict:
    """For a subcubic variant: its bound with the attention pessimisation, the OV worst case, or
    both replaced by their exact (float64) counterparts, each a search with that step exact (the
    generator's, never a certificate), and the ceiling of the cell structure itself."""
    from compact_proofs.checker.context import no_progress
    from compact_proofs.generator.proving.strategies import subcubic as search

    if not strategy.startswith("subcubic/"):
        return {"available": False, "reason": "exact step counterparts are defined for subcubic certificates"}
    stats = cell_statistics(weights)
    if stats is None:
        return {"available": False, "reason": f"more than {ENUMERATE_UP_TO} inputs to evaluate"}
    V, N = weights["embed.W_E"].shape[0], weights["pos_embed.W_pos"].shape[0]
    steps = []
    for step, to, kind in (("attention pessimisation", "the range of the attention on the max over each cell's inputs", ExactAttention),
                           ("OV worst case W(m, g)", "the joint maximum over non-max tokens k of EVOU(k, o) - EVOU(k, m)", ExactOV),
                           ("both", "both of the above", ExactBoth)):
        exact = type(kind.__name__, (kind,), {"stats": stats})
        value = search.prove(weights, no_progress, strategy, bounds_type=exact).claimed_correct / V**N
        steps.append({"step": step, "to": to, "bound": value, "gain": value - base})
    return {"available": True, "method": "float64 evaluation of every input (diagnostics, not proofs)", "bound": base,
            "steps": steps, "ceiling": cell_ceiling(stats, V, N) / V**N}


def per_seed_steps(rows: list[dict]) -> list[dict]:
    """The step costs of the sweep, per (K, seed), from its rows (nothing is proved again): for the
    best subcubic variant and for the best of the paper's 100, the bound with each step swapped
    for its tightest handling (the swapped variant's own row), next to cubic, cubic/reference and
    the exact accuracy (brute force, where it ran). For the best variant every swap gains <= 0 by
    construction (the swapped variants are among those it beat)."""
    bound = {(r["k"], r["seed"], r["strategy"]): r["bound"] for r in rows if r["accepted"]}
    out = []
    for k, seed in sorted({(r["k"], r["seed"]) for r in rows}):
        variants = sorted((name, value) for (kk, ss, name), value in bound.items() if (kk, ss) == (k, seed) and name.startswith("subcubic/"))
        paper = [(name, value) for name, value in variants if definition.axes(name)[1] in definition.REFERENCE_ATTENTION]
        for family, pool in (("best subcubic", variants), ("best of the paper's 100", paper)):
            if not pool:
                continue
            name, value = max(pool, key=lambda item: item[1])  # the first of equal bounds, by name
            record = {"K": k, "seed": seed, "family": family, "variant": name, "bound": value}
            for step, (axis, tightest) in TIGHTEST.items():
                swapped = list(definition.axes(name))
                swapped[axis] = tightest
                record[f"swap: {step}"] = bound.get((k, seed, "subcubic/" + "/".join(swapped)))
            for reference in ("cubic", "cubic/reference", "brute-force"):
                record[reference] = bound.get((k, seed, reference))
            out.append(record)
    return out


def per_seed_summary(records: list[dict]) -> list[dict]:
    """Per K and family: mean bound, mean gain of each single-step swap, mean gap to cubic."""
    out = []
    for k, family in sorted({(r["K"], r["family"]) for r in records}):
        members = [r for r in records if (r["K"], r["family"]) == (k, family)]
        row = {"K": k, "family": family, "seeds": len(members), "bound_mean": float(np.mean([r["bound"] for r in members]))}
        for step in TIGHTEST:
            gains = [r[f"swap: {step}"] - r["bound"] for r in members if r[f"swap: {step}"] is not None]
            row[f"gain: {step}"] = float(np.mean(gains)) if gains else None
        gaps = [r["cubic"] - r["bound"] for r in members if r["cubic"] is not None]
        row["gap to cubic"] = float(np.mean(gaps)) if gaps else None
        out.append(row)
    return out


def explain(raw: bytes, progress=None) -> dict:
    """The ledger of one certificate's bytes (decoded strictly, as the checker does). `progress`:
    a (stage, done, total) callback, told as each stage starts and ends.

    The breakdowns (by max token and copies of the max; each approximation step's cost) are about
    Max-of-K certificates of format v1; for a format-v2 certificate (another task, two layers or
    several heads) the ledger gives the checker's count over the task's domain and says why there
    is no breakdown."""
    from compact_proofs.checker.verify import check

    stage = progress or (lambda name, done, total: None)
    cert = certificates.decode(raw)
    stage("ledger: checking the certificate", 0, 1)
    verdict = check(cert)
    stage("ledger: checking the certificate", 1, 1)
    weights = cert.weights
    report = {"strategy": cert.strategy, "format": cert.version, "task": cert.task, "accepted": verdict.accepted,
              "bound": verdict.bound, "certified": None if verdict.claimed_correct is None else str(verdict.claimed_correct),
              "total": None if verdict.total is None else str(verdict.total), "label": "diagnostics, not proofs",
              "where_lost": None, "step_costs": None, "exact_steps": None}
    if not verdict.accepted:
        return report
    if cert.strategy.startswith("induction/"):
        from compact_proofs.generator.studies import induction_ledger

        return report | {"induction": induction_ledger.from_certificate(cert, stage)}
    if cert.version != 1:
        why = (f"the ledger breaks down format-v1 Max-of-K certificates (by max token and copies of the max); this one is "
               f"format v2, task {cert.task}: the checker certified {verdict.claimed_correct} of the task's {verdict.total} inputs")
        off = {"available": False, "reason": why}
        return report | {"where_lost": off, "step_costs": off, "exact_steps": off}
    base = verdict.claimed_correct / verdict.total
    stage("ledger: where the inputs are lost (every input in float64)", 0, 1)
    report["where_lost"] = where_lost(cert, weights)
    stage("ledger: where the inputs are lost (every input in float64)", 1, 1)
    stage("ledger: each step swapped (proofs again)", 0, 1)
    report["step_costs"] = step_costs(weights, cert.strategy, base)
    stage("ledger: each step swapped (proofs again)", 1, 1)
    stage("ledger: each step exact (float64 searches)", 0, 1)
    report["exact_steps"] = exact_steps(weights, cert.strategy, base)
    stage("ledger: each step exact (float64 searches)", 1, 1)
    return report


def figure(report: dict):
    """Not-certified and wrong inputs by max token (log scale), and the step costs as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    lost, steps = report["where_lost"], report["step_costs"]
    ax = axes[0]
    if lost and lost["available"]:
        ms = np.arange(len(lost["by_max"]))
        ax.plot(ms, [max(r["not_certified"], 0.5) for r in lost["by_max"]], "o-", ms=3, label="not certified")
        if lost["wrong"] is not None:
            ax.plot(ms, [max(r["wrong"], 0.5) for r in lost["by_max"]], "s-", ms=3, label="wrong (float64)")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("max token")
    ax.set_ylabel("inputs (log scale; 0 drawn at 0.5)")
    ax.set_title("where the inputs are lost")
    ax = axes[1]
    shown = []
    if steps and steps["available"]:
        reference = [] if steps["reference_bound"] is None else [steps["reference_bound"]]
        labels = [s["step"] for s in steps["steps"]] + [REFERENCE_LABEL.get(steps["reference"], steps["reference"])] * len(reference)
        values = [s["bound"] for s in steps["steps"]] + reference
        ax.barh(labels, values, color=["tab:purple"] * len(steps["steps"]) + ["tab:red"] * len(reference))
        ax.axvline(steps["bound"], color="black", lw=1, label=f"this certificate ({steps['bound']:.4f})")
        ax.legend(fontsize=8, loc="lower right")
        shown += values + [steps["bound"]]
    exact = report.get("exact_steps")
    if exact and exact["available"]:
        values = [s["bound"] for s in exact["steps"]] + [exact["ceiling"]]
        ax.barh([f"exact: {s['step']}" for s in exact["steps"]] + ["ceiling of the cell structure"], values, color="tab:gray")
        shown += values + [exact["bound"]]
    if shown:
        ax.set_xlim(min(shown) - 0.02, 1.0)
    ax.set_xlabel("bound: a step at its tightest (purple), for comparison (red),\na step exact (grey; float64 diagnostics)")
    ax.set_title("what each step costs")
    fig.suptitle(f"{report['strategy']} (diagnostics, not proofs)", fontsize=9)
    fig.tight_layout()
    return fig

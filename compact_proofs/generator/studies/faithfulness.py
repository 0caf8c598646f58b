"""How faithful understanding tightens bounds (the paper's analyses, across seeds): diagnostics,
not proofs, though every bound they plot is a certificate the checker accepted.

- rank-one-ness: each model's EQKE singular value ratio sigma_1 / sigma_2 against each family's
  bound (from a sweep's rows);
- noise ablation: structureless Gaussian noise of relative size eps added to every weight tensor
  (eps times the tensor's RMS), then the exact accuracy (brute force) and every family's bound;
- EQKE rank as an axis: the subcubic splits keeping r singular vector pairs, r = 1, 2, 3, 4, 8,
  bound against r and FLOPs;
- exact steps: the best subcubic variant of each K = 4 seed with its attention pessimisation, its
  OV worst case, or both replaced by their exact (float64) counterparts, and the ceiling of the
  cell structure (ledger.exact_steps), next to cubic and the exact accuracy.
Results are one JSON file per item under OUT/items (resumable), then CSV and PNG.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from compact_proofs.generator.studies.report import save_figure
from compact_proofs.generator.weights_io import atomic_write

NOISE = (0.0, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
RANKS = (1, 2, 3, 4, 8)
RANKED_VARIANTS = tuple(f"subcubic/max_diff_exact/per_output+chords/{error}" for error in ("svd", "max_diff", "max_diff_exact"))
FAMILIES = {"cubic": "cubic (ours)", "cubic/reference": "cubic, the paper's pessimisation made sound",
            "subcubic/best": "best subcubic"}


def eqke_sigma_ratio(weights: dict) -> float:
    """sigma_1 / sigma_2 of EQKE = (W_E + W_pos[-1]) W_Q W_K^T W_E^T (float64; a diagnostic)."""
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    e_bar = w["embed.W_E"] + w["pos_embed.W_pos"][-1]
    eqke = e_bar @ w["blocks.0.attn.W_Q"].reshape(e_bar.shape[1], -1) @ w["blocks.0.attn.W_K"].reshape(e_bar.shape[1], -1).T @ w["embed.W_E"].T
    s = np.linalg.svd(eqke, compute_uv=False)
    return float(s[0] / s[1]) if len(s) > 1 and s[1] > 0 else float("inf")


def with_noise(weights: dict, eps: float, seed: int) -> dict:
    """Every weight tensor plus Gaussian noise of standard deviation eps x its RMS (biases kept)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, value in sorted(weights.items()):
        value = np.asarray(value, dtype=np.float32)
        if eps and ".W_" in name:
            rms = float(np.sqrt(np.mean(value.astype(np.float64) ** 2)))
            value = (value + rng.normal(size=value.shape) * eps * rms).astype(np.float32)
        out[name] = value
    return out


def _item(out: Path, name: str, compute) -> dict:
    path = out / "items" / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    result = compute()
    atomic_write(path, json.dumps(result).encode())
    return result


def _items(out: Path, jobs: list[tuple[int, float]], name, compute, progress) -> list[dict]:
    """compute(seed, x) for every job, each stored as OUT/items/<name(seed, x)>.json (resumable)."""
    rows = []
    for done, (seed, x) in enumerate(jobs):
        progress(done, len(jobs))
        rows.append(_item(out, name(seed, x), lambda seed=seed, x=x: compute(seed, x)))
    progress(len(jobs), len(jobs))
    return rows


def noise_items(weights_of, seeds: list[int], out: Path, progress=lambda done, total: None) -> list[dict]:
    from compact_proofs.generator.proving.prover import prove

    def compute(seed: int, eps: float) -> dict:
        noisy = with_noise(weights_of(seed), eps, seed)
        record = {"k": 4, "seed": seed, "eps": eps}
        for strategy in ("brute-force", *FAMILIES):
            verdict = prove(noisy, strategy).verdict
            record[strategy] = verdict.verified_correct / verdict.total
        return record

    jobs = [(seed, eps) for seed in seeds for eps in NOISE]
    return _items(out, jobs, lambda seed, eps: f"noise-k4-seed{seed}-eps{eps:g}", compute, progress)


def rank_items(weights_of, seeds: list[int], out: Path, progress=lambda done, total: None) -> list[dict]:
    from compact_proofs.generator.proving.prover import prove

    def compute(seed: int, rank: int) -> dict:
        best = max((prove(weights_of(seed), v, rank=rank).verdict for v in RANKED_VARIANTS), key=lambda v: v.verified_correct)
        return {"k": 4, "seed": seed, "rank": rank, "bound": best.verified_correct / best.total, "flops": best.flops,
                "unexplained_dimension": best.unexplained_dimension, "strategy": best.strategy}

    jobs = [(seed, rank) for seed in seeds for rank in RANKS]
    return _items(out, jobs, lambda seed, rank: f"rank-k4-seed{seed}-r{rank}", compute, progress)


def exact_step_items(weights_of, rows: list[dict], seeds: list[int], out: Path, progress=lambda done, total: None) -> list[dict]:
    """Per K = 4 seed with sweep rows: the best subcubic variant's exact-step ledger (ledger.py)."""
    from compact_proofs.generator.studies import ledger

    bounds = {(r["seed"], r["strategy"]): r["bound"] for r in rows if r["accepted"] and r["k"] == 4}
    seeds = [seed for seed in seeds if any(s == seed and name.startswith("subcubic/") for s, name in bounds)]

    def compute(seed: int, _) -> dict:
        variants = sorted((name, value) for (s, name), value in bounds.items() if s == seed and name.startswith("subcubic/"))
        name, value = max(variants, key=lambda item: item[1])  # the first of equal bounds, by name
        steps = ledger.exact_steps(weights_of(seed), name, value)
        record = {"k": 4, "seed": seed, "variant": name, "bound": value}
        record.update({f"exact: {step['step']}": step["bound"] for step in steps["steps"]})
        record["cell ceiling"] = steps["ceiling"]
        record.update({reference: bounds.get((seed, reference)) for reference in ("cubic", "brute-force")})
        return record

    return _items(out, [(seed, 0) for seed in seeds], lambda seed, _: f"exact-steps-k4-seed{seed}", compute, progress)


def sigma_rows(rows: list[dict], weights_of) -> list[dict]:
    """Per (K, seed): sigma_1 / sigma_2 and each family's bound (best subcubic: the best row)."""
    by_model: dict[tuple[int, int], dict] = {}
    for r in rows:
        if not r["accepted"]:
            continue
        key = (r["k"], r["seed"])
        entry = by_model.setdefault(key, {"k": r["k"], "seed": r["seed"]})
        family = r["strategy"] if r["strategy"] in FAMILIES else "subcubic/best" if r["strategy"].startswith("subcubic/") else None
        if family:
            entry[family] = max(entry.get(family, 0.0), r["bound"])
    for (k, seed), entry in by_model.items():
        entry["sigma_ratio"] = eqke_sigma_ratio(weights_of(k, seed))
    return sorted(by_model.values(), key=lambda e: (e["k"], e["seed"]))


def spearman(x: list[float], y: list[float]) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1]) if len(x) > 2 else float("nan")


EXACT_COLUMNS = (("bound", "best subcubic (certified)", "tab:purple"), ("exact: attention pessimisation", "attention exact", "tab:blue"),
                 ("exact: OV worst case W(m, g)", "OV worst case exact", "tab:green"), ("exact: both", "both exact", "tab:olive"),
                 ("cell ceiling", "ceiling of the cell structure", "tab:gray"), ("cubic", "cubic (certified)", "tab:red"),
                 ("brute-force", "exact accuracy", "black"))


def write(out: Path, sigma: list[dict], noise: list[dict], ranks: list[dict], exact: list[dict] = ()) -> list[Path]:
    """CSV tables and the four figures."""
    import csv
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for name, records in (("sigma.csv", sigma), ("noise.csv", noise), ("rank.csv", ranks), ("exact_steps.csv", exact)):
        if records:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
            atomic_write(out / name, buffer.getvalue().encode())
            written.append(out / name)
    colours = {"cubic": "tab:red", "cubic/reference": "tab:orange", "subcubic/best": "tab:purple"}
    if sigma:
        ks = sorted({e["k"] for e in sigma})
        fig, axes = plt.subplots(1, len(ks), figsize=(max(4.8 * len(ks), 7.5), 4.4), squeeze=False)
        for ax, k in zip(axes[0], ks):
            entries = [e for e in sigma if e["k"] == k]
            for family, colour in colours.items():
                pts = [(e["sigma_ratio"], e[family]) for e in entries if family in e]
                if pts:
                    rho = spearman(*zip(*pts))
                    ax.scatter(*zip(*pts), s=8, alpha=0.6, color=colour, label=f"{FAMILIES[family]} (Spearman {rho:+.2f})")
            bounds = [e[f] for e in entries for f in colours if f in e]
            if bounds:  # room below the points for the legend
                low, high = min(bounds), max(bounds)
                ax.set_ylim(low - 0.45 * (high - low + 1e-3), high + 0.05 * (high - low + 1e-3))
            ax.set_xscale("log")
            ax.set_xlabel("sigma_1 / sigma_2 of EQKE (log scale)")
            ax.set_ylabel("certified lower bound on accuracy")
            ax.set_title(f"K = {k}")
            ax.legend(fontsize=7, loc="lower right")
        fig.suptitle("Bound against how close EQKE is to rank one (one point per seed)", fontsize=10)
        fig.tight_layout()
        written.append(save_figure(fig, out / "bound_vs_eqke_rank_one.png"))
    if noise:
        fig, ax = plt.subplots(figsize=(7, 4.6))
        for key, label, colour in [("brute-force", "exact accuracy (brute force)", "black")] + \
                [(f, FAMILIES[f], c) for f, c in colours.items()]:
            means = [np.mean([r[key] for r in noise if r["eps"] == eps]) for eps in NOISE]
            stds = [np.std([r[key] for r in noise if r["eps"] == eps]) for eps in NOISE]
            xs = [eps if eps else NOISE[1] / 3 for eps in NOISE]
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, color=colour, label=label)
        ax.set_xscale("log")
        ax.set_xlabel("noise added to every weight matrix, relative to its RMS (0 drawn at the left)")
        ax.set_ylabel("accuracy / certified bound (mean +- 1 std over seeds)")
        ax.set_title(f"Structureless noise, K = 4, {len({r['seed'] for r in noise})} seeds")
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(save_figure(fig, out / "noise_ablation.png"))
    if ranks:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
        for ax, key, label in ((axes[0], "rank", "r: singular vector pairs kept in the EQKE split"),
                               (axes[1], "flops", "FLOPs of the verification")):
            xs = sorted({r[key] for r in ranks}) if key == "rank" else None
            if key == "rank":
                means = [np.mean([r["bound"] for r in ranks if r["rank"] == x]) for x in xs]
                stds = [np.std([r["bound"] for r in ranks if r["rank"] == x]) for x in xs]
                ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, color="tab:purple")
            else:
                for rank in RANKS:
                    pts = [(r["flops"], r["bound"]) for r in ranks if r["rank"] == rank]
                    ax.scatter(*zip(*pts), s=10, label=f"r = {rank}")
                ax.legend(fontsize=8)
            ax.set_xlabel(label)
            ax.set_ylabel("best ranked subcubic bound")
        fig.suptitle(f"EQKE rank as an axis of the subcubic family (K = 4, {len({r['seed'] for r in ranks})} seeds; "
                     "mean +- 1 std)", fontsize=10)
        fig.tight_layout()
        written.append(save_figure(fig, out / "bound_vs_eqke_rank.png"))
    if exact:
        fig, ax = plt.subplots(figsize=(11.5, 4.4))
        order = np.argsort([r["bound"] for r in exact])
        xs = np.arange(len(exact))
        for key, label, colour in EXACT_COLUMNS:
            values = [exact[i][key] for i in order]
            ax.plot(xs, values, "o-" if key in ("bound", "cubic", "brute-force") else ".--", ms=3, lw=1, color=colour,
                    label=f"{label} (mean {np.mean(values):.4f})")
        ax.set_xlabel("seed, ordered by the best subcubic bound")
        ax.set_ylabel("fraction of all inputs")
        ax.set_title(f"Where the best subcubic bound is lost (K = 4, {len(exact)} seeds; exact steps are float64 diagnostics)",
                     fontsize=9)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), title="lines that coincide share a mean",
                  title_fontsize=7)
        fig.tight_layout()
        written.append(save_figure(fig, out / "exact_steps.png"))
    atomic_write(out / "summary.md", summary(sigma, noise, ranks, exact).encode())
    return written + [out / "summary.md"]


def summary(sigma: list[dict], noise: list[dict], ranks: list[dict], exact: list[dict] = ()) -> str:
    """The figures' numbers as Markdown tables (means +- std over seeds)."""
    def cell(values: list[float]) -> str:
        return f"{np.mean(values):.4f} +- {np.std(values):.4f}" if values else "-"

    lines = ["# Faithfulness analyses: numbers", "",
             "Diagnostics over certificates the checker accepted; means +- 1 std over seeds.", ""]
    if sigma:
        lines += ["## Bound against EQKE's rank-one-ness (Spearman rank correlation with sigma_1 / sigma_2)", "",
                  "| K | models | sigma_1 / sigma_2 (median) | " + " | ".join(FAMILIES.values()) + " |",
                  "|---|---|---|" + "---|" * len(FAMILIES)]
        for k in sorted({e["k"] for e in sigma}):
            entries = [e for e in sigma if e["k"] == k]
            rhos = []
            for family in FAMILIES:
                pts = [(e["sigma_ratio"], e[family]) for e in entries if family in e]
                rhos.append(f"{spearman(*zip(*pts)):+.2f}" if len(pts) > 2 else "-")
            lines.append(f"| {k} | {len(entries)} | {np.median([e['sigma_ratio'] for e in entries]):.0f} | " + " | ".join(rhos) + " |")
        lines.append("")
    if noise:
        columns = [("brute-force", "exact accuracy")] + [(f, FAMILIES[f]) for f in FAMILIES]
        lines += [f"## Noise ablation (K = 4, {len({r['seed'] for r in noise})} seeds)", "",
                  "| noise / RMS | " + " | ".join(label for _, label in columns) + " |", "|---|" + "---|" * len(columns)]
        for eps in NOISE:
            at = [r for r in noise if r["eps"] == eps]
            lines.append(f"| {eps:g} | " + " | ".join(cell([r[key] for r in at if key in r]) for key, _ in columns) + " |")
        lines.append("")
    if ranks:
        lines += [f"## EQKE rank as an axis (K = 4, {len({r['seed'] for r in ranks})} seeds; best of "
                  f"{len(RANKED_VARIANTS)} variants per rank)", "", "| r | bound | FLOPs (mean) | unexplained dimension |",
                  "|---|---|---|---|"]
        for rank in RANKS:
            at = [r for r in ranks if r["rank"] == rank]
            if at:
                lines.append(f"| {rank} | {cell([r['bound'] for r in at])} | {np.mean([r['flops'] for r in at]):.3g} | "
                             f"{np.mean([r['unexplained_dimension'] for r in at]):.0f} |")
        lines.append("")
    if exact:
        lines += [f"## Exact steps of the best subcubic variant (K = 4, {len(exact)} seeds; float64 diagnostics)", "",
                  "Each step replaced alone (then both) by its exact counterpart and the search run again; the ceiling "
                  "is the most any proof by cells (query, max, non-max count) with gaps certifies (each cell at the "
                  "smallest gap where all its inputs are correct).", "",
                  "| " + " | ".join(label for _, label, _ in EXACT_COLUMNS) + " |", "|" + "---|" * len(EXACT_COLUMNS),
                  "| " + " | ".join(cell([r[key] for r in exact if r.get(key) is not None]) for key, _, _ in EXACT_COLUMNS) + " |", ""]
    return "\n".join(lines)

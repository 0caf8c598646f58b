"""Tables and figures from sweep results: the paper's headline table per K, per-variant means,
bound vs FLOPs, bound vs unexplained dimension, and the best bound per complexity class."""

from __future__ import annotations

import csv
import gzip
import io
from collections import defaultdict
from pathlib import Path

import numpy as np

from generator.sweep import load_estimates, load_rows
from generator.weights_io import atomic_write

CLASSES = ("almost quadratic", "subcubic: d_vocab d_model^2", "subcubic: d_vocab^2 d_model")
REFERENCE_ATTENTION = ("mean_query+diff", "drop_average_query_per_output_logit_reasoning")


def _family_members(strategy: str) -> list[str]:
    """The families (rows of the headline table) a strategy's result can stand for."""
    if strategy in ("brute-force", "cubic", "cubic/reference"):
        return [strategy]
    if not strategy.startswith("subcubic/"):
        return []
    out = ["subcubic (best of all variants)"]
    if strategy.split("/")[2] in REFERENCE_ATTENTION:
        out.append("subcubic (best of the paper's 100 variants)")
    return out


FAMILIES = ("brute-force", "cubic", "cubic/reference", "subcubic (best of all variants)",
            "subcubic (best of the paper's 100 variants)") + tuple(f"subcubic, {c} (best)" for c in CLASSES)


def accuracies(rows: list[dict], estimates: dict) -> dict[tuple[int, int], tuple[float, str]]:
    """Denominator of normalised bounds per (K, seed): exact brute force, else the sampled estimate."""
    out = {}
    for (k, seed), e in estimates.items():
        out[(k, seed)] = (e["estimate"], "estimate")
    for r in rows:
        if r["strategy"] == "brute-force" and r["accepted"]:
            out[(r["k"], r["seed"])] = (int(r["verified_correct"]) / int(r["total"]), "exact")
    return out


def best_rows(rows: list[dict]) -> dict[tuple[int, str], list[dict]]:
    """(K, family) -> the chosen row of every seed (the highest bound for 'best' families)."""
    chosen: dict[tuple[int, str, int], dict] = {}
    for r in rows:
        if not r["accepted"]:
            continue
        families = _family_members(r["strategy"])
        if r["strategy"].startswith("subcubic/") and r["complexity"] in CLASSES:
            families.append(f"subcubic, {r['complexity']} (best)")
        for family in families:
            key = (r["k"], family, r["seed"])
            if key not in chosen or r["bound"] > chosen[key]["bound"]:
                chosen[key] = r
    out: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for (k, family, _), r in sorted(chosen.items()):
        out[(k, family)].append(r)
    return out


def headline(rows: list[dict], estimates: dict) -> list[dict]:
    acc = accuracies(rows, estimates)
    table = []
    for (k, family), members in sorted(best_rows(rows).items(), key=lambda kv: (kv[0][0], FAMILIES.index(kv[0][1]))):
        bounds = np.array([r["bound"] for r in members])
        normalised = np.array([r["bound"] / acc[(k, r["seed"])][0] for r in members if (k, r["seed"]) in acc and acc[(k, r["seed"])][0] > 0])
        table.append({
            "K": k, "family": family, "seeds": len(members),
            "bound_mean": bounds.mean(), "bound_std": bounds.std(),
            "normalised_mean": normalised.mean() if len(normalised) else float("nan"),
            "flops_mean": float(np.mean([r["flops"] for r in members])),
            "unexplained_dimension": float(np.mean([r["unexplained_dimension"] for r in members])),
            "complexity": ", ".join(sorted({r["complexity"] for r in members})),
            "check_seconds_mean": float(np.mean([r["check_seconds"] for r in members])),
            "prove_seconds_mean": float(np.mean([r["prove_seconds"] for r in members])),
        })
    return table


def per_variant(rows: list[dict]) -> list[dict]:
    groups: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["k"], r["strategy"])].append(r)
    out = []
    for (k, strategy), members in sorted(groups.items()):
        bounds = np.array([r["bound"] if r["accepted"] else 0.0 for r in members])
        out.append({"K": k, "strategy": strategy, "seeds": len(members), "bound_mean": bounds.mean(), "bound_std": bounds.std(),
                    "flops_mean": float(np.mean([r["flops"] for r in members])), "complexity": members[0]["complexity"],
                    "rejected": sum(not r["accepted"] for r in members)})
    return out


def _csv(records: list[dict]) -> bytes:
    if not records:
        return b""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]))
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue().encode()


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e5 else f"{value:.5f}"
    return str(value)


def headline_markdown(table: list[dict], estimates: dict) -> str:
    lines = []
    for k in sorted({r["K"] for r in table}):
        denominator = "brute-force accuracy (exact)" if k == 4 else "sampled accuracy (an estimate, 99% Wilson interval; not a proof)"
        lines += [f"### K = {k}", "", f"Normalised bound = bound / {denominator}.", "",
                  "| proof family | seeds | bound (mean +- std) | normalised | FLOPs | unexplained dim | complexity | check s |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in table:
            if r["K"] == k:
                lines.append(f"| {r['family']} | {r['seeds']} | {r['bound_mean']:.4f} +- {r['bound_std']:.4f} | {r['normalised_mean']:.4f} | "
                             f"{r['flops_mean']:.3g} | {r['unexplained_dimension']:.4g} | {r['complexity']} | {r['check_seconds_mean']:.2f} |")
        ests = [e for (kk, _), e in estimates.items() if kk == k]
        if ests:
            lines += ["", f"Sampled accuracy over {len(ests)} seeds: mean {np.mean([e['estimate'] for e in ests]):.5f} "
                      f"({ests[0]['samples']} samples per seed; {ests[0]['label']})."]
        lines.append("")
    return "\n".join(lines)


def variants_markdown(records: list[dict]) -> str:
    lines = ["| K | strategy | seeds | bound (mean +- std) | FLOPs | complexity |", "|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['K']} | `{r['strategy']}` | {r['seeds']} | {r['bound_mean']:.4f} +- {r['bound_std']:.4f} | {r['flops_mean']:.3g} | {r['complexity']} |")
    return "\n".join(lines) + "\n"


def _colour(strategy: str, complexity: str) -> str:
    if strategy == "brute-force":
        return "black"
    if strategy.startswith("cubic"):
        return "tab:red"
    return {"almost quadratic": "tab:green", CLASSES[1]: "tab:blue", CLASSES[2]: "tab:purple"}.get(complexity, "grey")


def figures(rows: list[dict], table: list[dict], out: Path) -> list[Path]:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted({r["k"] for r in rows})
    written = []
    for name, key, label in (("bound_vs_flops.png", "flops", "FLOPs of the verification (log)"),
                             ("bound_vs_unexplained_dimension.png", "unexplained_dimension", "unexplained dimension (log)")):
        fig, axes = plt.subplots(1, len(ks), figsize=(4.5 * len(ks), 4), squeeze=False)
        for ax, k in zip(axes[0], ks):
            members = [r for r in rows if r["k"] == k and r["accepted"] and r[key] > 0]
            ax.scatter([r[key] for r in members], [r["bound"] for r in members], s=4, alpha=0.35,
                       c=[_colour(r["strategy"], r["complexity"]) for r in members])
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_title(f"K = {k}")
            ax.set_xlabel(label)
            ax.set_ylabel("certified accuracy bound")
            ax.set_ylim(-0.02, 1.02)
        handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=l) for c, l in
                   (("black", "brute force"), ("tab:red", "cubic"), ("tab:green", CLASSES[0]), ("tab:blue", CLASSES[1]), ("tab:purple", CLASSES[2]))]
        fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        written.append(_save(fig, out / name))
    fig, axes = plt.subplots(1, len(ks), figsize=(4.5 * len(ks), 4), squeeze=False)
    for ax, k in zip(axes[0], ks):
        rows_k = [r for r in table if r["K"] == k and (r["family"].startswith("subcubic, ") or r["family"] in ("cubic", "brute-force"))]
        labels = [r["family"].replace("subcubic, ", "").replace(" (best)", "") for r in rows_k]
        ax.bar(range(len(rows_k)), [r["bound_mean"] for r in rows_k], yerr=[r["bound_std"] for r in rows_k], color="tab:blue")
        ax.set_xticks(range(len(rows_k)), labels, rotation=30, ha="right", fontsize=7)
        ax.set_title(f"K = {k}: best bound per complexity class")
        ax.set_ylim(0, 1.05)
    fig.tight_layout()
    written.append(_save(fig, out / "best_bound_per_class.png"))
    return written


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    atomic_write(path, buffer.getvalue())
    return path


def write_report(results: Path, out: Path) -> tuple[list[dict], dict]:
    rows, estimates = load_rows(results), load_estimates(results)
    if not rows:
        raise ValueError(f"no results under {results}")
    table, variants = headline(rows, estimates), per_variant(rows)
    out.mkdir(parents=True, exist_ok=True)
    columns = ("k", "seed", "strategy", "accepted", "verified_correct", "total", "bound", "flops", "checker_ops",
               "unexplained_dimension", "complexity", "prove_seconds", "check_seconds", "digest")
    atomic_write(out / "rows.csv.gz", gzip.compress(_csv([{c: r[c] for c in columns} for r in rows]), mtime=0))
    atomic_write(out / "headline.csv", _csv(table))
    atomic_write(out / "headline.md", headline_markdown(table, estimates).encode())
    atomic_write(out / "variants.csv", _csv(variants))
    atomic_write(out / "variants.md", variants_markdown(variants).encode())
    estimate_rows = [dict(e) for _, e in sorted(estimates.items())]
    atomic_write(out / "estimates.csv", _csv(estimate_rows))
    figures(rows, table, out)
    return table, estimates

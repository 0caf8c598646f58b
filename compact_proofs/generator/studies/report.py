"""Tables and figures from sweep results: the paper's headline table per K, per-variant means,
bound vs FLOPs, bound vs unexplained dimension, and the best bound per complexity class.

The source is a sweep's results directory (its rows/ and estimates/), or a published report
(rows.csv.gz and estimates.csv, as in docs/results): the tables and figures are derived from the
rows alone, so a published report regenerates from its own CSVs."""

from __future__ import annotations

import csv
import gzip
import io
from collections import defaultdict
from pathlib import Path

import numpy as np

from compact_proofs.generator.studies import ledger
from compact_proofs.generator.studies.sweep import load_estimates, load_rows
from compact_proofs.generator.weights_io import atomic_write

ESTIMATE_COLUMNS = ["k", "seed", "samples", "correct", "estimate", "ci_low", "ci_high", "confidence", "method", "label"]
CLASSES = ("almost quadratic", "subcubic: d_vocab d_model^2", "subcubic: d_vocab^2 d_model",
           "subcubic: d_vocab^2 (d_model + n_ctx sqrt(d_vocab))")
REFERENCE_ATTENTION = ("mean_query+diff", "drop_average_query_per_output_logit_reasoning")


BRUTE, CUBIC, CUBIC_PAPER = "brute force", "cubic (ours)", "cubic, the paper's pessimisation made sound"
BEST, BEST_PAPER = "best subcubic per seed", "best of the paper's 100 subcubic variants (sound)"
BEST_UNTIERED = "best subcubic without score tiers"  # the best before the tiered family (query_slot+ov_tiers+levels)
TIERED_ATTENTION = "query_slot+ov_tiers+levels"
CLASS_FAMILY = {CLASSES[0]: "best almost-quadratic subcubic", CLASSES[1]: "best subcubic in d_vocab d_model^2",
                CLASSES[2]: "best subcubic in d_vocab^2 d_model", CLASSES[3]: "best refined or tiered subcubic (d_vocab^2 (d_model + n_ctx sqrt(d_vocab)))"}
FAMILIES = (BRUTE, CUBIC, CUBIC_PAPER, BEST, BEST_PAPER, BEST_UNTIERED) + tuple(CLASS_FAMILY[c] for c in reversed(CLASSES))
SINGLE = {"brute-force": BRUTE, "cubic": CUBIC, "cubic/reference": CUBIC_PAPER}


def _family_members(strategy: str, complexity: str) -> list[str]:
    """The families (rows of the headline table) a strategy's result can stand for."""
    if strategy in SINGLE:
        return [SINGLE[strategy]]
    if not strategy.startswith("subcubic/"):
        return []
    attention = strategy.split("/")[2]
    out = [BEST] + ([BEST_PAPER] if attention in REFERENCE_ATTENTION else []) + ([BEST_UNTIERED] if attention != TIERED_ATTENTION else [])
    return out + ([CLASS_FAMILY[complexity]] if complexity in CLASS_FAMILY else [])


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
    """(K, family) -> the chosen row of every seed (the highest bound for 'best' families). A
    complexity class's family, or the best without score tiers, is left out where it chose exactly
    the rows of the overall best."""
    chosen: dict[tuple[int, str, int], dict] = {}
    for r in rows:
        if not r["accepted"]:
            continue
        for family in _family_members(r["strategy"], r["complexity"]):
            key = (r["k"], family, r["seed"])
            if key not in chosen or r["bound"] > chosen[key]["bound"]:
                chosen[key] = r
    out: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for (k, family, _), r in sorted(chosen.items()):
        out[(k, family)].append(r)
    for (k, family), members in list(out.items()):
        if (family in CLASS_FAMILY.values() or family == BEST_UNTIERED) and [r["bound"] for r in members] == [r["bound"] for r in out.get((k, BEST), [])]:
            del out[(k, family)]
    return out


def headline(rows: list[dict], estimates: dict) -> list[dict]:
    acc = accuracies(rows, estimates)
    table = []
    for (k, family), members in sorted(best_rows(rows).items(), key=lambda kv: (kv[0][0], FAMILIES.index(kv[0][1]))):
        bounds = np.array([r["bound"] for r in members])
        normalised = np.array([r["bound"] / acc[(k, r["seed"])][0] for r in members if (k, r["seed"]) in acc and acc[(k, r["seed"])][0] > 0])
        table.append({
            "K": k, "family": family, "seeds": len(members),
            "bound_mean": float(bounds.mean()), "bound_std": float(bounds.std()) if len(bounds) > 1 else None,
            "normalised_mean": float(normalised.mean()) if len(normalised) else None,
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
        out.append({"K": k, "strategy": strategy, "seeds": len(members), "bound_mean": float(bounds.mean()),
                    "bound_std": float(bounds.std()) if len(bounds) > 1 else None,
                    "flops_mean": float(np.mean([r["flops"] for r in members])), "complexity": members[0]["complexity"],
                    "rejected": sum(not r["accepted"] for r in members)})
    return out


def _csv(records: list[dict], columns: list[str] | None = None) -> bytes:
    """CSV with a header line (also for no records, given the columns)."""
    fieldnames = columns or (list(records[0]) if records else [])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames)
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue().encode()


def mean_std(mean: float, std: float | None) -> str:
    """'mean +- std' (std over seeds), or the value alone for one seed."""
    return f"{mean:.4f}" if std is None else f"{mean:.4f} +- {std:.4f}"


def optional(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def headline_markdown(table: list[dict], estimates: dict) -> str:
    lines = []
    for k in sorted({r["K"] for r in table}):
        denominator = "brute-force accuracy (exact)" if k == 4 else "sampled accuracy (an estimate, 99% Wilson interval; not a proof)"
        lines += [f"### K = {k}", "", f"Normalised bound = bound / {denominator}.", "",
                  "| proof family | seeds | bound (mean +- std) | normalised | FLOPs | unexplained dim | complexity | prove + check s |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in table:
            if r["K"] == k:
                lines.append(f"| {r['family']} | {r['seeds']} | {mean_std(r['bound_mean'], r['bound_std'])} | "
                             f"{optional(r['normalised_mean'], '.4f')} | {r['flops_mean']:.3g} | {r['unexplained_dimension']:.4g} | "
                             f"{r['complexity']} | {r['prove_seconds_mean'] + r['check_seconds_mean']:.2f} |")
        ests = [e for (kk, _), e in estimates.items() if kk == k]
        if ests:
            lines += ["", f"Sampled accuracy over {len(ests)} seeds: mean {np.mean([e['estimate'] for e in ests]):.5f} "
                      f"({ests[0]['samples']} samples per seed; {ests[0]['label']})."]
        lines.append("")
    return "\n".join(lines)


def variants_markdown(records: list[dict]) -> str:
    lines = ["| K | strategy | seeds | bound (mean +- std) | FLOPs | complexity |", "|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['K']} | `{r['strategy']}` | {r['seeds']} | {mean_std(r['bound_mean'], r['bound_std'])} | "
                     f"{r['flops_mean']:.3g} | {r['complexity']} |")
    return "\n".join(lines) + "\n"


def ledger_markdown(summary: list[dict]) -> str:
    """The per-seed step costs (ledger.per_seed_steps), as means per K and family."""
    steps = list(ledger.TIGHTEST)
    lines = ["Step costs per seed from the sweep's rows (diagnostics, not proofs): each single step of the chosen",
             "variant swapped for its tightest handling; gains are means over seeds of (swapped bound - bound).", "",
             "| K | family | seeds | bound (mean) | " + " | ".join(f"gain: {s}" for s in steps) + " | gap to cubic |",
             "|---|---|---|---|" + "---|" * len(steps) + "---|"]
    for r in summary:
        gains = " | ".join(optional(r[f"gain: {s}"], "+.4f") for s in steps)
        lines.append(f"| {r['K']} | {r['family']} | {r['seeds']} | {r['bound_mean']:.4f} | {gains} | {optional(r['gap to cubic'], '.4f')} |")
    return "\n".join(lines) + "\n"


STYLE = {  # one colour and legend entry per proof family, in every figure
    BRUTE: "black", CUBIC: "tab:red", CUBIC_PAPER: "tab:orange",
    CLASS_FAMILY[CLASSES[3]]: "tab:cyan", CLASS_FAMILY[CLASSES[2]]: "tab:purple", CLASS_FAMILY[CLASSES[1]]: "tab:blue",
    CLASS_FAMILY[CLASSES[0]]: "tab:green",
}
BAR_STYLE = {BRUTE: "black", CUBIC: "tab:red", CUBIC_PAPER: "tab:orange", BEST: "tab:brown", BEST_PAPER: "plum", BEST_UNTIERED: "tan",
             **{family: STYLE[family] for family in CLASS_FAMILY.values()}}  # every bar colour its own family's
FIGURE_CAPTIONS = {
    "bound_vs_flops.png": "Certified lower bound on accuracy against the FLOPs of its verification, one point per "
                          "(seed, strategy); colours are proof families (subcubic variants by complexity class). "
                          "Brute force (K = 4), orders of magnitude to the right, is marked at the right edge "
                          "with its FLOPs, so that it does not squeeze the other points together.",
    "bound_vs_unexplained_dimension.png": "The same bounds against the proof's unexplained dimension (brute force "
                                          "marked at the right edge likewise).",
    "best_bound_per_class.png": "Per proof family, the mean over seeds of each seed's best certified bound; "
                                "error bars are one standard deviation across seeds.",
}


OFF_SCALE = 30  # brute force further right than this factor beyond every other point: marked at the edge


def _family(strategy: str, complexity: str) -> str:
    """The figure family of one strategy: the single ones by name, subcubic variants by class."""
    return SINGLE.get(strategy) or CLASS_FAMILY.get(complexity, "other")


def _log_axis(ax, values) -> None:
    """A log axis spanning at least 0.8 decades, with labelled ticks at powers of ten, at 1, 2 and
    5 times them, or (within about a decade) at 1, 2, 3, 5 and 7 times them: at least three labels
    in view, whatever the range."""
    import matplotlib.ticker as ticker

    ax.set_xscale("log")
    low, high = min(values) / 1.4, max(values) * 1.4
    decades = np.log10(high) - np.log10(low)
    if decades < 0.8:
        widen = 10 ** ((0.8 - decades) / 2)
        low, high, decades = low / widen, high * widen, 0.8
    ax.set_xlim(low, high)
    subs = (1.0,) if decades > 3 else (1.0, 2.0, 5.0) if decades > 1.2 else (1.0, 2.0, 3.0, 5.0, 7.0)
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(ticker.LogFormatterSciNotation(base=10, labelOnlyBase=False, minor_thresholds=(np.inf, np.inf)))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def figures(rows: list[dict], table: list[dict], out: Path) -> list[Path]:
    return [save_figure(fig, out / name) for name, fig in build_figures(rows, table).items()]


def build_figures(rows: list[dict], table: list[dict]) -> dict:
    """name -> matplotlib figure (FIGURE_CAPTIONS says what each shows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted({r["k"] for r in rows})
    width = max(4.8 * len(ks), 7.5)
    built = {}
    for name, key, label, unit in (("bound_vs_flops.png", "flops", "FLOPs of the verification", " FLOPs"),
                                   ("bound_vs_unexplained_dimension.png", "unexplained_dimension", "unexplained dimension", "")):
        fig, axes = plt.subplots(1, len(ks), figsize=(width, 4.6), squeeze=False)
        present, marked = set(), False
        for ax, k in zip(axes[0], ks):
            members = [r for r in rows if r["k"] == k and r["accepted"] and r[key] > 0]
            others = [r for r in members if r["strategy"] != "brute-force"]
            brute = [r for r in members if r["strategy"] == "brute-force"]
            apart = bool(others and brute) and min(r[key] for r in brute) > OFF_SCALE * max(r[key] for r in others)
            for family, colour in STYLE.items():
                points = [r for r in (others if apart else members) if _family(r["strategy"], r["complexity"]) == family]
                if points:
                    present.add(family)
                    ax.scatter([r[key] for r in points], [r["bound"] for r in points], s=5, alpha=0.35, color=colour)
            if members:
                _log_axis(ax, [r[key] for r in (others if apart else members)])
            if apart:  # brute force orders of magnitude to the right: a marker on the right edge, its value written
                present.add(BRUTE)
                marked = True
                value, bound = float(np.median([r[key] for r in brute])), float(np.mean([r["bound"] for r in brute]))
                edge = ax.get_yaxis_transform()  # x in axes fraction, y in data
                ax.scatter([0.975], [bound], s=45, marker=">", color=STYLE[BRUTE], transform=edge, zorder=5)
                ax.annotate(f"brute force\n(far right)\n{value:.1e}{unit}\nbound {bound:.4f}", xy=(0.975, bound),
                            xycoords=edge, xytext=(0.97, 0.45), textcoords="axes fraction", ha="right", va="center", fontsize=7,
                            bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "0.6"},
                            arrowprops={"arrowstyle": "->", "color": "0.3", "shrinkB": 6})
            ax.set_title(f"K = {k}")
            ax.set_xlabel(f"{label} (log scale)")
            ax.set_ylabel("certified lower bound on accuracy")
            ax.set_ylim(-0.02, 1.02)
        names = {family: "almost-quadratic subcubic variants" if c == CLASSES[0] else f"subcubic variants, cost {c.split(': ', 1)[1]}"
                 for c, family in CLASS_FAMILY.items()}
        handles = [plt.Line2D([], [], marker=">" if f == BRUTE and marked else "o", ls="", color=c,
                              label=names.get(f, f) + (" (marked at the right edge)" if f == BRUTE and marked else ""))
                   for f, c in STYLE.items() if f in present]
        columns = 2 if len(ks) == 1 else 3
        fig.legend(handles=handles, loc="upper center", ncol=columns, fontsize=8, bbox_to_anchor=(0.5, 1.0), frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.055 * -(-len(handles) // columns)))
        built[name] = fig
    fig, axes = plt.subplots(1, len(ks), figsize=(width, 4.8), squeeze=False)
    for ax, k in zip(axes[0], ks):
        rows_k = [r for r in table if r["K"] == k and r["family"] in BAR_STYLE]
        ax.bar(range(len(rows_k)), [r["bound_mean"] for r in rows_k], color=[BAR_STYLE[r["family"]] for r in rows_k],
               yerr=[r["bound_std"] or 0.0 for r in rows_k], capsize=3, ecolor="dimgray")
        ax.set_xticks(range(len(rows_k)), [r["family"] for r in rows_k], rotation=35, ha="right", fontsize=7)
        ax.set_title(f"K = {k}")
        ax.set_ylabel("certified bound, mean over seeds (+- 1 std)")
        ax.set_ylim(0, 1.05)
    fig.suptitle("Best certified bound per proof family", fontsize=10)
    fig.tight_layout()
    built["best_bound_per_class.png"] = fig
    return built


def save_figure(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    atomic_write(path, buffer.getvalue())
    return path


ROW_COLUMNS = ("k", "seed", "strategy", "accepted", "verified_correct", "total", "bound", "flops", "checker_ops",
               "unexplained_dimension", "complexity", "prove_seconds", "check_seconds", "digest", "model_digest", "version")
_ROW_TYPES = {"k": int, "seed": int, "accepted": lambda text: text == "True", "verified_correct": int, "total": int, "bound": float,
              "flops": int, "checker_ops": int, "unexplained_dimension": int, "prove_seconds": float, "check_seconds": float}
_ESTIMATE_TYPES = {"k": int, "seed": int, "samples": int, "correct": int, "estimate": float, "ci_low": float, "ci_high": float,
                   "confidence": float}


def load_published(folder: Path) -> tuple[list[dict], dict]:
    """The rows and estimates of a published report (rows.csv.gz, estimates.csv), typed as a
    sweep's own rows and estimates are."""
    with gzip.open(Path(folder) / "rows.csv.gz", "rt", newline="") as handle:
        rows = [{k: _ROW_TYPES.get(k, str)(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    estimates = {}
    path = Path(folder) / "estimates.csv"
    if path.exists():
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                e = {k: _ESTIMATE_TYPES.get(k, str)(v) for k, v in row.items()}
                estimates[(e["k"], e["seed"])] = e
    return rows, estimates


def is_published(results: Path) -> bool:
    """A published report's folder (rows.csv.gz) rather than a sweep's results directory (rows/)."""
    return not any(Path(results).glob("rows/k*")) and (Path(results) / "rows.csv.gz").exists()


def load_results(results: Path) -> tuple[list[dict], dict]:
    """(rows, estimates) of a sweep's results directory or of a published report's CSVs."""
    rows, estimates = load_published(results) if is_published(results) else (load_rows(results), load_estimates(results))
    if not rows:
        raise ValueError(f"no results under {results} (a sweep's rows/, or a report's rows.csv.gz)")
    return rows, estimates


def write_report(results: Path, out: Path) -> tuple[list[dict], dict]:
    """Tables and figures into `out`, from a sweep's results directory or a published report's
    CSVs (then rows.csv.gz and estimates.csv, the input, are not written again)."""
    published = is_published(results)
    rows, estimates = load_results(results)
    table, variants = headline(rows, estimates), per_variant(rows)
    out.mkdir(parents=True, exist_ok=True)
    if not published:
        atomic_write(out / "rows.csv.gz", gzip.compress(_csv([{c: r.get(c, "") for c in ROW_COLUMNS} for r in rows]), mtime=0))
    atomic_write(out / "headline.csv", _csv(table))
    atomic_write(out / "headline.md", headline_markdown(table, estimates).encode())
    atomic_write(out / "variants.csv", _csv(variants))
    atomic_write(out / "variants.md", variants_markdown(variants).encode())
    if not published:
        estimate_rows = [dict(e) for _, e in sorted(estimates.items())]
        atomic_write(out / "estimates.csv", _csv(estimate_rows, ESTIMATE_COLUMNS))
    steps = ledger.per_seed_steps(rows)
    atomic_write(out / "ledger_per_seed.csv", _csv(steps))
    atomic_write(out / "ledger_summary.md", ledger_markdown(ledger.per_seed_summary(steps)).encode())
    figures(rows, table, out)
    return table, estimates

"""Tables and figures of the scaling study (generator/studies/scaling.py): bound against d_vocab, K and
d_model per proof family, cost against size on log-log axes with fitted exponents, and the size
at which each family goes vacuous or infeasible."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from compact_proofs.generator.studies.report import _csv, mean_std, save_figure
from compact_proofs.generator.studies.scaling import FAMILIES, Config, load
from compact_proofs.generator.weights_io import atomic_write

STYLE = {"brute force": "black", "cubic": "tab:red", "cubic/reference": "tab:orange",
         "subcubic (tiered)": "tab:cyan", "subcubic (chords)": "tab:purple", "subcubic (paper's best)": "plum"}
PREDICTED = {  # exponents of each family's cost class in each size ("": not polynomial in it)
    "brute force": {"d_vocab": "K + 1", "n_ctx": ""},  # d_vocab^K inputs, each with d_vocab logits
    "cubic": {"d_vocab": "3", "n_ctx": "2"}, "cubic/reference": {"d_vocab": "3", "n_ctx": "2"},  # d_vocab^3 n_ctx^2
    "subcubic (tiered)": {"d_vocab": "2.5", "n_ctx": "1"},  # d_vocab^2 (d_model + n_ctx sqrt(d_vocab))
    "subcubic (chords)": {"d_vocab": "2", "n_ctx": "1"}, "subcubic (paper's best)": {"d_vocab": "2", "n_ctx": "1"},
}
AXES = {  # axis -> (what varies, the fixed configurations' filter, the panels)
    "d_vocab": ("d_vocab", lambda c: c.d_model == 32 and c.n_ctx in (4, 10, 20), "n_ctx"),
    "K": ("n_ctx", lambda c: c.d_model == 32 and c.d_vocab == 64, None),
    "d_model": ("d_model", lambda c: c.d_vocab == 64 and c.n_ctx == 4, None),
}


def _config(r: dict) -> Config:
    return Config(r["d_vocab"], r["n_ctx"], r["d_model"])


def evidence_format(config: Config, family: str) -> str:
    """The cubic certificates' format at this size: per-case claims up to the generator's limit,
    derived above it (the checker decides the cases itself)."""
    from compact_proofs.checker.strategies.cubic import count_cases
    from compact_proofs.generator.proving.strategies.cubic import CLAIMS_UP_TO

    if not family.startswith("cubic"):
        return ""
    return "derived" if count_cases(config.d_vocab, config.n_ctx) > CLAIMS_UP_TO else "claims"


def summary(rows: list[dict], models: dict) -> list[dict]:
    """Per (configuration, family): accepted seeds, bound, normalised bound (per seed, bound over
    the exact accuracy where brute force ran, else the sampled estimate), costs, and why any seed
    has no certificate."""
    exact = {(r["d_vocab"], r["n_ctx"], r["d_model"], r["seed"]): r["bound"] for r in rows
             if r["strategy"] == "brute-force" and r["status"] == "accepted"}
    groups: dict[tuple[Config, str], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(_config(r), r["family"])].append(r)
    out = []
    for (config, family), members in sorted(groups.items(), key=lambda kv: (kv[0][0], list(STYLE).index(kv[0][1]))):
        done = [r for r in members if r["status"] == "accepted"]
        bounds = np.array([r["bound"] for r in done])
        normalised = []
        for r in done:
            key = (config.d_vocab, config.n_ctx, config.d_model, r["seed"])
            accuracy = exact.get(key) or models.get((config.name, r["seed"]), {}).get("sampled", {}).get("estimate")
            if accuracy:
                normalised.append(r["bound"] / accuracy)
        mean = lambda key: float(np.mean(values)) if (values := [r[key] for r in done if r.get(key) is not None]) else None  # noqa: E731
        out.append({
            "config": config.name, "d_vocab": config.d_vocab, "n_ctx": config.n_ctx, "d_model": config.d_model,
            "family": family, "evidence": evidence_format(config, family), "seeds": len(members), "accepted": len(done),
            "bound_mean": float(bounds.mean()) if done else None,
            "bound_std": float(bounds.std()) if len(done) > 1 else None,
            "normalised_mean": float(np.mean(normalised)) if normalised else None,
            "flops_mean": mean("flops"), "prove_seconds_mean": mean("prove_seconds"), "check_seconds_mean": mean("check_seconds"),
            "peak_rss_mb_max": max((r["peak_rss_mb"] for r in done), default=None),
            "certificate_bytes_mean": mean("certificate_bytes"),
            "not_certified": "; ".join(sorted({f"{r['status']}: {r['reason']}" for r in members if r["status"] != "accepted"})),
        })
    return out


def model_summary(models: dict) -> list[dict]:
    groups: dict[Config, list[dict]] = defaultdict(list)
    for m in models.values():
        groups[Config(m["d_vocab"], m["n_ctx"], m["d_model"])].append(m)
    return [{"config": c.name, "d_vocab": c.d_vocab, "n_ctx": c.n_ctx, "d_model": c.d_model, "seeds": len(ms),
             "train_seconds_mean": float(np.mean([m["train_seconds"] for m in ms])),
             "sampled_accuracy_mean": float(np.mean([m["sampled"]["estimate"] for m in ms])),
             "sampled_accuracy_min": float(np.min([m["sampled"]["estimate"] for m in ms]))}
            for c, ms in sorted(groups.items())]


def fit_exponent(sizes, costs) -> float | None:
    """Least-squares slope of log(cost) against log(size) (None with fewer than two sizes)."""
    points = [(s, c) for s, c in zip(sizes, costs) if c and c > 0]
    if len({s for s, _ in points}) < 2:
        return None
    x, y = np.log([s for s, _ in points]), np.log([c for _, c in points])
    return float(np.polyfit(x, y, 1)[0])


def exponents(table: list[dict]) -> list[dict]:
    """Per family and axis (d_vocab at each K, K at d_vocab 64): fitted exponents of FLOPs and of
    prove seconds (search and check), next to the complexity class's."""
    out = []
    for family in STYLE:
        for axis, fixed in [("d_vocab", k) for k in (4, 10, 20)] + [("n_ctx", 64)]:
            members = [r for r in table if r["family"] == family and r["accepted"] and r["d_model"] == 32
                       and (r["n_ctx"] == fixed if axis == "d_vocab" else r["d_vocab"] == fixed)]
            sizes = [r[axis] for r in members]
            seconds = [r["prove_seconds_mean"] for r in members]
            flops = fit_exponent(sizes, [r["flops_mean"] for r in members])
            if flops is None:
                continue
            out.append({"family": family, "axis": axis, "fixed": f"K = {fixed}" if axis == "d_vocab" else f"d_vocab = {fixed}",
                        "sizes": " ".join(str(s) for s in sorted(sizes)), "flops_exponent": flops,
                        "seconds_exponent": fit_exponent(sizes, seconds), "class_exponent": PREDICTED[family][axis]})
    return out


def vacuity(table: list[dict]) -> list[dict]:
    """Per family and axis: the smallest size whose mean normalised bound is below 0.5 and below
    0.1, and the smallest where no seed was certified (infeasible here)."""
    out = []
    for family in STYLE:
        for axis, (key, keep, panel) in AXES.items():
            for fixed in sorted({r[panel] for r in table if panel}) if panel else [None]:
                members = sorted((r for r in table if r["family"] == family and keep(Config(r["d_vocab"], r["n_ctx"], r["d_model"]))
                                  and (panel is None or r[panel] == fixed)), key=lambda r: r[key])
                if not members:
                    continue
                first = lambda test: next((r[key] for r in members if test(r)), None)  # noqa: E731
                out.append({"family": family, "axis": key, "fixed": "" if panel is None else f"K = {fixed}",
                            "sizes": " ".join(str(r[key]) for r in members),
                            "below_0.5": first(lambda r: r["normalised_mean"] is not None and r["normalised_mean"] < 0.5),
                            "below_0.1": first(lambda r: r["normalised_mean"] is not None and r["normalised_mean"] < 0.1),
                            "infeasible": first(lambda r: r["accepted"] == 0)})
    return out


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(table: list[dict], trained: list[dict], slopes: list[dict], vacuous: list[dict]) -> str:
    lines = ["## Models", "", "| configuration | seeds | training s (mean) | sampled accuracy (mean, min) |", "|---|---|---|---|"]
    for m in trained:
        lines.append(f"| {m['config']} | {m['seeds']} | {m['train_seconds_mean']:.1f} | {m['sampled_accuracy_mean']:.4f}, "
                     f"{m['sampled_accuracy_min']:.4f} |")
    lines += ["", "## Bounds and costs", "",
              "Normalised bound = bound / accuracy (exact where brute force ran, else the sampled estimate, per seed).", "",
              "Cubic certificates carry per-case claims up to 2^22 cases and use the derived format above (`evidence`).", "",
              "| configuration | family | certified / seeds | bound (mean +- std) | normalised | FLOPs | prove s | cold check s | peak MB | certificate bytes | evidence | not certified |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        bound = "-" if r["bound_mean"] is None else mean_std(r["bound_mean"], r["bound_std"])
        lines.append(f"| {r['config']} | {r['family']} | {r['accepted']} / {r['seeds']} | {bound} | {_fmt(r['normalised_mean'], '.4f')} | "
                     f"{_fmt(r['flops_mean'], '.3g')} | {_fmt(r['prove_seconds_mean'], '.2f')} | {_fmt(r['check_seconds_mean'], '.2f')} | "
                     f"{_fmt(r['peak_rss_mb_max'], '.0f')} | {_fmt(r['certificate_bytes_mean'], '.3g')} | {r['evidence']} | {r['not_certified'][:120]} |")
    lines += ["", "## Fitted exponents (log-log least squares over the sizes listed)", "",
              "FLOPs are the machine-independent measure; seconds come from a shared 2-core machine and are noisy.", "",
              "| family | size varied | fixed | sizes | FLOPs exponent | seconds exponent | complexity class exponent |",
              "|---|---|---|---|---|---|---|"]
    for s in slopes:
        lines.append(f"| {s['family']} | {s['axis']} | {s['fixed']} | {s['sizes']} | {s['flops_exponent']:.2f} | "
                     f"{_fmt(s['seconds_exponent'], '.2f')} | {s['class_exponent'] or '-'} |")
    lines += ["", "## Where each family goes vacuous (smallest size; - : not within the sizes run)", "",
              "| family | size varied | fixed | sizes | normalised < 0.5 | normalised < 0.1 | no certificate |", "|---|---|---|---|---|---|---|"]
    for v in vacuous:
        lines.append(f"| {v['family']} | {v['axis']} | {v['fixed']} | {v['sizes']} | {_fmt(v['below_0.5'], 'd')} | "
                     f"{_fmt(v['below_0.1'], 'd')} | {_fmt(v['infeasible'], 'd')} |")
    return "\n".join(lines) + "\n"


def build_figures(table: list[dict]) -> dict:
    """name -> figure: bound against each axis (mean +- std over seeds), and cost against d_vocab
    and K on log-log axes with each family's fitted exponent in its legend entry."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker as ticker

    built = {}
    for axis, (key, keep, panel) in AXES.items():
        members = [r for r in table if keep(Config(r["d_vocab"], r["n_ctx"], r["d_model"])) and r["accepted"]]
        refused = [r for r in table if keep(Config(r["d_vocab"], r["n_ctx"], r["d_model"])) and not r["accepted"]
                   and r["family"] != "brute force"]  # brute force's limit is drawn by its line's end alone
        if len({r[key] for r in members}) < 2:
            continue
        panels = sorted({r[panel] for r in members}) if panel else [None]
        fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 1.5, 4.2), squeeze=False)
        for ax, fixed in zip(axes[0], panels):
            here = lambda rows: [r for r in rows if panel is None or r[panel] == fixed]  # noqa: E731
            for family, colour in STYLE.items():
                points = sorted((r for r in here(members) if r["family"] == family), key=lambda r: r[key])
                if points:
                    ax.errorbar([r[key] for r in points], [r["bound_mean"] for r in points], yerr=[r["bound_std"] or 0 for r in points],
                                color=colour, marker="o", ms=4, capsize=3, label=family)
                stopped = sorted({r[key] for r in here(refused) if r["family"] == family})
                if stopped:  # no certificate at this size (a resource limit or the time budget), drawn at the axis' foot
                    offset = 1 + 0.04 * list(STYLE).index(family)
                    ax.scatter([x * offset for x in stopped], [0.0] * len(stopped), color=colour, marker="x", s=30, zorder=3)
            if here(refused):
                ax.text(0.02, 0.03, "x: no certificate here (limit or time budget)", transform=ax.transAxes, fontsize=7)
            ax.set_xscale("log", base=2)
            ticks = sorted({r[key] for r in here(members) + here(refused)})
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.set_xlabel({"d_vocab": "d_vocab (log scale)", "n_ctx": "K = n_ctx (log scale)", "d_model": "d_model = d_head (log scale)"}[key])
            ax.set_ylabel("certified bound on accuracy (mean +- 1 std)")
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"K = {fixed}" if panel else {"K": "d_vocab 64", "d_model": "d_vocab 64, K = 4"}[axis])
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center right", fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0, 1 - 1.5 / (4.6 * len(panels) + 1.5), 1))
        built[f"bound_vs_{axis}.png"] = fig
    for axis, fixed_values in (("d_vocab", (4, 10, 20)), ("n_ctx", (64,))):
        def line(r, fixed):
            return r["accepted"] and r["d_model"] == 32 and (r["n_ctx"] == fixed if axis == "d_vocab" else r["d_vocab"] == fixed)

        fixed_values = [f for f in fixed_values if len({r[axis] for r in table if line(r, f)}) >= 2]
        if not fixed_values:
            continue
        fig, axes = plt.subplots(2, len(fixed_values), figsize=(4.6 * len(fixed_values) + 1, 8), squeeze=False)
        for column, fixed in enumerate(fixed_values):
            for row, (key, label) in enumerate((("flops_mean", "FLOPs of the verification"), ("prove_seconds_mean", "prove seconds, search and check"))):
                ax = axes[row][column]
                for family, colour in STYLE.items():
                    points = sorted((r for r in table if r["family"] == family and line(r, fixed)), key=lambda r: r[axis])
                    if not points:
                        continue
                    sizes, costs = [r[axis] for r in points], [r[key] for r in points]
                    slope = fit_exponent(sizes, costs)
                    ax.plot(sizes, costs, marker="o", ms=4, color=colour,
                            label=family + ("" if slope is None else f" (fitted exponent {slope:.2f})"))
                ax.set_xscale("log", base=2)
                ax.set_yscale("log")
                if key == "prove_seconds_mean":
                    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
                    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
                ticks = sorted({r[axis] for r in table if line(r, fixed)})
                ax.set_xticks(ticks, [str(t) for t in ticks])
                ax.set_xlabel("d_vocab (log scale)" if axis == "d_vocab" else "K = n_ctx (log scale)")
                ax.set_ylabel(f"{label} (log scale)")
                ax.set_title(f"K = {fixed}" if axis == "d_vocab" else f"d_vocab = {fixed}")
                ax.legend(fontsize=7, loc="best")  # away from the lines (brute force rises steeply at the left)
        fig.tight_layout()
        built[f"cost_vs_{axis}.png"] = fig
    return built


def write(results: Path, out: Path) -> tuple[list[dict], list[dict], list[dict]]:
    rows, models = load(results)
    if not rows:
        raise ValueError(f"no scaling results under {results}")
    table, trained = summary(rows, models), model_summary(models)
    slopes, vacuous = exponents(table), vacuity(table)
    out.mkdir(parents=True, exist_ok=True)
    columns = ["d_vocab", "n_ctx", "d_model", "seed", "strategy", "family", "status", "reason", "verified_correct", "total",
               "bound", "flops", "checker_ops", "unexplained_dimension", "complexity", "prove_seconds", "check_seconds",
               "certificate_bytes", "peak_rss_mb", "baseline_rss_mb", "digest", "version"]
    atomic_write(out / "rows.csv", _csv([{c: r.get(c, "") for c in columns} for r in rows], columns))
    atomic_write(out / "models.csv", _csv(trained))
    atomic_write(out / "summary.csv", _csv(table))
    atomic_write(out / "exponents.csv", _csv(slopes))
    atomic_write(out / "vacuity.csv", _csv(vacuous))
    atomic_write(out / "summary.md", markdown(table, trained, slopes, vacuous).encode())
    atomic_write(out / "summary.json", json.dumps({"summary": table, "exponents": slopes, "vacuity": vacuous}, indent=1).encode())
    for name, fig in build_figures(table).items():
        save_figure(fig, out / name)
    return table, slopes, vacuous

"""`sweep`, `report`, `faithfulness`, `scaling` and `induction`: the studies over many models."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List

import typer
from rich.console import Console

from compact_proofs.generator.cli.app import EXIT_USAGE, Command, app, err, fail, info, progress_bar, reachable, writable_directory


@app.command(cls=Command, context_settings={"allow_extra_args": False})
def sweep(
    k: List[int] = typer.Option(None, "--k", help="sequence lengths; `--k 4 5 10 20` or `--k 4 --k 5`"),
    more_k: List[int] = typer.Argument(None, hidden=True),
    seeds_file: Path = typer.Option(None, "--seeds", help="a file of seeds, one per line (default: the paper's 151)"),
    n_seeds: int = typer.Option(None, "--n-seeds", min=1, help="only the first N seeds"),
    results: Path = typer.Option(Path("results"), "--results", "-r", help="results directory (resumable)"),
    models: Path = typer.Option(None, "--models", help="trained-model cache (default: RESULTS/models)"),
    strategy: List[str] = typer.Option(None, "--strategy", "-s", help="only these strategies (default: all feasible)"),
    workers: int = typer.Option(2, min=1, help="local worker processes"),
    scheduler: str = typer.Option(None, "--scheduler", help="address of an existing Dask distributed scheduler"),
    keep_certificates: bool = typer.Option(False, "--keep-certificates",
                                           help="keep every certificate under RESULTS/certificates (`compact-proofs check` takes the folder)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train, prove with every feasible strategy, and check, for every (K, seed); resumable."""
    from compact_proofs.generator.studies import sweep as sweeping
    from compact_proofs.generator.proving.prover import names
    from compact_proofs.generator.training.zoo import paper_seeds

    ks = list(k or []) + list(more_k or [])
    if not ks:
        fail("give at least one K, e.g. --k 4 5 10 20", 2)
    if any(x < 1 for x in ks):
        fail("every K must be positive", 2)
    try:
        seeds = [int(x) for x in seeds_file.read_text().split()] if seeds_file else paper_seeds()
    except (OSError, ValueError) as exc:
        fail(f"cannot read seeds from {seeds_file}: {exc}")
    seeds = seeds[:n_seeds] if n_seeds else seeds
    unknown = sorted(set(strategy or []) - set(names()) | ({"subcubic/best"} & set(strategy or [])))
    if unknown:
        fail(f"unknown or composite strategies {unknown}; `compact-proofs strategies` lists them", 2)
    reachable(scheduler)
    work = sweeping.tasks_for(ks, seeds, list(strategy) if strategy else None, results)
    expected, before = sweeping.rows_missing(work, results), sweeping.rows_written(results)
    info(f"{len(work)} of {len(ks) * len(seeds)} (K, seed) tasks have work left ({expected} certificates); results in {results}")
    with progress_bar(progress) as update:
        import threading

        finished = threading.Event()

        def watch() -> None:  # certificates as their rows appear (the same for local workers and Dask)
            while not finished.wait(1.0):
                update("sweep: certificates", sweeping.rows_written(results) - before, expected)

        watcher = threading.Thread(target=watch, daemon=True)
        if progress and err.is_terminal:
            watcher.start()
        try:
            sweeping.run(ks, seeds, results, models or results / "models", list(strategy) if strategy else None, workers,
                         scheduler, None, keep_certificates=keep_certificates)
        finally:
            finished.set()
            if watcher.is_alive():
                watcher.join()
        update("sweep: certificates", sweeping.rows_written(results) - before, expected)
    rows = sweeping.load_rows(results)
    info(f"done: {len(rows)} rows in {results}")
    mismatched = sorted({(r["k"], r["seed"]) for r in rows if r.get("manifest") == "mismatch"})
    if mismatched:
        err.print(f"[bold red]MISMATCH: {len(mismatched)} models differ from the published ones (compact_proofs/generator/training/models.json), "
                  f"so these results are not about the published models: "
                  f"{', '.join(f'K={k_} seed {s_}' for k_, s_ in mismatched[:10])}{' ...' if len(mismatched) > 10 else ''}[/bold red]",
                  highlight=False, soft_wrap=True)


@app.command()
def report(
    results: Path = typer.Argument(Path("results"), help="a sweep's results directory"),
    output: Path = typer.Option(None, "--output", "-o", help="where to write tables and figures (default: RESULTS/report)"),
    as_json: bool = typer.Option(False, "--json", help="print the headline table as JSON rows"),
) -> None:
    """Print the headline table per K, and write it (Markdown, CSV) with per-variant tables and figures."""
    from rich.table import Table

    from compact_proofs.generator.studies.report import mean_std, optional, write_report

    out = output or results / "report"
    try:
        table, _ = write_report(results, out)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(table, indent=2))
        info(f"wrote tables and figures to {out}")
        return
    console = Console() if sys.stdout.isatty() else Console(width=160)  # piped: no squeezed columns
    for k in sorted({r["K"] for r in table}):
        t = Table(title=f"K = {k}")
        for col in ("proof family", "seeds", "bound", "normalised", "FLOPs", "unexpl. dim", "complexity", "prove + check s"):
            t.add_column(col)
        for r in table:
            if r["K"] == k:
                t.add_row(r["family"], str(r["seeds"]), mean_std(r["bound_mean"], r["bound_std"]), optional(r["normalised_mean"], ".4f"),
                          f"{r['flops_mean']:.3g}", f"{r['unexplained_dimension']:.4g}", r["complexity"],
                          f"{r['prove_seconds_mean'] + r['check_seconds_mean']:.2f}")
        console.print(t)
    info(f"wrote tables and figures to {out}")


@app.command()
def faithfulness(
    results: Path = typer.Argument(Path("results"), help="a sweep's results directory (its rows and model cache), or a "
                                   "published report's folder (rows.csv.gz, e.g. docs/results) with --models"),
    models: Path = typer.Option(None, "--models", help="trained-model cache (default: RESULTS/models; missing models are trained)"),
    output: Path = typer.Option(None, "--output", "-o", help="where to write (default: RESULTS/faithfulness)"),
    noise_seeds: int = typer.Option(10, min=0, help="K=4 seeds for the noise ablation"),
    rank_seeds: int = typer.Option(20, min=0, help="K=4 seeds for EQKE rank as an axis"),
    exact_seeds: int = typer.Option(30, min=0, help="K=4 seeds for the best subcubic variant's exact steps (about 40 s each)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """The faithfulness analyses: bound against EQKE's rank-one-ness, a noise ablation, EQKE rank as an axis, the best
    subcubic variant's exact steps (resumable)."""
    from compact_proofs.generator.studies import faithfulness as analyses
    from compact_proofs.generator.studies.report import load_results
    from compact_proofs.generator.training import zoo

    out = output or results / "faithfulness"
    try:
        rows, _ = load_results(results)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    cache = models or results / "models"
    seeds = zoo.paper_seeds()
    with progress_bar(progress) as update:
        sigma = analyses.sigma_rows(rows, lambda k, seed: zoo.trained(k, seed, cache))
        noise = analyses.noise_items(lambda seed: zoo.trained(4, seed, cache), seeds[:noise_seeds], out,
                                     lambda done, total: update("noise ablation", done, total))
        ranks = analyses.rank_items(lambda seed: zoo.trained(4, seed, cache), seeds[:rank_seeds], out,
                                    lambda done, total: update("EQKE rank", done, total))
        exact = analyses.exact_step_items(lambda seed: zoo.trained(4, seed, cache), rows, seeds[:exact_seeds], out,
                                          lambda done, total: update("exact steps", done, total))
    for path in analyses.write(out, sigma, noise, ranks, exact):
        info(f"wrote {path}")


@app.command()
def scaling(
    results: Path = typer.Option(Path("results/scaling"), "--results", "-r", help="results directory (resumable)"),
    output: Path = typer.Option(None, "--output", "-o", help="where to write the report (default: RESULTS/report)"),
    config: List[str] = typer.Option(None, "--config", "-c",
                                     help="only these configurations, e.g. v128-k10 or v64-k4-d16 (default: the whole grid)"),
    n_seeds: int = typer.Option(None, "--n-seeds", min=1, help="the first N paper seeds (default 10)"),
    strategy: List[str] = typer.Option(None, "--strategy", "-s", help="only these strategies (default: one per family)"),
    budget: float = typer.Option(None, "--budget", min=1.0, help="skip a proof whose forecast exceeds this many seconds (default 1800)"),
    workers: int = typer.Option(2, min=1, help="local worker processes"),
    scheduler: str = typer.Option(None, "--scheduler", help="address of an existing Dask distributed scheduler"),
    report_only: bool = typer.Option(False, "--report-only", help="write the report from the rows there, run nothing"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """The scaling study: train, prove and check over d_vocab, K and d_model (resumable), then write its report."""
    from compact_proofs.generator.studies import scaling as study, scaling_report
    from compact_proofs.generator.proving.prover import names
    from compact_proofs.generator.training.zoo import paper_seeds

    try:
        configs = [study.parse_config(c) for c in config] if config else study.grid()
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    unknown = sorted(set(strategy or []) - set(names()) | ({"subcubic/best"} & set(strategy or [])))
    if unknown:
        fail(f"unknown or composite strategies {unknown}; `compact-proofs strategies` lists them", EXIT_USAGE)
    out = output or results / "report"
    if report_only and not any(results.glob("rows/*/seed*/*.json")):
        fail(f"no scaling results under {results}")
    if not report_only:
        reachable(scheduler)
        writable_directory(results)
    writable_directory(out)
    if not report_only:
        seeds = paper_seeds()[: n_seeds or study.DEFAULT_SEEDS]
        names_ = list(strategy) if strategy else list(study.FAMILIES)
        work = study.units(configs, seeds, names_, results)
        info(f"{len(work)} of {len(configs) * len(seeds)} (configuration, seed) units have work left; results in {results}")
        with progress_bar(progress) as update:
            done = [0]

            def on_done(c, s) -> None:
                done[0] += 1
                update("scaling: (configuration, seed) units", done[0], len(work))

            update("scaling: (configuration, seed) units", 0, len(work))
            study.run(configs, seeds, results, names_, workers, scheduler, budget or study.DEFAULT_BUDGET, on_done)
    try:
        scaling_report.write(results, out)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    info(f"wrote the scaling report to {out}")


@app.command()
def induction(
    results: Path = typer.Option(Path("results/induction"), "--results", "-r", help="results directory (resumable)"),
    output: Path = typer.Option(None, "--output", "-o", help="where to write the report (default: RESULTS/report)"),
    size: List[str] = typer.Option(None, "--size", help="d_vocab x n_ctx, e.g. 8x8 or 32x16 (default 8x8)"),
    recipe: str = typer.Option("last", "--recipe", help="last: the published recipe (loss at the last position, 3000 steps); "
                                                       "every: the loss at every position, 6000 steps"),
    n_seeds: int = typer.Option(20, "--n-seeds", min=1, help="the first N paper seeds"),
    method: List[str] = typer.Option(None, "--method", "-m", help="brute-force, induction/positions, or induction/<keys>/<query>[:depth] "
                                                                 "(repeatable; default: brute-force and induction/positions; brute force "
                                                                 "only where it runs)"),
    published: Path = typer.Option(None, "--published", help="adopt the published 8 x 8 rows and models from this directory "
                                                            "(docs/results/induction) instead of training them again"),
    ceilings: bool = typer.Option(False, "--ceilings", help="also each mechanistic cell structure's ceiling (float64 over every input; "
                                                           "up to 2^24 inputs)"),
    workers: int = typer.Option(2, min=1, help="local worker processes"),
    report_only: bool = typer.Option(False, "--report-only", help="write the report from the rows there, run nothing"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """The induction study: two-layer models trained on induction, certified by brute force over
    the whole domain where it runs and by the compact proofs (format v2); resumable, then the report."""
    from compact_proofs.checker.strategies.induction import NAMES
    from compact_proofs.generator.studies import induction as study
    from compact_proofs.generator.training.zoo import paper_seeds

    if recipe not in study.STEPS:
        fail(f"--recipe must be one of {', '.join(study.STEPS)}, not {recipe!r}", EXIT_USAGE)
    sizes = []
    for text in size or ["8x8"]:
        try:
            v, n = (int(part) for part in text.lower().split("x"))
        except ValueError:
            fail(f"--size {text!r}: expected d_vocab x n_ctx, e.g. 8x8", EXIT_USAGE)
        if not (2 <= v <= 256 and 2 <= n <= 64):
            fail(f"--size {text!r}: needs 2 <= d_vocab <= 256 and 2 <= n_ctx <= 64", EXIT_USAGE)
        sizes.append(study.Size(v, n, recipe))
    methods = [study.Method.parse(m) for m in (method or ["brute-force", "induction/positions"])]
    for m in methods:
        if m.strategy not in ["brute-force", *NAMES]:
            fail(f"--method {m.strategy!r}: known: brute-force, {', '.join(NAMES)}", EXIT_USAGE)
    out = output or results / "report"
    if not report_only:
        writable_directory(results)
        if published is not None:
            info(f"adopted {study.adopt_published(results, published)} published rows")
    if report_only and not study.load_rows(results):
        fail(f"no induction results under {results}")
    writable_directory(out)
    if not report_only:
        seeds = paper_seeds()[:n_seeds]
        with progress_bar(progress) as update:
            done = [0]

            def on_done(size_, seed) -> None:
                done[0] += 1
                update("induction: (size, seed)", done[0], len(sizes) * len(seeds))

            update("induction: (size, seed)", 0, len(sizes) * len(seeds))
            study.run(sizes, seeds, results, methods, workers, on_done, ceilings)
    study.report(results, out)
    info(f"wrote the induction report to {out}")

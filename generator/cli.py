"""compact-proofs: train Max-of-K models, prove accuracy bounds, check certificates."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from generator import weights_io

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train Max-of-K transformers, prove lower bounds on their accuracy over all inputs, and check the proofs.",
)
err = Console(stderr=True)
EXIT_INVALID = 3


def fail(message: str, code: int = EXIT_INVALID) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator:
    """A rich progress bar on stderr; yields a (stage, done, total) callback."""
    if not enabled or not err.is_terminal:
        yield lambda stage, done, total: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        tasks: dict = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def load_weights(path: Path) -> dict:
    try:
        return weights_io.load(path)
    except weights_io.WeightsError as exc:
        fail(str(exc))


@app.command()
def train(
    output: Path = typer.Option(..., "--output", "-o", help="where to write the weights (.npz, .pt or .safetensors)"),
    k: int = typer.Option(4, "--k", help="sequence length K (n_ctx)"),
    seed: int = typer.Option(123, help="training seed; the same seed gives the same weights"),
    d_vocab: int = typer.Option(64, help="vocabulary size"),
    d_model: int = typer.Option(32, help="residual width"),
    d_head: int = typer.Option(32, help="attention head width"),
    steps: int = typer.Option(3000, min=0, help="optimiser steps (batch 128, AdamW lr 1e-3, wd 0.01)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train a one-layer attention-only transformer on Max-of-K with the paper's recipe."""
    from generator.model import ModelConfig
    from generator.train import TrainConfig, train as run_training

    if Path(output).suffix.lower() not in weights_io.SUFFIXES:
        fail(f"unsupported output type {Path(output).suffix or '(none)'}; use one of {', '.join(weights_io.SUFFIXES)}", 2)
    try:
        cfg = ModelConfig(d_vocab=d_vocab, n_ctx=k, d_model=d_model, d_head=d_head)
    except ValueError as exc:
        fail(str(exc), 2)
    train_cfg = TrainConfig(steps=steps)
    with progress_bar(progress) as update:
        model = run_training(seed, cfg, train_cfg, on_step=lambda step, loss: update("training", step + 1, steps))
    weights = {k_: v.detach().numpy() for k_, v in model.state_dict().items()}
    weights_io.save(output, weights)
    err.print(f"wrote {output} (K={k}, seed {seed}, d_vocab {d_vocab})")
    report_manifest(k, seed, cfg, train_cfg, weights)


def report_manifest(k: int, seed: int, cfg, train_cfg, weights: dict) -> None:
    """Say whether freshly trained weights are the published model (loudly if they should be and are not)."""
    from checker.weights import model_digest
    from generator.manifest import compare

    digest = model_digest(weights)
    comparison = compare(k, seed, cfg, train_cfg, digest)
    style = {"match": "green", "mismatch": "bold red", "unlisted": "dim"}[comparison.status]
    err.print(f"[{style}]{escape(comparison.message(digest))}[/{style}]", highlight=False, soft_wrap=True)


@app.command()
def prove(
    model: Path = typer.Argument(..., help="model weights (.npz, .pt or .safetensors state dict)"),
    strategy: str = typer.Option("brute-force", "--strategy", "-s", help="proof strategy; see `compact-proofs strategies`"),
    output: Path = typer.Option(..., "--output", "-o", help="where to write the certificate (.msgpack)"),
    as_json: bool = typer.Option(False, "--json", help="print the checker's verdict as JSON"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Prove a lower bound on MODEL's accuracy over all inputs and write the certificate."""
    from checker.cli import summary
    from generator.prover import ProofError, names, prove as run_prover

    if strategy not in names():
        fail(f"unknown strategy {strategy!r}; `compact-proofs strategies` lists them", 2)
    weights = load_weights(model)
    with progress_bar(progress) as update:
        try:
            proof = run_prover(weights, strategy, update)
        except ProofError as exc:
            fail(str(exc), 1)
    weights_io.atomic_write(output, proof.raw)
    if as_json:
        print(json.dumps({"path": str(output), **proof.verdict.as_json()}, indent=2))
    else:
        print(summary(str(output), proof.verdict))


@app.command()
def check(
    certificates: List[Path] = typer.Argument(..., help="certificate files"),
    as_json: bool = typer.Option(False, "--json", help="print machine-readable verdicts"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    max_seconds: float = typer.Option(None, "--max-seconds", min=0.001, help="REJECT a check that takes longer than this"),
) -> None:
    """Check certificates with the standalone checker (exit 0 iff all are accepted)."""
    from checker.cli import run

    raise typer.Exit(run([str(c) for c in certificates], as_json=as_json,
                         show_progress=progress and err.is_terminal and not as_json, max_seconds=max_seconds))


@app.command("strategies")
def list_strategies(as_json: bool = typer.Option(False, "--json", help="print a JSON list")) -> None:
    """List every strategy name `prove --strategy` accepts."""
    from generator.prover import names

    print(json.dumps(names()) if as_json else "\n".join(names()))


@app.command(context_settings={"allow_extra_args": False})
def sweep(
    k: List[int] = typer.Option(None, "--k", help="sequence lengths; `--k 4 5 10 20` or `--k 4 --k 5`"),
    more_k: List[int] = typer.Argument(None, hidden=True),
    seeds_file: Path = typer.Option(None, "--seeds", help="a file of seeds, one per line (default: the paper's 151)"),
    n_seeds: int = typer.Option(None, "--n-seeds", help="only the first N seeds"),
    results: Path = typer.Option(Path("results"), "--results", "-r", help="results directory (resumable)"),
    models: Path = typer.Option(None, "--models", help="trained-model cache (default: RESULTS/models)"),
    strategy: List[str] = typer.Option(None, "--strategy", "-s", help="only these strategies (default: all feasible)"),
    workers: int = typer.Option(2, help="local worker processes"),
    scheduler: str = typer.Option(None, "--scheduler", help="address of an existing Dask distributed scheduler"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train, prove with every feasible strategy, and check, for every (K, seed); resumable."""
    from generator import sweep as sweeping
    from generator.prover import names
    from generator.zoo import paper_seeds

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
    work = sweeping.tasks_for(ks, seeds, list(strategy) if strategy else None, results)
    err.print(f"{len(work)} of {len(ks) * len(seeds)} (K, seed) tasks have work left; results in {results}")
    with progress_bar(progress) as update:
        done = 0

        def on_done(k_: int, seed: int) -> None:
            nonlocal done
            done += 1
            update("sweep (K, seed) tasks", done, len(work))

        update("sweep (K, seed) tasks", 0, len(work))
        sweeping.run(ks, seeds, results, models or results / "models", list(strategy) if strategy else None, workers,
                     scheduler, on_done)
    rows = sweeping.load_rows(results)
    err.print(f"done: {len(rows)} rows in {results}")
    mismatched = sorted({(r["k"], r["seed"]) for r in rows if r.get("manifest") == "mismatch"})
    if mismatched:
        err.print(f"[bold red]MISMATCH: {len(mismatched)} models differ from the published ones (generator/models.json), "
                  f"so these results are not about the published models: "
                  f"{', '.join(f'K={k_} seed {s_}' for k_, s_ in mismatched[:10])}{' ...' if len(mismatched) > 10 else ''}[/bold red]",
                  highlight=False, soft_wrap=True)


@app.command()
def models(
    k: List[int] = typer.Option(None, "--k", help="sequence lengths (default: the paper's 4 5 10 20)"),
    more_k: List[int] = typer.Argument(None, hidden=True),
    seeds_file: Path = typer.Option(None, "--seeds", help="a file of seeds, one per line (default: the paper's 151)"),
    n_seeds: int = typer.Option(None, "--n-seeds", min=1, help="only the first N seeds"),
    cache: Path = typer.Option(None, "--models", help="read weights cached here by `sweep` instead of training (for --write)"),
    write: bool = typer.Option(False, "--write", help="record these digests in generator/models.json (maintainers)"),
    workers: int = typer.Option(2, min=1, help="local worker processes"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object per model"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train the published models again and compare their weights with the manifest (exit 0 iff all match)."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from generator import manifest
    from generator.zoo import paper_seeds

    ks = list(k or []) + list(more_k or []) or list(manifest.PAPER_KS)
    try:
        seeds = [int(x) for x in seeds_file.read_text().split()] if seeds_file else paper_seeds()
    except (OSError, ValueError) as exc:
        fail(f"cannot read seeds from {seeds_file}: {exc}")
    seeds = seeds[:n_seeds] if n_seeds else seeds
    jobs = [(k_, seed) for k_ in ks for seed in seeds]
    results = []
    with progress_bar(progress) as update, ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(manifest.reproduce, k_, seed, None if cache is None else str(cache)) for k_, seed in jobs]
        for done, future in enumerate(as_completed(futures), start=1):
            results.append(future.result())
            update("models", done, len(jobs))
    results.sort()
    if write:
        recorded = manifest.load() | {(k_, seed): digest for k_, seed, digest, _ in results}
        manifest.write(recorded)
        err.print(f"recorded {len(results)} digests in {manifest.PATH} ({len(recorded)} in all)")
        return
    if as_json:
        print(json.dumps([{"k": k_, "seed": seed, "weights_digest": d, "manifest": status} for k_, seed, d, status in results], indent=2))
    counts = {status: sum(r[3] == status for r in results) for status in ("match", "mismatch", "unlisted")}
    for k_, seed, digest, status in results:
        if status == "mismatch":
            err.print(f"[bold red]MISMATCH[/bold red] K={k_} seed {seed}: {digest}", highlight=False)
    err.print(f"{counts['match']} of {len(results)} models match the published weights; {counts['mismatch']} differ; "
              f"{counts['unlisted']} are not in the manifest", highlight=False)
    raise typer.Exit(0 if counts["match"] == len(results) else 1)


@app.command()
def report(
    results: Path = typer.Argument(Path("results"), help="a sweep's results directory"),
    output: Path = typer.Option(None, "--output", "-o", help="where to write tables and figures (default: RESULTS/report)"),
    as_json: bool = typer.Option(False, "--json", help="print the headline table as JSON rows"),
) -> None:
    """Print the headline table per K, and write it (Markdown, CSV) with per-variant tables and figures."""
    from rich.table import Table

    from generator.report import mean_std, optional, write_report

    out = output or results / "report"
    try:
        table, _ = write_report(results, out)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(table, indent=2))
        err.print(f"wrote tables and figures to {out}")
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
    err.print(f"wrote tables and figures to {out}")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())

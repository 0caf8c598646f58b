"""compact-proofs: train Max-of-K models, prove accuracy bounds, check certificates."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from compact_proofs.generator import weights_io

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train Max-of-K transformers, prove lower bounds on their accuracy over all inputs, and check the proofs.",
)
err = Console(stderr=True)
EXIT_REJECTED, EXIT_USAGE, EXIT_INVALID = 1, 2, 3  # the checker's exit codes (checker/cli.py), for every command


def _version(value: bool) -> None:
    if value:
        from compact_proofs import __version__

        print(f"compact-proofs {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="print the version and exit"),
             quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars or notes on stderr (errors and results only)"),
             verbose: bool = typer.Option(False, "--verbose", "-v", help="more detail on stderr (the checker's notes)")) -> None:
    """Train Max-of-K transformers, prove lower bounds on their accuracy over all inputs, and check the proofs.

    Exit codes (every command): 0 success, 1 a claim not established (or a proof the checker did not
    accept), 2 usage error, 3 an unreadable or invalid input file, 4 a resource or time limit,
    5 not supported here, 130 interrupted."""
    VERBOSITY["level"] = 0 if quiet else 2 if verbose else 1


VERBOSITY = {"level": 1}  # 0 quiet, 1 default, 2 verbose


def info(message: str, level: int = 1) -> None:
    """A note on stderr, shown at this verbosity or above (never a result: those go to stdout)."""
    if VERBOSITY["level"] >= level:
        err.print(message, highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_INVALID) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator:
    """A rich progress bar on stderr; yields a (stage, done, total) callback."""
    if not enabled or not err.is_terminal or VERBOSITY["level"] == 0:
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


def output_path(path: str | Path, inputs: tuple[Path, ...] = (), make_dirs: bool = False, suffixes: tuple[str, ...] = ()) -> Path:
    """An output file checked before any work: of an accepted type, not a directory (nor a name
    ending in a separator), not a link, device or pipe, not one of the inputs, in a directory that
    exists (or is made, with --make-dirs) and accepts a new file."""
    import tempfile

    if str(path).endswith(os.sep) or (os.altsep and str(path).endswith(os.altsep)):
        fail(f"{path} names a directory; give a file name", EXIT_USAGE)
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        fail(f"{path} exists and is not a regular file (a link, a device or a pipe); it will not be replaced", EXIT_USAGE)
    if suffixes and path.suffix.lower() not in suffixes:
        fail(f"unsupported output type {path.suffix or '(none)'} for {path}; use one of {', '.join(suffixes)}", EXIT_USAGE)
    if path.is_dir():
        fail(f"{path} is a directory; give a file name", EXIT_USAGE)
    if any(path.exists() and i.exists() and path.resolve() == i.resolve() for i in inputs):
        fail(f"{path} is an input of this command; it will not be overwritten", EXIT_USAGE)
    folder = path.parent
    if not folder.exists():
        if not make_dirs:
            fail(f"the directory {folder} does not exist (create it, or pass --make-dirs)", EXIT_USAGE)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"cannot create {folder}: {exc.strerror or exc}", EXIT_USAGE)
    if not folder.is_dir():
        fail(f"{folder} is not a directory", EXIT_USAGE)
    try:  # the same kind of file the atomic write will create
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        fail(f"cannot create a file in {folder}: {exc.strerror or exc}", EXIT_USAGE)
    return path


def reachable(scheduler: str | None) -> None:
    """A Dask scheduler address that answers (checked before any work), or none."""
    if scheduler is None:
        return
    try:
        from distributed import Client

        with Client(scheduler, timeout="10s"):
            pass
    except (OSError, TimeoutError, ValueError) as exc:
        fail(f"cannot reach the Dask scheduler at {scheduler}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", EXIT_USAGE)


def writable_directory(path: Path) -> Path:
    """A directory that exists (or is created) and accepts new files, checked before any work."""
    import tempfile

    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        fail(f"cannot write to the directory {path}: {exc.strerror or exc}", EXIT_USAGE)
    return path


MAKE_DIRS = typer.Option(False, "--make-dirs", help="create the output's directory if it does not exist")


@app.command()
def train(
    output: str = typer.Option(..., "--output", "-o", help="where to write the weights (.npz, .pt or .safetensors)"),
    task: str = typer.Option("max", help="max (Max-of-K, the paper's), min, or induction (checker/tasks.py)"),
    k: int = typer.Option(None, "--k", min=1, help="sequence length n_ctx [max, min: 4; induction: 8]"),
    seed: int = typer.Option(123, help="training seed; the same seed gives the same weights on every x86-64 CPU"),
    d_vocab: int = typer.Option(None, min=1, help="vocabulary size [max, min: 64; induction: 8]"),
    d_model: int = typer.Option(32, min=1, help="residual width"),
    d_head: int = typer.Option(32, min=1, help="attention head width"),
    n_layers: int = typer.Option(None, min=1, max=2, help="attention layers [max, min: 1; induction: 2]"),
    n_heads: int = typer.Option(1, min=1, help="heads per layer"),
    steps: int = typer.Option(3000, min=0, help="optimiser steps (batch 128, AdamW lr 1e-3, wd 0.01)"),
    make_dirs: bool = MAKE_DIRS,
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train an attention-only transformer with the paper's recipe: by default one layer on
    Max-of-K; `--task induction` trains two layers on induction (SEMANTICS.md, version 2)."""
    from compact_proofs.checker.tasks import TASKS
    from compact_proofs.generator.training.model import ModelConfig
    from compact_proofs.generator.training.train import TrainConfig, train as run_training

    if task not in TASKS:
        fail(f"unknown task {task!r}; known: {', '.join(TASKS)}", EXIT_USAGE)
    induction = task == "induction"
    k, d_vocab = k or (8 if induction else 4), d_vocab or (8 if induction else 64)
    n_layers = n_layers or (2 if induction else 1)
    if induction and k < 2:
        fail("the induction task needs --k >= 2 (the last token must occur earlier)", EXIT_USAGE)
    output = output_path(output, make_dirs=make_dirs, suffixes=weights_io.SUFFIXES)
    cfg = ModelConfig(d_vocab=d_vocab, n_ctx=k, d_model=d_model, d_head=d_head, n_layers=n_layers, n_heads=n_heads)
    train_cfg = TrainConfig(steps=steps)
    with progress_bar(progress) as update:
        model = run_training(seed, cfg, train_cfg, on_step=lambda step, loss: update("training", step + 1, steps), task=task)
    weights = {k_: v.detach().numpy() for k_, v in model.state_dict().items()}
    weights_io.save(output, weights)
    info(f"wrote {output} (task {task}, n_ctx {k}, seed {seed}, d_vocab {d_vocab}, {n_layers} layer(s) x {n_heads} head(s))")
    if task == "max" and n_layers == 1 and n_heads == 1:
        report_manifest(k, seed, cfg, train_cfg, weights)


def report_manifest(k: int, seed: int, cfg, train_cfg, weights: dict) -> None:
    """Say whether freshly trained weights are the published model (loudly if they should be and are not)."""
    from compact_proofs.checker.weights import model_digest
    from compact_proofs.generator.training.manifest import compare

    digest = model_digest(weights)
    comparison = compare(k, seed, cfg, train_cfg, digest)
    style = {"match": "green", "mismatch": "bold red", "unlisted": "dim"}[comparison.status]
    info(f"[{style}]{escape(comparison.message(digest))}[/{style}]", level=0 if comparison.status == "mismatch" else 1)


@app.command()
def prove(
    model: Path = typer.Argument(..., help="model weights (.npz, .pt or .safetensors state dict)"),
    strategy: str = typer.Option("cubic", "--strategy", "-s", help="proof strategy; `compact-proofs strategies` lists them"),
    output: str = typer.Option(..., "--output", "-o", help="where to write the certificate (.msgpack)"),
    as_json: bool = typer.Option(False, "--json", help="print the checker's verdict as JSON (schema/verdicts-v1.schema.json)"),
    make_dirs: bool = MAKE_DIRS,
    workers: int = typer.Option(None, "--workers", "-j", min=1, help="processes for subcubic/best's searches (default: one per core, as memory allows)"),
    task: str = typer.Option(None, help="max (default), min or induction; other than max, or a two-layer or multi-head model, gives a format-v2 certificate (brute-force)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Prove a lower bound on MODEL's accuracy over all inputs and write the certificate.
    Exit 0 when the checker accepts it; 1 if the strategy's evidence is rejected; 2 usage; 3 an
    unreadable model; 4 a model too large for the strategy."""
    from compact_proofs.checker.cli import EXIT_LIMIT, EXIT_OF, JSON_SCHEMA, JSON_VERSION, record, summary
    from compact_proofs.checker.strategies import brute_force
    from compact_proofs.generator.proving.prover import ProofError, estimated_seconds, names, prove as run_prover

    from compact_proofs.checker.tasks import TASKS
    from compact_proofs.generator.weights_io import is_v2

    if strategy not in names():
        fail(f"unknown strategy {strategy!r}; `compact-proofs strategies` lists them", EXIT_USAGE)
    if task is not None and task not in TASKS:
        fail(f"unknown task {task!r}; known: {', '.join(TASKS)}", EXIT_USAGE)
    output = output_path(output, inputs=(model,), make_dirs=make_dirs)
    weights = load_weights(model)
    if (task not in (None, "max") or is_v2(weights)) and strategy != "brute-force":
        fail(f"{strategy} takes one-layer, one-head Max-of-K models; this one needs format v2: use --strategy brute-force", EXIT_USAGE)
    inputs = weights["embed.W_E"].shape[0] ** weights["pos_embed.W_pos"].shape[0]
    if strategy == "brute-force" and inputs > brute_force.MAX_INPUTS:  # before any forecast or work
        fail(f"brute-force cannot be checked here: {inputs} inputs exceed the brute-force limit {brute_force.MAX_INPUTS}", EXIT_LIMIT)
    forecast = estimated_seconds(strategy, weights)
    if forecast > 30:
        info(f"note: {strategy} on this model is expected to take about {forecast / 60:.0f} min")
    with progress_bar(progress) as update:
        try:
            proof = run_prover(weights, strategy, update, task=task, **({"workers": workers} if strategy == "subcubic/best" else {}))
        except ProofError as exc:
            fail(str(exc), EXIT_OF.get(exc.status, EXIT_REJECTED))
    weights_io.atomic_write(output, proof.raw)
    info(f"checker notes: {proof.verdict.notes}; {proof.verdict.seconds:.2f} s", level=2)
    if as_json:
        document = {"schema": JSON_SCHEMA, "version": JSON_VERSION, "exit_code": 0, "results": [record(str(output), proof.verdict)]}
        print(json.dumps(document, indent=2, allow_nan=False))
    else:
        print(summary(str(output), proof.verdict))


@app.command()
def check(
    certificates: List[Path] = typer.Argument(..., help="certificate files, or directories to search for *.msgpack"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document (schema/verdicts-v1.schema.json)"),
    pure: bool = typer.Option(False, "--pure", help="the standard-library second checker (brute-force and cubic)"),
    max_seconds: float = typer.Option(None, "--max-seconds", min=0.001, help="stop a check after this many seconds (exit 4)"),
    min_accuracy: str = typer.Option(None, "--min-accuracy", help="also require every bound >= X, a decimal or n/d, compared exactly (exit 1)"),
    model: Path = typer.Option(None, "--model", help="require every certificate to be about this model (.npz, .pt, .safetensors)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print nothing; the exit code is the verdict"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Check certificates with the standalone checker: exit 0 iff all are accepted; 1 a claim not
    established; 3 an invalid file; 4 a resource or time limit; 5 not supported by --pure."""
    import argparse

    from compact_proofs.checker.cli import fraction_in_unit_interval, run
    from compact_proofs.checker.weights import model_digest

    try:  # the standalone checker's own parsing: the same values mean the same gate
        gate = None if min_accuracy is None else fraction_in_unit_interval(min_accuracy)
    except argparse.ArgumentTypeError as exc:
        fail(f"--min-accuracy: {exc}", EXIT_USAGE)

    paths = []
    for given in certificates:
        found = sorted(given.rglob("*.msgpack")) if given.is_dir() else [given]
        if given.is_dir() and not found:
            fail(f"no certificates (*.msgpack) under {given}", EXIT_USAGE)
        paths += found
    digest = None if model is None else model_digest(load_weights(model))
    raise typer.Exit(run([str(c) for c in paths], as_json=as_json, show_progress=progress and err.is_terminal and not (as_json or quiet),
                         max_seconds=max_seconds, pure=pure, quiet=quiet, model_digest=digest,
                         min_accuracy=gate))


@app.command("strategies")
def list_strategies(as_json: bool = typer.Option(False, "--json", help="print a JSON list")) -> None:
    """List every strategy name `prove --strategy` accepts."""
    from compact_proofs.generator.proving.prover import names

    print(json.dumps(names()) if as_json else "\n".join(names()))


@app.command(context_settings={"allow_extra_args": False})
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
def models(
    k: List[int] = typer.Option(None, "--k", help="sequence lengths (default: the paper's 4 5 10 20)"),
    more_k: List[int] = typer.Argument(None, hidden=True),
    seeds_file: Path = typer.Option(None, "--seeds", help="a file of seeds, one per line (default: the paper's 151)"),
    n_seeds: int = typer.Option(None, "--n-seeds", min=1, help="only the first N seeds"),
    cache: Path = typer.Option(None, "--models", help="read weights cached here by `sweep` instead of training (for --write)"),
    write: bool = typer.Option(False, "--write", help="record these digests in compact_proofs/generator/training/models.json (maintainers)"),
    workers: int = typer.Option(2, min=1, help="local worker processes"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object per model"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train the published models again and compare their weights with the manifest (exit 0 iff all match)."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from compact_proofs.generator.training import manifest, zoo
    from compact_proofs.generator.training.zoo import paper_seeds

    ks = list(k or []) + list(more_k or []) or list(manifest.PAPER_KS)
    try:
        seeds = [int(x) for x in seeds_file.read_text().split()] if seeds_file else paper_seeds()
    except (OSError, ValueError) as exc:
        fail(f"cannot read seeds from {seeds_file}: {exc}")
    seeds = seeds[:n_seeds] if n_seeds else seeds
    jobs = [(k_, seed) for k_ in ks for seed in seeds]
    results = []
    with progress_bar(progress) as update, ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(zoo.reproduce, k_, seed, None if cache is None else str(cache)) for k_, seed in jobs]
        for done, future in enumerate(as_completed(futures), start=1):
            results.append(future.result())
            update("models", done, len(jobs))
    results.sort()
    if write:
        recorded = manifest.load() | {(k_, seed): digest for k_, seed, digest, _ in results}
        manifest.write(recorded)
        info(f"recorded {len(results)} digests in {manifest.PATH} ({len(recorded)} in all)")
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
def explain(
    certificate: Path = typer.Argument(..., help="a certificate file (.msgpack)"),
    as_json: bool = typer.Option(False, "--json", help="print the whole ledger as JSON (every cell with lost inputs)"),
    png: str = typer.Option(None, "--png", help="also draw not-certified and wrong inputs by max token to this PNG"),
) -> None:
    """Where a certificate's bound is lost: not-certified inputs by copies of the max and by max
    token against the wrong inputs there, and (subcubic) each approximation step's cost.
    Diagnostics, not proofs: exit 0 when the checker accepts the certificate."""
    from compact_proofs.checker.cli import EXIT_OF
    from compact_proofs.checker.errors import CheckError
    from compact_proofs.generator.studies import ledger

    out_png = output_path(png, inputs=(certificate,), suffixes=(".png",)) if png else None
    try:
        raw = certificate.read_bytes()
    except OSError as exc:
        fail(f"{certificate}: {exc.strerror or exc}")
    try:
        with progress_bar(err.is_terminal) as update:
            update("ledger: checking, enumerating, re-proving with swapped steps", 0, 1)
            report = ledger.explain(raw)
    except CheckError as exc:
        fail(f"{certificate}: {exc}")
    if not report["accepted"]:
        fail(f"{certificate}: the checker does not accept this certificate; there is no bound to explain", EXIT_OF["rejected"])
    if as_json:
        print(json.dumps(report, indent=1, allow_nan=False))
    else:
        _print_ledger(report)
        _print_exact_steps(report["exact_steps"])
    if out_png is not None:
        from compact_proofs.generator.studies.report import save_figure

        save_figure(ledger.figure(report), out_png)
        info(f"wrote {out_png}")


def _print_ledger(report: dict) -> None:
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(f"{report['strategy']}: bound {report['bound']} ({report['label']})")
    lost = report["where_lost"]
    if not lost["available"]:
        console.print(f"where the inputs are lost: {lost['reason']}")
    else:
        wrong = "-" if lost["wrong"] is None else f"{lost['wrong']}"
        console.print(f"{lost['not_certified']} of {lost['total']} inputs not certified; wrong: {wrong} ({lost['wrong_method']})")
        for title, rows, key in (("by copies of the max", lost["by_copies"], "copies"),
                                 ("by max token (the 8 losing most)", lost["by_max"], "max token")):
            table = Table(title=title)
            for column in (key, "inputs", "not certified", "wrong"):
                table.add_column(column, justify="right")
            ranked = [(i, r) for i, r in enumerate(rows) if r["inputs"]]
            if key == "max token":
                ranked = sorted(ranked, key=lambda ir: -ir[1]["not_certified"])[:8]
            for i, r in ranked:
                table.add_row(str(i), str(r["inputs"]), str(r["not_certified"]), "-" if r["wrong"] is None else str(r["wrong"]))
            console.print(table)
    steps = report["step_costs"]
    if not steps["available"]:
        console.print(f"step costs: {steps['reason']}")
        return
    reference = "unknown" if steps["reference_bound"] is None else f"{steps['reference_bound']:.4f}, gap {steps['gap']:.4f}"
    if not steps["steps"]:
        console.print(f"no swappable step; the reference, {steps['reference']}: {reference} (the per-case pessimisation: "
                      "worst mixtures of the non-max tokens, worst arrangements of the copies)")
        return
    table = Table(title=f"each step swapped for its tightest handling ({steps['reference']}: {reference})")
    for column in ("step", "handling", "tightest", "bound", "gain"):
        table.add_column(column)
    for s in steps["steps"]:
        table.add_row(s["step"], s["from"], s["to"], f"{s['bound']:.4f}", f"{s['gain']:+.4f}")
    console.print(table)
    cover = steps["gains_cover"]
    if cover is not None:
        console.print(f"the single-step gains cover {cover:.0%} of the gap to the {steps['reference']}"
                      + ("; the rest is in what every variant of this family shares" if cover < 0.9 else ""))


def _print_exact_steps(exact: dict) -> None:
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=160)
    if not exact["available"]:
        console.print(f"exact steps: {exact['reason']}")
        return
    table = Table(title=f"each step replaced by its exact counterpart ({exact['method']})")
    for column in ("step", "exact counterpart", "bound", "gain"):
        table.add_column(column)
    for s in exact["steps"]:
        table.add_row(s["step"], s["to"], f"{s['bound']:.4f}", f"{s['gain']:+.4f}")
    console.print(table)
    console.print(f"ceiling of the cell structure (every cell at the smallest gap where all its inputs are correct): "
                  f"{exact['ceiling']:.4f}")


@app.command()
def faithfulness(
    results: Path = typer.Argument(Path("results"), help="a sweep's results directory (its rows and model cache)"),
    output: Path = typer.Option(None, "--output", "-o", help="where to write (default: RESULTS/faithfulness)"),
    noise_seeds: int = typer.Option(10, min=0, help="K=4 seeds for the noise ablation"),
    rank_seeds: int = typer.Option(20, min=0, help="K=4 seeds for EQKE rank as an axis"),
    exact_seeds: int = typer.Option(30, min=0, help="K=4 seeds for the best subcubic variant's exact steps (about 40 s each)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """The faithfulness analyses: bound against EQKE's rank-one-ness, a noise ablation, EQKE rank as an axis, the best
    subcubic variant's exact steps (resumable)."""
    from compact_proofs.generator.studies import faithfulness as analyses, sweep as sweeping
    from compact_proofs.generator.training import zoo

    out = output or results / "faithfulness"
    rows = sweeping.load_rows(results)
    if not rows:
        fail(f"no sweep results under {results}")
    cache = results / "models"
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
    size: List[str] = typer.Option(None, "--size", help="d_vocab x n_ctx, e.g. 8x8 (default 8x8)"),
    n_seeds: int = typer.Option(20, "--n-seeds", min=1, help="the first N paper seeds"),
    workers: int = typer.Option(2, min=1, help="local worker processes"),
    report_only: bool = typer.Option(False, "--report-only", help="write the report from the rows there, run nothing"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """The induction study: two-layer models trained on induction, each certified by brute force
    over its whole domain (format v2); resumable, then the report."""
    from compact_proofs.checker.strategies.brute_force_v2 import MAX_INPUTS
    from compact_proofs.generator.studies import induction as study
    from compact_proofs.generator.training.zoo import paper_seeds

    sizes = []
    for text in size or ["8x8"]:
        try:
            v, n = (int(part) for part in text.lower().split("x"))
        except ValueError:
            fail(f"--size {text!r}: expected d_vocab x n_ctx, e.g. 8x8", EXIT_USAGE)
        if not (2 <= v and 2 <= n and v**n <= MAX_INPUTS):
            fail(f"--size {text!r}: needs d_vocab, n_ctx >= 2 and d_vocab^n_ctx <= {MAX_INPUTS}", EXIT_USAGE)
        sizes.append(study.Size(v, n))
    out = output or results / "report"
    if report_only and not study.load_rows(results):
        fail(f"no induction results under {results}")
    if not report_only:
        writable_directory(results)
    writable_directory(out)
    if not report_only:
        seeds = paper_seeds()[:n_seeds]
        with progress_bar(progress) as update:
            done = [0]

            def on_done(size_, seed) -> None:
                done[0] += 1
                update("induction: (size, seed)", done[0], len(sizes) * len(seeds))

            update("induction: (size, seed)", 0, len(sizes) * len(seeds))
            study.run(sizes, seeds, results, workers, on_done)
    study.report(results, out)
    info(f"wrote the induction report to {out}")


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


class _ClosedPipeGuard:
    """stdout that, once its reader has gone (`... | head -1`), discards the rest of the output, so
    the command ends with its own exit code (click would exit 1, which means a refuted claim)."""

    def __init__(self, stream):
        self._stream = stream

    def _divert(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._divert()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._divert()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main() -> None:
    """The console script: Ctrl-C and a closed pipe end with one line, never a traceback."""
    sys.stdout = _ClosedPipeGuard(sys.stdout)
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        sys.exit(130)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)


if __name__ == "__main__":
    sys.exit(main())

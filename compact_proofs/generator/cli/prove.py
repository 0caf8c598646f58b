"""`prove`, `check` and `strategies`: certificates written and checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import typer

from compact_proofs.generator import weights_io
from compact_proofs.generator.cli.app import (EXIT_REJECTED, EXIT_USAGE, FORCE, MAKE_DIRS, app, err, fail, info, load_model,
                                               load_weights, output_path, progress_bar)


@app.command()
def prove(
    model: Path = typer.Argument(..., help="model weights (.npz, .pt or .safetensors state dict)"),
    strategy: str = typer.Option("cubic", "--strategy", "-s", help="proof strategy; `compact-proofs strategies` lists them"),
    output: str = typer.Option(..., "--output", "-o", help="where to write the certificate (.msgpack)"),
    as_json: bool = typer.Option(False, "--json", help="print the checker's verdict as JSON (schema/verdicts-v1.schema.json)"),
    make_dirs: bool = MAKE_DIRS,
    force: bool = FORCE,
    workers: int = typer.Option(None, "--workers", "-j", min=1, help="processes for subcubic/best's searches (default: one per core, as memory allows)"),
    depth: int = typer.Option(1, "--depth", min=0, max=64, help="induction/<keys>/<query>: how many times the search may split a root cell along one branch"),
    task: str = typer.Option(None, help="max, min or induction; other than max, or a two-layer or multi-head model, gives a format-v2 "
                                        "certificate (brute-force; for induction also the compact proofs induction/*). It must be the "
                                        "task the model file records (`train` writes it)",
                             show_default="the file's task; max if it records none"),
    data: Path = typer.Option(None, "--data", help="a task given as data: a file of 'tokens -> labels' lines (SEMANTICS.md, "
                                                    "version 3); the certificate carries it and its sha256"),
    activation: str = typer.Option(None, help="for a state dict that does not record its architecture (format v3): relu, gelu, "
                                              "gelu_new or none"),
    normalization: str = typer.Option(None, help="... and none, LN or LNPre"),
    eps: str = typer.Option("1e-05", help="... and LayerNorm's eps, a decimal"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Prove a lower bound on MODEL's accuracy over all inputs and write the certificate.
    Exit 0 when the checker accepts it; 1 if the strategy's evidence is rejected; 2 usage (also a
    --task other than the one the model was trained on); 3 an unreadable model; 4 a model too large
    for the strategy."""
    from compact_proofs.checker.cli import EXIT_LIMIT, EXIT_OF
    from compact_proofs.checker.strategies import brute_force
    from compact_proofs.checker.strategies.induction import POSITIONS
    from compact_proofs.generator.proving.prover import ProofError, estimated_seconds, names, prove as run_prover

    from compact_proofs.checker.tasks import TASKS
    from compact_proofs.generator.weights_io import is_v2

    if strategy not in names():
        fail(f"unknown strategy {strategy!r}; `compact-proofs strategies` lists them", EXIT_USAGE)
    if task is not None and task not in tuple(TASKS) + ("modular-addition", "sort", "data"):
        fail(f"unknown task {task!r}; known: {', '.join(TASKS)}", EXIT_USAGE)
    output = output_path(output, inputs=(model,) + ((data,) if data else ()), make_dirs=make_dirs, force=force)
    if data is not None or activation is not None or normalization is not None or task in ("modular-addition", "sort", "data"):
        return _prove_v3(model, strategy, output, task, data, activation, normalization, eps, as_json, progress)
    weights, about = load_model(model)
    if about is not None and "architecture" in about:
        return _prove_v3(model, strategy, output, task, data, activation, normalization, eps, as_json, progress)
    trained_on = None if about is None else about["task"]
    if task is None:
        task = trained_on or "max"
        if trained_on is None:
            info(f"note: {model} does not record the task it was trained on (a file from another tool, or written before "
                 "`train` recorded it): proving max; --task chooses another")
    elif trained_on is not None and task != trained_on:
        fail(f"--task {task} does not match {model}: it was trained on {trained_on} (the file records it); drop --task, "
             f"or pass --task {trained_on}", EXIT_USAGE)
    compact = strategy.startswith("induction/")
    if compact and task != "induction":
        fail(f"{strategy} proves the induction task; this model's task is {task}", EXIT_USAGE)
    if (task != "max" or is_v2(weights)) and strategy != "brute-force" and not compact:
        fail(f"{strategy} takes one-layer, one-head Max-of-K models; this one needs format v2: use --strategy brute-force"
             + (" or a compact proof, induction/positions (`compact-proofs strategies` lists them)" if task == "induction" else ""), EXIT_USAGE)
    inputs = weights["embed.W_E"].shape[0] ** weights["pos_embed.W_pos"].shape[0]
    if strategy == "brute-force" and inputs > brute_force.MAX_INPUTS:  # before any forecast or work
        fail(f"brute-force cannot be checked here: {inputs} inputs exceed the brute-force limit {brute_force.MAX_INPUTS}", EXIT_LIMIT)
    forecast = estimated_seconds(strategy, weights)
    if forecast > 30:
        info(f"note: {strategy} on this model is expected to take about {forecast / 60:.0f} min")
    with progress_bar(progress) as update:
        try:
            options = {"workers": workers} if strategy == "subcubic/best" else {"depth": depth} if compact and strategy not in POSITIONS else {}
            proof = run_prover(weights, strategy, update, task=task, **options)
        except ProofError as exc:
            fail(str(exc), EXIT_OF.get(exc.status, EXIT_REJECTED))
    _write_and_report(output, proof, as_json)


def _prove_v3(model: Path, strategy: str, output: Path, task: str | None, data: Path | None, activation: str | None,
              normalization: str | None, eps: str, as_json: bool, progress: bool) -> None:
    """A format-v3 certificate (MLPs, LayerNorm, the tasks of SEMANTICS.md version 3)."""
    from compact_proofs.checker.cli import EXIT_OF
    from compact_proofs.generator.proving.prover import ProofError, prove_v3

    if strategy != "brute-force":
        fail(f"{strategy} takes one-layer, one-head Max-of-K models; models with MLPs or LayerNorm and the tasks of "
             "format v3 take --strategy brute-force", EXIT_USAGE)
    if (activation is None) != (normalization is None):
        fail("--activation and --normalization go together (the model's architecture)", EXIT_USAGE)
    if activation is not None:
        try:
            state = weights_io.load_state(model)
        except weights_io.WeightsError as exc:
            fail(str(exc))
        architecture = {"activation": activation, "normalization": normalization} | ({"eps": eps} if normalization != "none" else {})
        trained_on = None
        weights = state
    else:
        weights, about = load_model(model)
        architecture = (about or {}).get("architecture") or {"activation": "none", "normalization": "none"}
        trained_on = (about or {}).get("task")
    if data is not None:
        if task not in (None, "data"):
            fail(f"--data gives the task data, not {task}", EXIT_USAGE)
        task = "data"
    if task is None:
        if trained_on is None:
            fail(f"{model} does not record its task: give --task (or --data FILE)", EXIT_USAGE)
        task = trained_on
    elif trained_on is not None and task != trained_on and task != "data":
        fail(f"--task {task} does not match {model}: it was trained on {trained_on} (the file records it); drop --task, "
             f"or pass --task {trained_on}", EXIT_USAGE)
    task_file = None
    if data is not None:
        try:
            task_file = data.read_bytes()
        except OSError as exc:
            fail(f"cannot read {data}: {exc.strerror or exc}")
    with progress_bar(progress) as update:
        try:
            proof = prove_v3(weights, strategy, task, architecture, task_file, update)
        except ProofError as exc:
            fail(str(exc), EXIT_OF.get(exc.status, EXIT_REJECTED))
    _write_and_report(output, proof, as_json)


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


def _write_and_report(output: Path, proof, as_json: bool) -> None:
    """Write the accepted certificate, then its verdict as one line or as the --json document."""
    from compact_proofs.checker.cli import JSON_SCHEMA, JSON_VERSION, record, summary

    weights_io.atomic_write(output, proof.raw)
    info(f"checker notes: {proof.verdict.notes}; the checker took {proof.verdict.seconds:.2f} s", level=2)
    if as_json:
        document = {"schema": JSON_SCHEMA, "version": JSON_VERSION, "exit_code": 0, "results": [record(str(output), proof.verdict)]}
        print(json.dumps(document, indent=2, allow_nan=False))
    else:
        print(summary(str(output), proof.verdict))

"""`train` and `models`: train a model; re-train the published models and compare them with the manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import typer
from rich.markup import escape

from compact_proofs.generator import weights_io
from compact_proofs.generator.cli.app import (EXIT_USAGE, FORCE, MAKE_DIRS, Command, app, err, fail, info, output_path,
                                               progress_bar)


@app.command()
def train(
    output: str = typer.Option(..., "--output", "-o", help="where to write the weights (.npz, .pt or .safetensors)"),
    task: str = typer.Option("max", help="max (Max-of-K, the paper's), min, or induction (checker/tasks.py)"),
    k: int = typer.Option(None, "--k", min=1, help="sequence length n_ctx", show_default="4; induction: 8"),
    seed: int = typer.Option(..., help="training seed (the published models: the paper's seeds, 123 first); the same seed "
                                       "gives the same weights on every x86-64 CPU"),
    d_vocab: int = typer.Option(None, min=1, help="vocabulary size", show_default="64; induction: 8"),
    d_model: int = typer.Option(32, min=1, help="residual width"),
    d_head: int = typer.Option(32, min=1, help="attention head width"),
    n_layers: int = typer.Option(None, min=1, max=2, help="attention layers", show_default="1; induction: 2"),
    n_heads: int = typer.Option(1, min=1, help="heads per layer"),
    steps: int = typer.Option(3000, min=0, help="optimiser steps (batch 128, AdamW lr 1e-3, wd 0.01)"),
    loss_at: str = typer.Option("last", "--loss-at", help="last: the last position's label (the paper's recipe); every: every position's, "
                                                         "on its prefix (two-layer models; the induction study's recipe beyond 8 x 8)"),
    make_dirs: bool = MAKE_DIRS,
    force: bool = FORCE,
    recipe: str = typer.Option(None, help="a version-3 recipe instead (training/recipes.py): grokking (Nanda et al.'s modular "
                                          "addition, p = 113) or sort (two layers with MLPs and LayerNorm); the other model "
                                          "options do not apply"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train an attention-only transformer with the paper's recipe: by default one layer on
    Max-of-K; `--task induction` trains two layers on induction (SEMANTICS.md, version 2).
    The file records the task, seed and recipe: `prove` certifies the task the model was trained on."""
    from compact_proofs.checker.tasks import TASKS
    from compact_proofs.generator.training.model import ModelConfig
    from compact_proofs.generator.training.train import TrainConfig, about, train as run_training

    if recipe is not None:
        return _train_recipe(recipe, seed, output, make_dirs, force, progress)
    if task not in TASKS:
        fail(f"unknown task {task!r}; known: {', '.join(TASKS)}", EXIT_USAGE)
    induction = task == "induction"
    k, d_vocab = k or (8 if induction else 4), d_vocab or (8 if induction else 64)
    n_layers = n_layers or (2 if induction else 1)
    if induction and k < 2:
        fail("the induction task needs --k >= 2 (the last token must occur earlier)", EXIT_USAGE)
    output = output_path(output, make_dirs=make_dirs, suffixes=weights_io.SUFFIXES, force=force)
    cfg = ModelConfig(d_vocab=d_vocab, n_ctx=k, d_model=d_model, d_head=d_head, n_layers=n_layers, n_heads=n_heads)
    if loss_at not in ("last", "every"):
        fail(f"--loss-at must be last or every, not {loss_at!r}", EXIT_USAGE)
    if loss_at == "every" and n_layers == 1 and n_heads == 1:
        fail("--loss-at every needs the causal model: two layers or several heads (the paper's one-layer model reads the last position only)", EXIT_USAGE)
    train_cfg = TrainConfig(steps=steps, loss_at=loss_at)
    with progress_bar(progress) as update:
        model = run_training(seed, cfg, train_cfg, on_step=lambda step, loss: update("training", step + 1, steps), task=task)
    weights = {k_: v.detach().numpy() for k_, v in model.state_dict().items()}
    weights_io.save(output, weights, about(seed, cfg, train_cfg, task))
    info(f"wrote {output} (task {task}, n_ctx {k}, seed {seed}, d_vocab {d_vocab}, {n_layers} layer(s) x {n_heads} head(s))")
    if task == "max" and n_layers == 1 and n_heads == 1:
        report_manifest(k, seed, cfg, train_cfg, weights)


def _train_recipe(name: str, seed: int, output: str, make_dirs: bool, force: bool, progress: bool) -> None:
    from compact_proofs.generator.training import manifest, recipes

    if name not in recipes.RECIPES:
        fail(f"unknown recipe {name!r}; known: {', '.join(recipes.RECIPES)}", EXIT_USAGE)
    output = output_path(output, make_dirs=make_dirs, suffixes=weights_io.SUFFIXES, force=force)
    steps = recipes.RECIPES[name].steps
    with progress_bar(progress) as update:
        model, stats = recipes.train_recipe(name, seed, on_step=lambda step, loss: update(f"training ({name})", step, steps))
    weights = recipes.weights_of(model)
    weights_io.save(output, weights, recipes.about(recipes.RECIPES[name], seed, stats))
    info(f"wrote {output} (recipe {name}, task {recipes.RECIPES[name].task}, seed {seed}: {stats['steps_run']} steps in "
         f"{stats['seconds']:.0f} s, float32 accuracy {stats['float32_accuracy']:.4f})")
    from compact_proofs.checker.certificate import weights_digest

    comparison = manifest.compare_recipe(name, seed, weights_digest(weights))
    info(comparison, level=0 if comparison.startswith("MISMATCH") else 1)


def report_manifest(k: int, seed: int, cfg, train_cfg, weights: dict) -> None:
    """Say whether freshly trained weights are the published model (loudly if they should be and are not)."""
    from compact_proofs.checker.weights import model_digest
    from compact_proofs.generator.training.manifest import compare

    digest = model_digest(weights)
    comparison = compare(k, seed, cfg, train_cfg, digest)
    style = {"match": "green", "mismatch": "bold red", "unlisted": "dim"}[comparison.status]
    info(f"[{style}]{escape(comparison.message(digest))}[/{style}]", level=0 if comparison.status == "mismatch" else 1)


@app.command(cls=Command)
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

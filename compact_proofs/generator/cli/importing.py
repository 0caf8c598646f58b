"""`import`: a model trained by other code (TransformerLens, or the Hugging Face GPT-2 layout) as
a weights file that records its architecture (SEMANTICS.md, version 3), ready for `prove`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from compact_proofs.generator import weights_io
from compact_proofs.generator.cli.app import EXIT_USAGE, FORCE, MAKE_DIRS, app, fail, info, output_path


@app.command("import")
def import_model(
    source: Path = typer.Argument(..., help="a state dict (.pt, .safetensors or .npz)"),
    output: str = typer.Option(..., "--output", "-o", help="where to write the weights (.npz, .pt or .safetensors)"),
    layout: str = typer.Option(..., help="transformer-lens (a HookedTransformer's state dict) or gpt2 (Hugging Face GPT-2)"),
    config: Path = typer.Option(None, help="the model's config as JSON: TransformerLens' cfg.to_dict(), or GPT-2's config.json"),
    n_heads: int = typer.Option(None, min=1, help="gpt2: the number of heads, if no config is given"),
    make_dirs: bool = MAKE_DIRS,
    force: bool = FORCE,
) -> None:
    """Convert another tool's model to this project's weights file, refusing (one line, exit 3)
    anything outside the semantics: another activation, RMSNorm, rotary embeddings, a bidirectional
    mask, ... `prove --task ...` then certifies it (the task is not in the file)."""
    from compact_proofs.generator import importers

    if layout not in ("transformer-lens", "gpt2"):
        fail(f"unknown layout {layout!r}: transformer-lens or gpt2", EXIT_USAGE)
    output = output_path(output, inputs=(source,) + ((config,) if config else ()), make_dirs=make_dirs,
                         suffixes=weights_io.SUFFIXES, force=force)
    try:
        cfg = json.loads(config.read_text()) if config is not None else None
    except (OSError, ValueError) as exc:
        fail(f"cannot read the config {config}: {exc}")
    if layout == "transformer-lens" and cfg is None:
        fail("a TransformerLens state dict does not say its activation, normalization or eps: give --config (cfg.to_dict() "
             "as JSON)", EXIT_USAGE)
    try:
        state = weights_io.load_state(source)
        weights, architecture = (importers.from_transformer_lens(state, cfg) if layout == "transformer-lens"
                                 else importers.from_gpt2(state, cfg, n_heads))
    except weights_io.WeightsError as exc:
        fail(f"{source}: {exc}")
    weights_io.save(output, weights, {"task": None, "architecture": architecture, "imported_from": layout})
    info(f"wrote {output} ({layout}: {architecture}); prove it with `compact-proofs prove {output} -s brute-force --task TASK`")

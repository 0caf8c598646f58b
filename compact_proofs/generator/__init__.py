"""compact-proofs' untrusted generator: training, proof search, sweeps and reports.

Importing it pins the environment variables that make torch's training bit-reproducible on every
x86-64 CPU (generator/training/portable.py); they must be set before torch loads.
"""

from compact_proofs.generator.training import portable as _portable

_portable.pin()

from compact_proofs import __version__  # noqa: E402  (one version, compact_proofs/__init__.py)


def main() -> None:
    """The `compact-proofs` command: the generator's CLI, or one line saying what to install."""
    import sys

    try:
        from compact_proofs.generator.cli import main as cli
    except ImportError as exc:  # a checker-only install: torch, typer and the rest are the `generator` extra
        print(f"error: compact-proofs needs the generator's dependencies ({exc.name or exc}): "
              "pip install 'compact-proofs[generator]' (the checker alone is compact-proofs-check)", file=sys.stderr)
        sys.exit(3)
    cli()

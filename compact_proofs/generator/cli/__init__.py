"""compact-proofs: train Max-of-K models, prove accuracy bounds, check certificates.

The typer app and what its commands share are in app.py; the commands, by group: train.py
(`train`, `models`), prove.py (`prove`, `check`, `strategies`), importing.py (`import`), explain.py (`explain`) and
studies.py (`sweep`, `report`, `faithfulness`, `scaling`, `induction`). Importing this package
registers every command on `app`.
"""

from __future__ import annotations

import os
import sys

# each import registers its commands on `app`, in this order in --help
from compact_proofs.generator.cli import train  # noqa: F401  isort: skip
from compact_proofs.generator.cli import prove  # noqa: F401  isort: skip
from compact_proofs.generator.cli import importing  # noqa: F401  isort: skip
from compact_proofs.generator.cli import explain  # noqa: F401  isort: skip
from compact_proofs.generator.cli import studies  # noqa: F401  isort: skip
from compact_proofs.generator.cli.app import _ClosedPipeGuard, app, err

__all__ = ["app", "main"]


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

"""The checker is independent: no torch, sympy, mpmath or generator, statically and at run time."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.helpers import encode
from tests.models import build

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_THIRD_PARTY = {"msgpack", "numpy", "flint", "rich"}
FORBIDDEN = ("torch", "sympy", "mpmath", "compact_proofs.generator", "transformer_lens", "tests", "typer", "matplotlib", "dask")


def imported_modules(path: Path) -> set[str]:
    """Top-level names, and compact_proofs.<subpackage> for the project's own."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            names.add(node.module)
    return {".".join(n.split(".")[:2]) if n.startswith("compact_proofs.") else n.split(".")[0] for n in names}


def test_checker_imports_only_stdlib_msgpack_numpy_flint():
    for path in (ROOT / "compact_proofs" / "checker").rglob("*.py"):
        for name in imported_modules(path):
            assert name not in FORBIDDEN, f"{path} imports {name}"
            assert name == "compact_proofs.checker" or name in sys.stdlib_module_names or name in ALLOWED_THIRD_PARTY, (path, name)


def test_checker_runs_with_torch_sympy_mpmath_and_generator_unavailable(tmp_path):
    weights = build("gaussian", 5, V=4, N=3, D=4, H=2, scale=1.0, biases=True, dtype=np.float32)
    path = tmp_path / "cert.msgpack"
    path.write_bytes(encode(weights, claimed=0))
    blocker = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in FORBIDDEN)  # unimportable
    code = blocker + f"from compact_proofs.checker.cli import main\nsys.exit(main([{str(path)!r}, '--no-progress']))\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("ACCEPTED")

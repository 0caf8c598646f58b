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
FORBIDDEN = ("torch", "sympy", "mpmath", "generator", "transformer_lens", "tests")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_checker_imports_only_stdlib_msgpack_numpy_flint():
    for path in (ROOT / "checker").rglob("*.py"):
        for name in imported_modules(path):
            assert name not in FORBIDDEN, f"{path} imports {name}"
            assert name == "checker" or name in sys.stdlib_module_names or name in ALLOWED_THIRD_PARTY, (path, name)


def test_checker_runs_with_torch_sympy_mpmath_and_generator_unavailable(tmp_path):
    weights = build("gaussian", 5, V=4, N=3, D=4, H=2, scale=1.0, biases=True, dtype=np.float32)
    path = tmp_path / "cert.msgpack"
    path.write_bytes(encode(weights, claimed=0))
    blocker = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in FORBIDDEN)
    code = blocker + f"from checker.cli import main\nsys.exit(main([{str(path)!r}, '--no-progress']))\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("ACCEPTED")

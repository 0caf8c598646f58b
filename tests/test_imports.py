"""The package's import graph: no circles, and the generator's roles depend one way.

Every `import` and `from ... import` in compact_proofs counts, those inside functions included (a
function-level import is how a circle hides). `from a.b import c` is an edge to the module a.b.c
when c is a module, else to a.b. The roles of the generator: training (models, the recipe, the
manifest) <- proving (proof search) <- studies (sweeps, reports, analyses) <- cli; weights_io is
shared by all of them and depends on none.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = "compact_proofs.generator"
# role -> the roles it may import (besides itself, weights_io and the checker)
MAY_IMPORT = {
    "training": set(),
    "proving": {"training"},
    "studies": {"training", "proving"},
    "cli": {"training", "proving", "studies"},
}


def modules(package_dir: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports, anywhere in its code."""
    mods = modules(package_dir)

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for module, path in mods.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in mods else base for alias in node.names]
            else:
                continue
            for target in targets:
                found = owner(target)
                if found is not None and found != module:
                    graph[module].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_compact_proofs_has_no_import_cycles():
    graph = import_graph(ROOT / "compact_proofs")
    assert len(graph) > 60 and graph["compact_proofs.checker.weights"]  # the walk sees the package
    assert cycles(graph) == []


def role(module: str) -> str | None:
    if not module.startswith(GENERATOR + "."):
        return None
    return module.split(".")[2]


def test_generator_roles_depend_one_way():
    graph = import_graph(ROOT / "compact_proofs")
    wrong = []
    for module, targets in graph.items():
        mine = role(module)
        for target in targets:
            theirs = role(target)
            if mine is None or theirs is None or theirs == mine:
                continue
            if mine == "weights_io" or (mine in MAY_IMPORT and theirs in MAY_IMPORT and theirs not in MAY_IMPORT[mine]):
                wrong.append(f"{module} -> {target}")
    assert wrong == []
    assert {role(m) for m in graph if role(m)} >= set(MAY_IMPORT) | {"weights_io"}


@pytest.mark.parametrize("source, expected", [
    ({"a.py": "import pkg.b\n", "b.py": "def f():\n    from pkg import a\n"}, [["pkg.a", "pkg.b"]]),  # in a function
    ({"a.py": "from . import b\n", "b.py": "from .c import x\n", "c.py": "from pkg.a import y\n"}, [["pkg.a", "pkg.b", "pkg.c"]]),
    ({"a.py": "import pkg.b\n", "b.py": "import os\n"}, []),
])
def test_the_walk_finds_a_planted_cycle(tmp_path, source, expected):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, text in source.items():
        (package / name).write_text(text)
    assert cycles(import_graph(package)) == expected

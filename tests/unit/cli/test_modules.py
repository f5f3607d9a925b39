"""The CLI's modules: each imports on its own, none imports another in a cycle (at the
top or inside a function), and none imports another module's private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import millrace_cli

PACKAGE = Path(millrace_cli.__file__).parent
MODULES = sorted(f"millrace_cli.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def imports_of(module: str) -> list[tuple[str, list[str]]]:
    """Every ``import``/``from … import`` in the module: (module imported, names taken)."""
    tree = ast.parse((PACKAGE / f"{module.rsplit('.', 1)[1]}.py").read_text())
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def graph() -> dict[str, set[str]]:
    return {m: {i for i, _ in imports_of(m) if i in MODULES} for m in MODULES}


def cycle_from(start: str, edges: dict[str, set[str]]) -> list[str] | None:
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        path.append(node)
        for nxt in sorted(edges[node]):
            if found := visit(nxt):
                return found
        path.pop()
        return None

    return visit(start)


def test_no_module_imports_another_in_a_cycle() -> None:
    edges = graph()
    assert edges["millrace_cli.main"] >= {"millrace_cli.models", "millrace_cli.sites"}
    cycles = [c for m in MODULES if (c := cycle_from(m, edges))]
    assert cycles == []


def test_no_private_name_is_imported_across_modules() -> None:
    private = [
        f"{module}: from {source} import {name}"
        for module in MODULES
        for source, names in imports_of(module)
        for name in names
        if name.startswith("_") and name != "__future__"
    ]
    assert private == []


ALONE = """
import importlib, sys
for module in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.startswith("millrace_cli")]:
        del sys.modules[loaded]
    importlib.import_module(module)
"""


def test_every_module_imports_on_its_own() -> None:
    """Each with none of the CLI loaded before it (in an interpreter of its own), so the
    order the others were imported in hides no cycle."""
    run = subprocess.run(
        [sys.executable, "-c", ALONE, *MODULES], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr

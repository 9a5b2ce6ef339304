"""Layering: arrows in the import graph point down (docs/architecture.md).

The graph is read with ``ast`` from the source (every ``import`` and ``from … import``,
including those inside functions), so a lazy import counts like a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: (importing layer, imported layer it must never reach) -- prefixes of dotted module names
FORBIDDEN: list[tuple[str, str]] = [
    *[(low, high) for low in ("estagbench.data", "estagbench.models", "estagbench.nn", "baselines")
      for high in ("estagbench.tables", "estagbench.plots", "estagbench.cli", "estagbench.runner",
                   "estagbench.rollout", "estagbench.bench", "estagbench.simulate")],
    *[(low, "estagbench.data") for low in ("estagbench.models", "estagbench.nn", "baselines")],
    ("estagbench.tables", "estagbench.plots"),
    ("estagbench.tables", "estagbench.cli"),
    ("estagbench.plots", "estagbench.cli"),
    ("estagbench.rollout", "estagbench.cli"),
    ("estagbench.simulate", "estagbench.cli"),
    ("estagbench.protocol", "estagbench."),
]


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """``module -> modules it imports`` for every ``.py`` under ``root/<package>``."""
    modules = {_module_name(p, root): p for pkg in packages for p in (root / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join([*base, node.module] if node.module else base)
                else:
                    target = node.module or ""
                out.add(target)
                out.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules)
        graph[mod] = out
    return graph


def violations(graph: dict[str, set[str]], rules: list[tuple[str, str]] = FORBIDDEN) -> list[str]:
    def under(name: str, prefix: str) -> bool:
        return name.startswith(prefix) if prefix.endswith(".") else name == prefix or name.startswith(prefix + ".")

    return sorted(f"{mod} imports {dep} ({high} is above {low})" for mod, deps in graph.items() for dep in deps
                  for low, high in rules if under(mod, low) and under(dep, high))


def test_no_import_points_up() -> None:
    found = violations(import_graph(REPO, ("estagbench", "baselines")))
    assert not found, "\n".join(found)


def test_the_layer_check_finds_a_planted_upward_import(tmp_path: Path) -> None:
    """A data module that imports a table formatter inside a function, and a relative import from tables to plots."""
    pkg = tmp_path / "estagbench"
    for sub, text in {
        "__init__.py": "",
        "plots.py": "",
        "data/__init__.py": "",
        "data/loader.py": "def f():\n    from ..tables import _format\n",
        "tables/__init__.py": "from .. import plots\n",
        "tables/_format.py": "",
    }.items():
        (pkg / sub).parent.mkdir(parents=True, exist_ok=True)
        (pkg / sub).write_text(text)
    found = violations(import_graph(tmp_path, ("estagbench",)))
    assert any(v.startswith("estagbench.data.loader imports estagbench.tables") for v in found), found
    assert any(v.startswith("estagbench.tables imports estagbench.plots") for v in found), found


@pytest.mark.parametrize("module", ["estagbench.protocol"])
def test_protocol_imports_nothing_from_the_package(module: str) -> None:
    graph = import_graph(REPO, ("estagbench",))
    assert not [d for d in graph[module] if d.startswith("estagbench")]

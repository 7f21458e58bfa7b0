"""The package's layout rules, checked from the source so that a new module cannot quietly break them.

Each rule is one a newcomer relies on when finding their way: modules live in rooms (only the package's
``__init__`` and the Dagster entry point at the top), SQL has one home per store (SQLAlchemy is imported
only by ``warehouse/`` and the control tables' ``control/store.py``), modules do not import each other
in a circle (imports inside functions count: they hide a cycle, they do not break it), and test modules
share code through helpers and ``conftest.py``, never by importing one another.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import roster_pipeline

PACKAGE = Path(roster_pipeline.__file__).parent
TESTS = Path(__file__).parent


@dataclass(frozen=True)
class ImportOf:
    module: str  # the module imported (a submodule where ``from package import submodule``)
    type_only: bool  # under ``if TYPE_CHECKING:``


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_of(root: Path) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def absolute_module(importer: str, importer_path: Path, node: ast.ImportFrom) -> str:
    """The module a ``from ... import`` names, relative imports (``from .x import y``) resolved."""
    if node.level == 0:
        return node.module or ""
    package = importer.split(".")
    if importer_path.name != "__init__.py":
        package = package[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def imports_in(path: Path, known: dict[str, Path]) -> Iterator[ImportOf]:
    importer = next(name for name, known_path in known.items() if known_path == path)

    def visit(node: ast.AST, type_only: bool) -> Iterator[ImportOf]:
        for child in ast.iter_child_nodes(node):
            guarded = type_only or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            if isinstance(child, ast.Import):
                yield from (ImportOf(alias.name, guarded) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                module = absolute_module(importer, path, child)
                submodules = [f"{module}.{a.name}" for a in child.names]
                named = [m for m in submodules if m in known]
                if len(named) < len(submodules):
                    yield ImportOf(module, guarded)
                yield from (ImportOf(m, guarded) for m in named)
            yield from visit(child, guarded)

    yield from visit(ast.parse(path.read_text(encoding="utf-8")), False)


def test_only_the_package_init_and_the_dagster_entry_point_lie_at_the_top() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "definitions.py"]


def test_sqlalchemy_is_imported_only_by_the_warehouse_and_the_control_store() -> None:
    known = modules_of(PACKAGE)
    importers = {
        name
        for name, path in known.items()
        for found in imports_in(path, known)
        if found.module.split(".")[0] == "sqlalchemy"
    }
    outside = sorted(
        name
        for name in importers
        if not name.startswith("roster_pipeline.warehouse") and name != "roster_pipeline.control.store"
    )
    assert outside == []
    assert "roster_pipeline.control.store" in importers and any(
        name.startswith("roster_pipeline.warehouse.") for name in importers
    ), "the rule above must be looking at real imports"


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                connect(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            connect(module)
    return cycles


def test_import_cycles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]


def test_no_module_of_the_package_imports_itself_in_a_circle() -> None:
    known = modules_of(PACKAGE)
    graph = {
        name: {
            found.module
            for found in imports_in(path, known)
            if not found.type_only and found.module in known and found.module != name
        }
        for name, path in known.items()
    }
    assert sum(len(targets) for targets in graph.values()) > 100, "the graph must hold the real imports"
    assert import_cycles(graph) == []


def test_no_test_module_imports_another_or_the_conftest() -> None:
    """Shared code lives in helper modules; fixtures reach tests through pytest (a conftest imported as a
    module is a second copy of it, with its own module-level state)."""
    known = modules_of(TESTS)
    offenders = sorted(
        f"{name} imports {found.module}"
        for name, path in known.items()
        for found in imports_in(path, known)
        if found.module in known
        and (found.module.rsplit(".", 1)[-1].startswith("test_") or found.module.endswith(".conftest"))
    )
    assert offenders == []

"""The house rules of DESIGN.md, read from the code: arrows point down, no cycles, and the
Dagster code location and the API stay clear of the storage engines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("memorose_dagster", "api", "assets", "sensors", "memorose_client")
ENGINES = {"rocksdict", "tantivy", "lancedb", "pysyncobj"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


MODULES = _modules()


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _imports(name: str) -> tuple[set[str], set[str]]:
    """(our modules, third-party top-level packages) that ``name`` imports at run time."""
    tree = ast.parse(MODULES[name].read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    ours, theirs = set(), set()
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom) or _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        for target in targets:
            if target.split(".")[0] in PACKAGES:
                while target not in MODULES and "." in target:
                    target = target.rpartition(".")[0]
                ours.add(target)
            else:
                theirs.add(target.split(".")[0])
    ours.discard(name)
    return ours, theirs


GRAPH = {name: _imports(name) for name in MODULES}


def _closure(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        for target in GRAPH[current][0]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _in(name: str, *rooms: str) -> bool:
    return any(name == room or name.startswith(room + ".") for room in rooms)


def test_no_import_cycles():
    cycles = sorted(name for name in MODULES if name in _closure(name)
                    and not MODULES[name].name == "__init__.py")
    assert cycles == []


@pytest.mark.parametrize(("room", "allowed"), [
    ("memorose_dagster.log", ("memorose_dagster.log", "memorose_dagster.records",
                              "memorose_dagster.ids")),
    ("memorose_dagster.index", ("memorose_dagster.index", "memorose_dagster.lexicon")),
    ("memorose_dagster.memory", ("memorose_dagster.memory", "memorose_dagster.records",
                                 "memorose_dagster.ids", "memorose_dagster.lexicon")),
    ("memorose_dagster.models", ("memorose_dagster.models", "memorose_dagster.errors")),
    ("memorose_dagster.records", ("memorose_dagster.ids",)),
    ("memorose_client", ("memorose_client", "memorose_dagster.ids")),
])
def test_lower_rooms_import_only_what_lies_below(room, allowed):
    wrong = {(name, target) for name in MODULES if _in(name, room)
             for target in GRAPH[name][0] if not _in(target, *allowed)}
    assert wrong == set()


def test_memory_is_pure_logic():
    io = ENGINES | {"httpx", "dagster", "starlette", "duckdb", "polars", "google", "onnxruntime"}
    found = {(name, lib) for name in MODULES if _in(name, "memorose_dagster.memory")
             for lib in GRAPH[name][1] & io}
    assert found == set()


@pytest.mark.parametrize("room", ["assets", "sensors", "memorose_dagster.pipeline.definitions"])
def test_the_dagster_code_location_loads_no_storage_engine(room):
    for name in [n for n in MODULES if _in(n, room)]:
        reached = {name} | _closure(name)
        engines = {(m, lib) for m in reached for lib in GRAPH[m][1] & ENGINES}
        assert engines == set(), name


def test_only_the_definitions_root_imports_assets_and_sensors():
    importers = {name for name in MODULES for target in GRAPH[name][0]
                 if _in(target, "assets", "sensors") and not _in(name, "assets", "sensors")}
    assert importers == {"memorose_dagster.pipeline.definitions"}


def test_the_api_calls_node_methods_only():
    hidden = {"store", "log", "indexer", "members", "access", "retriever", "_node"}
    for name in [n for n in MODULES if _in(n, "api")]:
        ours, theirs = GRAPH[name]
        assert not {t for t in ours if _in(t, "memorose_dagster.log", "memorose_dagster.index",
                                           "memorose_dagster.pipeline", "assets", "sensors")}
        assert not theirs & (ENGINES | {"dagster"}), name
        tree = ast.parse(MODULES[name].read_text())
        reached = {node.attr for node in ast.walk(tree)
                   if isinstance(node, ast.Attribute) and node.attr in hidden}
        assert reached == set(), name


def test_at_most_six_loose_modules_at_the_package_root():
    loose = [p.name for p in (ROOT / "memorose_dagster").glob("*.py") if p.name != "__init__.py"]
    assert len(loose) <= 6, loose

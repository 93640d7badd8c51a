"""The package's shape: no import cycles (imports inside functions included), a leaf ``config``
module, no private name imported from another package, and one error base."""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
import re
from pathlib import Path

import fkt_plugin
from fkt_plugin import errors

PACKAGE = Path(fkt_plugin.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import statement, at any depth (functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports (``from a.b import c`` counts ``a.b.c`` when
    that is a module)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for module, names in imports_of(path):
            for target in [module, *(f"{module}.{n}" for n in names)]:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    graph = import_graph()
    assert len(graph) > 50  # the whole package was read
    assert cycles(graph) == []


def test_config_is_a_leaf_that_imports_no_registry() -> None:
    assert import_graph()["fkt_plugin.config"] <= {"fkt_plugin.errors"}


def test_no_private_name_is_imported_from_another_package() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        here = module_name(path).rsplit(".", 1)[0]
        for module, names in imports_of(path):
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            if module.startswith("fkt_plugin") and private and module.rsplit(".", 1)[0] != here:
                offenders.append(f"{path.name}: from {module} import {', '.join(private)}")
    assert offenders == []


def test_every_error_the_package_defines_derives_from_one_base() -> None:
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if c.__module__ == errors.__name__]
    assert len(classes) >= 8
    assert all(issubclass(c, errors.FKTError) for c in classes)


def test_no_dataset_adapter_imports_another() -> None:
    from fkt_plugin.data import DATASETS

    adapters = {DATASETS[name].__module__ for name in DATASETS}
    assert len(adapters) >= 6
    graph = import_graph()
    assert {a: graph[a] & adapters for a in adapters} == {a: set() for a in adapters}


def test_every_command_line_tool_is_installed_and_loads_its_entry_point() -> None:
    """The command-line tests run the tools' entry points inside pytest (tests.helpers.run_tool):
    this checks that the installed commands lead to those functions."""
    import sys
    from importlib.metadata import entry_points

    tools = {ep.name: ep for ep in entry_points(group="console_scripts")
             if ep.value.startswith("fkt_plugin.")}
    assert set(tools) == {"fkt-train", "fkt-eval", "fkt-compare", "fkt-data", "fkt-export",
                          "fkt-bench", "fkt-cluster", "fkt-study"}
    for name, ep in tools.items():
        assert callable(ep.load()) and ep.value.endswith(":main"), name
        assert (Path(sys.executable).parent / name).is_file(), f"{name} is not installed"


def _modules_with_examples() -> list[str]:
    return sorted(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
                  .removesuffix(".__init__")
                  for path in PACKAGE.rglob("*.py") if ">>> " in path.read_text())


def test_every_docstring_example_runs_as_written() -> None:
    modules = _modules_with_examples()
    assert "fkt_plugin" in modules and "fkt_plugin.losses" in modules
    for name in modules:
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, name


README = PACKAGE.parent / "README.md"


def _layout_block() -> list[str]:
    text = README.read_text().split("## Layout", 1)[1]
    return text.split("```", 2)[1].splitlines()


def test_the_readme_layout_names_every_module_and_only_those() -> None:
    lines = _layout_block()
    # Top-level entries: `  name.py` or `  folder/` at two spaces; a folder's own modules are
    # named in its description, up to the next entry.
    entries: dict[str, str] = {}
    current = None
    for line in lines:
        if line.startswith("  ") and not line.startswith("   ") and line.split():
            current = line.split()[0]
            entries[current] = line
        elif current is not None and line.startswith("   "):
            entries[current] += " " + line.strip()
        elif not line.startswith(" "):
            current = None
    package = {p.name + ("/" if p.is_dir() else "") for p in PACKAGE.iterdir()
               if p.name != "__pycache__" and p.name != "__init__.py"}
    assert set(entries) == package
    for folder in (e for e in entries if e.endswith("/")):
        modules = {p.name for p in (PACKAGE / folder).glob("*.py") if p.name != "__init__.py"}
        named = set(re.findall(r"[a-z_0-9]+\.py", entries[folder]))
        assert named == modules, folder

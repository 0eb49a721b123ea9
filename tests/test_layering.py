"""The layering of ``reconciler/`` (``reconciler/engine/__init__.py``), checked on the
import graph: every module is parsed with ``ast`` and each ``reconciler.*`` import
it makes is collected, those inside functions too (lazy imports run all the same).
Imports under ``if TYPE_CHECKING:`` never run and are exempt.

    cli, api, client          front ends: parse, render, serve; no drivers
        │
    engine, control           use cases and the reconcile loop
        │
    runtime, network, images, volumes, state     drivers
        │
    model, plan, manifests    the pure core

``client`` is the remote CLI's hot path: the standard library and the stdlib-only
parts of ``reconciler`` (``wire``, ``engine.models``, ``engine.errors``), nothing
else, which is checked over everything it imports, transitively.

Dynamic imports (``importlib.import_module("reconciler.client." + name)``) are not
seen; they are few and named in their modules.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"

FRONT_ENDS = {"cli", "api", "client"}
USE_CASES = {"engine", "control"}
DRIVERS = {"runtime", "network", "images", "volumes", "state"}
CORE = {"model", "plan"}

#: Imports that break a contract today and are being fixed. Each entry is
#: (importer, imported module); the goal is an empty set.
ALLOWED: dict[tuple[str, str], str] = {
    # login/logout write registry credentials under the root with the distribution
    # client itself: not engine operations (yet), so no route serves them either.
    ("reconciler.cli.image_commands", "reconciler.images.distribution"): "registry login is no engine op yet",
}


class Import(NamedTuple):
    importer: str  # reconciler.control.once
    module: str  # reconciler.cli.manifest_commands (or a third-party top-level name)
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that may run: the bodies of ``if TYPE_CHECKING:`` left out."""
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))


def _resolve_relative(importer: str, is_package: bool, level: int, module: str | None) -> str:
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, module] if module else base)


def imports_in(source: str, name: str, *, is_package: bool = False) -> list[Import]:
    """What module ``name`` (its text ``source``) imports at run time: ``reconciler.*``
    modules (a name imported from a package is its submodule when there is one) and
    the dotted names of everything else."""
    found: list[Import] = []
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(Import(name, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            relative = node.level > 0
            module = _resolve_relative(name, is_package, node.level, node.module) if relative else node.module or ""
            if module == "reconciler" or module.startswith("reconciler."):
                for alias in node.names:
                    submodule = f"{module}.{alias.name}"
                    found.append(Import(name, submodule if submodule in MODULES else module, node.lineno))
            else:
                found.append(Import(name, module, node.lineno))
    return found


def imports_of(name: str) -> list[Import]:
    path = MODULES[name]
    return imports_in(path.read_text(), name, is_package=path.name == "__init__.py")


GRAPH: dict[str, list[Import]] = {name: imports_of(name) for name in MODULES}


def layer(module: str) -> str:
    """``reconciler.control.once`` → ``control``; ``reconciler.exitcodes`` → ``exitcodes``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _ours(module: str) -> bool:
    return module == "reconciler" or module.startswith("reconciler.")


def _third_party(module: str) -> bool:
    top = module.split(".")[0]
    return not _ours(module) and top not in sys.stdlib_module_names and top != "__future__"


def violations(importers: set[str], forbidden: set[str]) -> list[str]:
    """``importer:line imports module`` for each import from a module of a layer in
    ``importers`` into a layer in ``forbidden``, allowlisted ones left out."""
    found = []
    for name, imports in GRAPH.items():
        if layer(name) not in importers:
            continue
        for item in imports:
            if _ours(item.module) and layer(item.module) in forbidden and (name, item.module) not in ALLOWED:
                found.append(f"{name}:{item.line} imports {item.module}")
    return found


def test_imports_are_collected_as_they_run() -> None:
    """A guard against a test that passes by seeing nothing: lazy imports count,
    TYPE_CHECKING ones do not, relative ones are resolved, names from a package are
    its submodules."""
    source = """
from __future__ import annotations
import json
from typing import TYPE_CHECKING
from reconciler.engine import errors
if TYPE_CHECKING:
    from reconciler.cli import main
else:
    import reconciler.exitcodes
def later():
    from reconciler.control import once
    from . import stacks
"""
    found = {item.module for item in imports_in(source, "reconciler.engine.example")}
    assert found == {
        "__future__",
        "json",
        "typing",
        "reconciler.engine.errors",
        "reconciler.exitcodes",
        "reconciler.control.once",
        "reconciler.engine.stacks",
    }
    assert len(MODULES) > 50 and len(GRAPH["reconciler.cli.main"]) > 5


def test_use_cases_do_not_import_front_ends() -> None:
    assert violations(USE_CASES, FRONT_ENDS) == []


def test_drivers_do_not_import_use_cases_front_ends_or_the_wire() -> None:
    assert violations(DRIVERS, USE_CASES | FRONT_ENDS | {"wire"}) == []


def test_the_core_imports_no_driver_use_case_or_front_end() -> None:
    assert violations(CORE, DRIVERS | USE_CASES | FRONT_ENDS | {"wire"}) == []


def test_the_cli_does_not_import_drivers() -> None:
    """Commands ask the engine (``connect.engine(args)``), in-process or remote."""
    assert violations({"cli"}, DRIVERS) == []


def test_the_api_does_not_import_drivers() -> None:
    assert violations({"api"}, DRIVERS) == []


def test_the_wire_imports_only_the_engine_models_and_errors() -> None:
    """The route table and framing are shared by server and client: nothing heavier."""
    found = [
        f"{name}:{item.line} imports {item.module}"
        for name, imports in GRAPH.items()
        if layer(name) == "wire"
        for item in imports
        if _ours(item.module) and not _stdlib_part(item.module)
    ]
    assert found == []


def _closure(start: set[str]) -> set[str]:
    """Every ``reconciler`` module importing ``start`` runs (parent packages too)."""
    seen: set[str] = set()
    pending = list(start)
    while pending:
        name = pending.pop()
        if name in seen or name not in MODULES:
            continue
        seen.add(name)
        parts = name.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run first
        pending.extend(item.module for item in GRAPH[name] if _ours(item.module))
    return seen


CLIENT = {name for name in MODULES if layer(name) == "client"}


def _stdlib_part(module: str) -> bool:
    """The parts of ``reconciler`` made of the standard library alone, for the client
    and the wire."""
    return (
        module in ("reconciler", "reconciler.engine", "reconciler.engine.errors", "reconciler.exitcodes")
        or layer(module) == "wire"
        or module == "reconciler.engine.models"
        or module.startswith("reconciler.engine.models.")
    )


def _client_may_reach(module: str) -> bool:
    return layer(module) == "client" or _stdlib_part(module)


def test_the_client_reaches_only_the_stdlib_parts_of_reconciler() -> None:
    """No driver, no engine module but its models and errors, no control, no front end,
    and no pure core (pydantic): transitively, as the remote CLI imports it."""
    reached = _closure(CLIENT)
    assert sorted(module for module in reached if not _client_may_reach(module)) == []


def test_the_client_imports_nothing_outside_the_standard_library() -> None:
    found = [
        f"{name}:{item.line} imports {item.module}"
        for name in sorted(_closure(CLIENT))
        for item in GRAPH[name]
        if _third_party(item.module)
    ]
    assert found == []


@pytest.mark.parametrize("entry", sorted(ALLOWED), ids=lambda entry: f"{entry[0]}->{entry[1]}")
def test_each_allowlisted_import_still_exists(entry: tuple[str, str]) -> None:
    """An allowlist entry whose import is gone is deleted, so the list only shrinks."""
    importer, module = entry
    assert any(item.module == module for item in GRAPH.get(importer, [])), f"{entry} is fixed: delete it"

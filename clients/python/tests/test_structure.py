"""The package's structure: modules that import on their own, no import cycle, private names kept private.

The import graph is read from the source with ``ast`` (every import, those under
``TYPE_CHECKING`` too), so a cycle fails here even when Python would happen to resolve it.
``SyncClient`` takes each method's parameters from ``Client``; the last tests check that they
stay the same, as type checkers see them and as :func:`inspect.signature` and
:func:`typing.get_type_hints` see them.
"""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
import typing
from functools import cache
from pathlib import Path

import pytest

from stagerunner import Client, SyncClient

PACKAGE = "stagerunner"
SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE_DIR = SRC / PACKAGE
MODULES = sorted(f"{PACKAGE}.{path.stem}" for path in PACKAGE_DIR.glob("*.py") if path.stem != "__init__")


def source_of(module: str) -> Path:
    return PACKAGE_DIR / ("__init__.py" if module == PACKAGE else f"{module.split('.')[-1]}.py")


def resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute name of what ``from <node.module> import ...`` in ``module`` names."""
    if node.level == 0:
        return node.module or ""
    package = module if module == PACKAGE else module.rsplit(".", 1)[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


@cache
def imports_of(module: str) -> dict[str, set[str]]:
    """The package's modules that ``module`` imports, each with the names it takes from it."""
    tree = ast.parse(source_of(module).read_text(encoding="utf-8"))
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    found.setdefault(alias.name, set())
        elif isinstance(node, ast.ImportFrom):
            target = resolve(module, node)
            if target != PACKAGE and not target.startswith(PACKAGE + "."):
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if target == PACKAGE and submodule in MODULES:  # from . import jobs
                    found.setdefault(submodule, set())
                else:
                    found.setdefault(target, set()).add(alias.name)
    found.pop(module, None)
    return found


def graph() -> dict[str, set[str]]:
    return {module: set(imports_of(module)) for module in [PACKAGE, *MODULES]}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``edges`` as a path that comes back to its start, or None."""
    state: dict[str, str] = {}  # "open" while on the path, "done" once explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def closure(module: str) -> set[str]:
    """The package's modules that importing ``module`` (without the package's ``__init__``) loads."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(imports_of(current))
    return seen


def fresh_python(code: str) -> subprocess.CompletedProcess[str]:
    path = [str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


# ---------------------------------------------------------------------------- the import graph


def test_the_modules_are_found() -> None:
    assert {"stagerunner.client", "stagerunner.jobs", "stagerunner.sync", "stagerunner.types"} <= set(MODULES)


def test_the_import_graph_has_no_cycle() -> None:
    edges = graph()
    assert edges["stagerunner.client"] >= {"stagerunner.jobs"}  # the graph is read at all
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges) or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_jobs_knows_no_client() -> None:
    """A status subscription depends on the protocol types its clients satisfy, not on the clients."""
    assert not closure("stagerunner.jobs") & {"stagerunner.client", "stagerunner.sync"}


def test_private_names_come_from_private_modules_only() -> None:
    """No module takes an underscore name from a public module (``from .client import _MISSING``)."""
    offences = [
        f"{module} imports {name} from {target}"
        for module in [PACKAGE, *MODULES]
        for target, names in imports_of(module).items()
        if not target.rsplit(".", 1)[-1].startswith("_")
        for name in sorted(names)
        if name.startswith("_") and not name.startswith("__")
    ]
    assert offences == []


# ---------------------------------------------------------------------------- each module alone


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    run = fresh_python(f"import {module}")
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("module", MODULES)
def test_each_module_loads_only_what_it_imports(module: str) -> None:
    """Without the package's ``__init__`` (which imports everything), a module loads its imports only."""
    code = (
        "import sys, types\n"
        f"package = types.ModuleType({PACKAGE!r}); package.__path__ = [{str(PACKAGE_DIR)!r}]\n"
        f"sys.modules[{PACKAGE!r}] = package\n"
        f"import {module}\n"
        f"print(' '.join(sorted(m for m in sys.modules if m.startswith({PACKAGE + '.'!r}))))\n"
    )
    run = fresh_python(code)
    assert run.returncode == 0, run.stderr
    assert set(run.stdout.split()) == closure(module)


# ---------------------------------------------------------------------------- SyncClient's signatures


def shared_methods() -> list[str]:
    return sorted(
        name
        for name, value in inspect.getmembers(SyncClient)
        if not name.startswith("_") and callable(value) and callable(getattr(Client, name, None))
    )


def test_sync_client_wraps_the_protocol_methods() -> None:
    assert {"ping", "run_stage", "render_prompt", "run_task", "subscribe_status", "spawn"} <= set(shared_methods())


@pytest.mark.parametrize("name", shared_methods())
def test_sync_client_takes_the_parameters_of_client(name: str) -> None:
    sync, asynchronous = getattr(SyncClient, name), getattr(Client, name)
    assert list(inspect.signature(sync).parameters.values()) == list(
        inspect.signature(asynchronous).parameters.values()
    )
    assert not inspect.iscoroutinefunction(sync)
    assert sync.__name__ == name and sync.__qualname__ == f"SyncClient.{name}"
    assert inspect.getdoc(sync)
    sync_hints, async_hints = typing.get_type_hints(sync), typing.get_type_hints(asynchronous)
    sync_hints.pop("return"), async_hints.pop("return")
    assert sync_hints == async_hints


def test_sync_client_results() -> None:
    assert typing.get_type_hints(SyncClient.run_stage)["return"] is typing.get_type_hints(Client.run_stage)["return"]
    assert typing.get_type_hints(SyncClient.spawn)["return"] is SyncClient
    assert inspect.signature(SyncClient.subscribe_status).return_annotation == "SyncStatusSubscription"


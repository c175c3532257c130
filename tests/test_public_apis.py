"""actorbus uses other libraries only through their public APIs.

ruff's SLF001 and PLC2701 catch a `_private` attribute of another module's object and a
``from x import _y``; this test catches what they let through: ``import x._y``,
``from x._y import z``, and reading a `_private` attribute of another package's module
(``anyio._core``, ``json.encoder._x``, ``vars(asyncio.tasks)["_current_tasks"]``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "actorbus"
DOCUMENTED = {"os._exit"}  # public despite the underscore (the Python docs document it)
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _private(dotted: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))


def _foreign(module: str) -> bool:
    return module.split(".", maxsplit=1)[0] != "actorbus"


def violations(tree: ast.AST) -> list[str]:
    """Every use of another package's private name in `tree`, as text."""
    found, modules = _private_imports(tree)
    return found + _private_reads(tree, modules)


def _private_imports(tree: ast.AST) -> tuple[list[str], set[str]]:
    """Imports of private modules or names of other packages, and the module names bound."""
    found: list[str] = []
    modules: set[str] = set()  # local names bound to another package's modules
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _foreign(alias.name):
                    if _private(alias.name):
                        found.append(f"line {node.lineno}: import {alias.name}")
                    modules.add(alias.asname or alias.name.split(".", 1)[0])
        elif isinstance(node, ast.ImportFrom) and not node.level and _foreign(node.module or ""):
            found += [
                f"line {node.lineno}: from {node.module} import {alias.name}"
                for alias in node.names
                if _private(f"{node.module}.{alias.name}")
            ]
    return found, modules


def _private_reads(tree: ast.AST, modules: set[str]) -> list[str]:
    """Reads of a private attribute of another package's module (``anyio._core``)."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            text = ast.unparse(node)
            if isinstance(root, ast.Name) and root.id in modules and text not in DOCUMENTED:
                found.append(f"line {node.lineno}: {text}")
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "vars"
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
            and _private(node.slice.value)
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_private_name_of_another_package(path: Path) -> None:
    assert violations(ast.parse(path.read_text(), str(path))) == []


@pytest.mark.parametrize(
    "source",
    [
        "import trio._core._run",
        "from anyio._core._eventloop import get_async_backend",
        "from anyio._backends import _asyncio",
        "import asyncio\nx = vars(asyncio.tasks)['_current_tasks']",
        "import json.encoder\nx = json.encoder._private",
        "import anyio\nx = anyio._core",
    ],
)
def test_the_check_catches_each_kind(source: str) -> None:
    assert violations(ast.parse(source))


def test_the_package_itself_and_dunders_are_allowed() -> None:
    source = "from actorbus import _events\nimport attrs\nx = attrs.__version__"
    assert violations(ast.parse(source)) == []


def test_every_module_of_the_package_has_its_place_in_the_layers() -> None:
    """A new module must be placed in pyproject.toml's layers, so lint-imports checks it."""
    import tomllib  # noqa: PLC0415

    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    contract = config["tool"]["importlinter"]["contracts"][0]
    placed = {name.strip() for layer in contract["layers"] for name in layer.split("|")}
    modules = {
        path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for path in SOURCES
        if path.name != "__init__.py" or path.parent != PACKAGE
    }
    assert sorted(modules - placed) == []

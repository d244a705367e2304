"""The domain core stays free of web, SQL and HTTP-client imports (STYLE.md, convention 4)."""

from __future__ import annotations

import ast
from pathlib import Path

import warden

CORE = ("domain", "media", "membership")
FORBIDDEN = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "httpx",
    "uvicorn",
    "warden.web",
    "warden.store",
    "warden.adapters",
)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_layers_import_no_web_sql_or_http():
    root = Path(warden.__file__).parent
    offenders = []
    for layer in CORE:
        for path in sorted((root / layer).rglob("*.py")):
            for name in _imports(path):
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                    offenders.append(f"{path.relative_to(root)} imports {name}")
    assert offenders == []


def test_every_setting_is_described():
    from pydantic import BaseModel

    from warden.config import Settings

    missing = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(prefix + name)
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")

    walk(Settings, "")
    assert missing == []


# -- issue 14: the middle layer, the store, and no cycles --------------------------

ROOT = Path(warden.__file__).parent


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _offenders(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_services_import_no_web_or_cli():
    """services/ is what the web app and the CLI share: it may not lean on either."""
    forbidden = ("fastapi", "starlette", "typer", "click", "warden.web", "warden.cli")
    assert _offenders("services", forbidden) == []


def test_store_imports_no_media():
    """Tables and repositories know verdicts (domain), never how media is decoded."""
    assert _offenders("store", ("warden.media",)) == []


def _module_level_imports(path: Path, modules: set[str], root: Path = ROOT) -> set[str]:
    """The modules of `modules` that importing `path` imports: top-level statements
    (and those under a top-level try/if), not function bodies, not TYPE_CHECKING.
    `from a import b` counts as `a.b` when that is a module, else as `a`."""
    tree = ast.parse(path.read_text(), str(path))
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.If):
                if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                    continue
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in modules else base)

    visit(tree.body)
    return (found & modules) - {name}


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan): each is
    a set of modules that import one another round a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                strong(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strong(node)
    return sorted(found)


def _import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    paths = {_module_name(p, root): p for p in root.rglob("*.py") if "migrations" not in p.parts}
    modules = set(paths)
    return {name: _module_level_imports(path, modules, root) for name, path in paths.items()}


def test_the_cycle_guard_can_fail(tmp_path: Path) -> None:
    """Two modules importing each other at module level are found; an import inside a
    function or under TYPE_CHECKING is not a cycle."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "one.py").write_text("from pkg import two\n")
    (package / "two.py").write_text("import pkg.one\n")
    (package / "three.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import four\n"
    )
    (package / "four.py").write_text("def f():\n    from pkg import three\n")
    (package / "five.py").write_text("from . import one\n")
    graph = _import_graph(package)
    assert graph["pkg.five"] == {"pkg.one"}
    assert _components(graph) == [["pkg.one", "pkg.two"]]


def test_no_import_cycles_among_warden_modules():
    """Module-level imports only: an import inside a function runs later, but a cycle
    of module-level imports breaks on whichever module is imported first."""
    assert _components(_import_graph()) == []


def test_the_services_package_exports_every_name_it_loads_lazily():
    """services/__init__.py lists its names twice (for type checkers and for the lazy
    loader): the two lists agree, and every name resolves to its module's object."""
    import importlib

    import warden.services as services

    assert sorted(services.__all__) == sorted(services._WHERE)
    for name, module in services._WHERE.items():
        assert getattr(services, name) is getattr(importlib.import_module(module), name)

"""The cli/ package stays a thin layer (issue 14, item 3): objects come from
services/, imports sit at the top (only the web stack loads late), and no command
formats its own failures."""

from __future__ import annotations

import ast
from pathlib import Path

import warden.cli

CLI = Path(warden.cli.__file__).parent
BUILT_IN_SERVICES = {
    "Database",
    "build_lemmy",
    "BankStore",
    "InviteStore",
    "LemmyDatabase",
    "PictrsAdmin",
    "TokenStore",
}
#: Loaded inside the one command that needs them: FastAPI & co. (only serve and docs
#: write), and the image stack for `hashes match FILE` (decoders and numba: `hashes
#: match <hash>` must answer within 1 s at 10 M entries, issue 16)
LATE_IMPORTS = ("warden.web", "warden.docs", "warden.jobs.flag", "warden.store.decisions")


def _trees() -> dict[str, ast.Module]:
    return {p.name: ast.parse(p.read_text(), str(p)) for p in sorted(CLI.glob("*.py"))}


def _called(node: ast.Call) -> str:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def test_objects_are_built_through_services():
    built = [
        f"{name}:{node.lineno} {_called(node)}"
        for name, tree in _trees().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _called(node) in BUILT_IN_SERVICES
    ]
    assert built == []


def test_imports_inside_functions_are_only_the_web_stack():
    late = []
    for name, tree in _trees().items():
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.module:
                    modules = [node.module]
                elif isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                else:
                    continue
                late += [
                    f"{name}:{node.lineno} {m}" for m in modules if not m.startswith(LATE_IMPORTS)
                ]
    assert late == []


def test_no_command_catches_warden_errors_itself():
    """The root group's handler (cli/context.py) is the one place they become exit codes."""
    caught = []
    for name, tree in _trees().items():
        if name == "context.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                text = ast.unparse(node.type)
                if any(word in text for word in ("WardenError", "ValueError", "Exception")):
                    caught.append(f"{name}:{node.lineno} except {text}")
    assert caught == []

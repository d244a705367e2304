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

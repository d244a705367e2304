"""The middle layer: settings become working objects here, and only here.

Nothing in this package imports FastAPI or Typer: the web app and the CLI
both sit on top of it (tests/unit/test_layers.py guards that).

Its names load on first use (PEP 562): a one-shot command such as `warden hashes
match` imports `warden.services.factories` without paying for the web-facing
assembly (the gate, the console, the metrics registry) it never runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from warden.services.assembly import (
        build_access_gate,
        build_evidence_store,
        build_identity,
        build_invites,
        build_recorder,
        build_services,
    )
    from warden.services.container import Services
    from warden.services.factories import (
        bank_store,
        invite_store,
        lemmy_client,
        lemmy_database,
        open_database,
    )
    from warden.services.scanning import (
        build_classifier,
        build_decoder,
        build_scanner,
        config_version,
        decode_limits,
        fail_modes,
    )

#: name -> the module that defines it
_WHERE = {
    "build_access_gate": "warden.services.assembly",
    "build_evidence_store": "warden.services.assembly",
    "build_identity": "warden.services.assembly",
    "build_invites": "warden.services.assembly",
    "build_recorder": "warden.services.assembly",
    "build_services": "warden.services.assembly",
    "Services": "warden.services.container",
    "bank_store": "warden.services.factories",
    "invite_store": "warden.services.factories",
    "lemmy_client": "warden.services.factories",
    "lemmy_database": "warden.services.factories",
    "open_database": "warden.services.factories",
    "build_classifier": "warden.services.scanning",
    "build_decoder": "warden.services.scanning",
    "build_scanner": "warden.services.scanning",
    "config_version": "warden.services.scanning",
    "decode_limits": "warden.services.scanning",
    "fail_modes": "warden.services.scanning",
}

__all__ = [
    "Services",
    "bank_store",
    "build_access_gate",
    "build_classifier",
    "build_decoder",
    "build_evidence_store",
    "build_identity",
    "build_invites",
    "build_recorder",
    "build_scanner",
    "build_services",
    "config_version",
    "decode_limits",
    "fail_modes",
    "invite_store",
    "lemmy_client",
    "lemmy_database",
    "open_database",
]


def __getattr__(name: str) -> Any:
    """Import the defining module when a name is first asked for."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'warden.services' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

"""The middle layer: settings become working objects here, and only here.

Nothing in this package imports FastAPI or Typer: the web app and the CLI
both sit on top of it (tests/unit/test_layers.py guards that).
"""

from warden.services.assembly import (
    Services,
    build_access_gate,
    build_classifier,
    build_decoder,
    build_evidence_store,
    build_identity,
    build_scanner,
    build_services,
    config_version,
    decode_limits,
    fail_modes,
)
from warden.services.factories import (
    bank_store,
    invite_store,
    lemmy_client,
    lemmy_database,
    open_database,
)

__all__ = [
    "Services",
    "bank_store",
    "build_access_gate",
    "build_classifier",
    "build_decoder",
    "build_evidence_store",
    "build_identity",
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

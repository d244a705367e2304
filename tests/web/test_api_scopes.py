"""Least privilege on `/api/v1`: scoped tokens, and CSAM-bank facts never answered."""

from __future__ import annotations

import hashlib

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import encode, gradient
from tests.web.gate import gate_settings
from warden.domain.banks import BankKind
from warden.services import Services
from warden.store.banks import BankStore, NewEntry
from warden.store.database import Database
from warden.store.tokens import TokenStore
from warden.web.app import create_app


def _bearer(services: Services, *scopes: str) -> dict[str, str]:
    assert services.tokens is not None
    _, plaintext = services.tokens.create("bot", scopes or ("scan",))
    return {"Authorization": f"Bearer {plaintext}"}


async def test_reload_needs_the_admin_scope_and_scan_needs_scan(
    tmp_path, db_url, classifier, gate_services_tracked
):
    config = tmp_path / "warden.toml"
    config.write_text("")
    settings = gate_settings(tmp_path, db_url)
    services = gate_services_tracked(settings, classifier, config_path=config)
    body = encode(gradient())
    app = create_app(settings, services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://warden") as client:
        scan_only = _bearer(services)  # the default: scan only
        admin_only = _bearer(services, "admin")
        both = _bearer(services, "scan", "admin")
        refused = await client.post("/api/v1/admin/reload", headers=scan_only)
        reloaded = await client.post("/api/v1/admin/reload", headers=admin_only)
        scan_by_admin = await client.post("/api/v1/scan", content=body, headers=admin_only)
        scan_by_scanner = await client.post("/api/v1/scan", content=body, headers=scan_only)
        reload_by_both = await client.post("/api/v1/admin/reload", headers=both)
        latin1 = await client.post(
            "/api/v1/admin/reload",
            headers={"Authorization": "Bearer wdn_\xe9\xe9".encode("latin-1")},
        )
    assert services.gate is not None
    await services.gate.close()
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert "--scope admin" in refused.json()["message"]
    assert reloaded.status_code == 200 and reloaded.json()["config_version"]
    assert scan_by_admin.status_code == 403 and "'scan' scope" in scan_by_admin.json()["message"]
    assert scan_by_scanner.status_code == 200 and scan_by_scanner.json()["decision"] == "accept"
    assert reload_by_both.status_code == 200
    assert latin1.status_code == 401 and latin1.json()["error"] == "unauthorized"


def test_scopes_are_validated_and_stored(database: Database):
    tokens = TokenStore(database)
    made, plaintext = tokens.create("ops", ["scan,admin"])
    assert made.scopes == {"scan", "admin"}
    verified = tokens.verify(plaintext)
    assert verified is not None and verified.allows("admin") and verified.allows("scan")
    with pytest.raises(ValueError, match="unknown scope 'root'"):
        tokens.create("x", ["root"])
    with pytest.raises(ValueError, match="at least one scope"):
        tokens.create("x", [""])


def test_tokens_made_before_scopes_become_scan_only(tmp_path):
    """Migration 0004: an old token keeps scanning and loses reload (the safe choice)."""
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    db.upgrade("0003_invites")
    plaintext = "wdn_made-before-scopes"
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO api_tokens (name, token_hash, created_at) VALUES (:n, :h, :c)"),
            {
                "n": "old",
                "h": hashlib.sha256(plaintext.encode()).hexdigest(),
                "c": "2026-01-01 00:00:00",
            },
        )
    db.upgrade()
    token = TokenStore(db).verify(plaintext)
    db.dispose()
    assert token is not None and token.scopes == {"scan"} and not token.allows("admin")


async def test_csam_bank_names_and_entries_never_leave_through_the_api(
    tmp_path, db_url, classifier, ordinary_images, gate_services_tracked
):
    settings = gate_settings(tmp_path, db_url)
    services = gate_services_tracked(settings, classifier)
    banks = BankStore(services.database)
    banks.create_bank("ncmec-secret-list", BankKind.SHA256, csam=True)
    banks.create_bank("spam-wave", BankKind.SHA256)
    csam_like = encode(ordinary_images["coffee"])  # an ordinary photo standing in for a match
    spam = encode(ordinary_images["chelsea"])
    banks.add(
        "ncmec-secret-list", [NewEntry(hashlib.sha256(csam_like).hexdigest(), "list", "admin")]
    )
    banks.add("spam-wave", [NewEntry(hashlib.sha256(spam).hexdigest(), "", "admin")])
    app = create_app(settings, services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://warden") as client:
            auth = _bearer(services)
            hidden = await client.post("/api/v1/scan", content=csam_like, headers=auth)
            shown = await client.post("/api/v1/scan", content=spam, headers=auth)
    assert services.gate is not None
    await services.gate.close()

    assert hidden.status_code == 200
    verdict = hidden.json()
    assert verdict["decision"] == "reject" and verdict["reasons"] == ["hash_match"]
    assert "ncmec" not in hidden.text and "entry" not in hidden.text
    assert verdict["matches"] == [] and verdict["details"][0]["detail"] == {}
    assert verdict["messages"] == ["refused: matches a known-media hash list"]
    # an admin's own bank is still named to the caller
    assert shown.json()["reasons"] == ["hash_match"] and "spam-wave" in shown.text
    # the decisions log keeps everything, for the evidence export
    assert services.decisions is not None
    record = services.decisions.get(verdict["id"])
    assert record is not None
    assert [m["bank"] for m in record.verdict.matches] == ["ncmec-secret-list"]

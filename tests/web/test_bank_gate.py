"""Hash banks at the media gate: a match refuses before the model, is logged and
preserved, and the running service follows bank changes without a restart."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import encode
from tests.web.gate import gate_settings
from tests.web.test_api import CountingClassifier
from warden.domain.banks import BankKind
from warden.media.pipeline import ScanContext
from warden.store.banks import BankStore, NewEntry
from warden.web.app import create_app


@pytest.fixture
def gate_services(gate_services_tracked):
    return gate_services_tracked


async def test_a_banked_picture_is_refused_without_the_model_and_preserved(
    tmp_path, db_url, classifier, ordinary_images, gate_services
):
    settings = gate_settings(tmp_path, db_url, banks={"refresh_s": 0.05})
    counting = CountingClassifier(classifier)
    services = gate_services(settings, counting)
    store = BankStore(services.database)
    store.create_bank("ncmec", BankKind.PDQ, csam=True)
    photo = ordinary_images["chelsea"]
    resized = encode(photo.resize((photo.width // 2, photo.height // 2)), "JPEG", quality=60)

    app = create_app(settings, services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://warden") as client:
            before = await client.post(
                "/pictrs/validate", content=resized, headers={"Content-Type": "image/jpeg"}
            )
            assert before.status_code == 200 and counting.calls == 1

            # the admin banks the original from the CLI; the service picks it up live
            original = services.scanner.prepare(encode(photo, "PNG"), ScanContext("cli"))
            store.add("ncmec", [NewEntry(original.frames[0].pdq, "test", "admin", "wave")])
            for _ in range(100):
                if services.scanner.matcher and services.scanner.matcher.match("", original.frames):
                    break
                await asyncio.sleep(0.05)

            after = await client.post(
                "/pictrs/validate", content=resized, headers={"Content-Type": "image/jpeg"}
            )
    assert after.status_code == 422
    body = after.json()
    assert body["error"] == "hash_match" and "bank 'ncmec'" in body["message"]
    assert counting.calls == 1, "a bank match spares the model"

    assert services.decisions is not None and services.evidence is not None
    latest = services.decisions.recent(limit=1)[0]
    assert latest.verdict.decision == "reject"
    [match] = latest.verdict.matches
    assert match["bank"] == "ncmec" and match["csam"] is True and match["distance"] <= 31
    assert latest.evidence_id is not None
    assert services.evidence.media(latest.evidence_id) == resized

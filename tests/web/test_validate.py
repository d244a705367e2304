"""`/pictrs/validate`: end to end through the pict-rs double, and every failure path."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import encode, gradient
from tests.servers.pictrs import PictrsDouble
from tests.servers.uvicorn_thread import ServedApp
from tests.web.gate import FACE_REJECT, gate_settings
from warden.services import Services
from warden.web.app import create_app


async def _client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services.settings, services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://warden") as client:
        yield client
    assert services.gate is not None
    await services.gate.close()


def test_pictrs_stores_accepted_media_and_not_refused_media(
    tmp_path, db_url, classifier, astronaut, gate_services
):
    pictrs = PictrsDouble(None, timeout_s=10)
    served = ServedApp(pictrs.app())
    served.start()
    settings = gate_settings(
        tmp_path, db_url, pictrs={"url": f"http://127.0.0.1:{served.port}"}, **FACE_REJECT
    )
    services = gate_services(settings, classifier)
    warden = ServedApp(create_app(settings, services), on_stop=services.aclose)
    warden.start()
    pictrs.validation_url = f"http://127.0.0.1:{warden.port}/pictrs/validate"
    try:
        ordinary = encode(gradient(), "PNG")
        face = encode(astronaut)
        # Lemmy talks to pict-rs through Warden's proxy, so the hook knows these are uploads
        lemmy_side = f"http://127.0.0.1:{warden.port}/pictrs-proxy"
        with httpx.Client(base_url=lemmy_side, timeout=30) as client:
            ok = client.post("/image", files={"images[]": ("a.png", ordinary, "image/png")})
            refused = client.post("/image", files={"images[]": ("b.jpg", face, "image/jpeg")})
    finally:
        served.stop()
        warden.stop()
    assert ok.status_code == 201 and ok.json()["msg"] == "ok"
    # pict-rs turns any non-2xx from the hook into its own 400 (tests/servers/pictrs.py)
    assert refused.status_code == 400 and refused.json() == {
        "msg": "Failed external validation",
        "code": "failed-external-validation",
    }
    assert list(pictrs.stored.values()) == [ordinary]
    # the refused upload was stopped in the proxy: pict-rs never saw it (issue 18)
    assert [(c.content_type, c.status) for c in pictrs.validation_calls] == [("image/png", 200)]

    assert services.decisions is not None and services.evidence is not None
    # the hook's row for the accepted upload answers from (links to) the proxy's
    decided = [r for r in services.decisions.recent() if r.linked_decision_id is None]
    accepted, rejected = sorted(decided, key=lambda r: r.id)
    assert accepted.verdict.decision == "accept" and accepted.source == "upload"
    assert rejected.verdict.decision == "reject"
    assert rejected.verdict.codes[0] == "label_reject"
    assert rejected.verdict.labels["FACE_FEMALE"] >= 0.3
    assert accepted.evidence_id is None and rejected.evidence_id is not None
    item = services.evidence.show(rejected.evidence_id)
    # evidence is written first, so the decision names it (not the other way round)
    assert item.metadata["evidence_id"] == rejected.evidence_id
    assert item.metadata["sha256"] == rejected.verdict.sha256
    assert services.evidence.media(rejected.evidence_id) == face


@pytest.fixture
def gate_services(gate_services_tracked):
    return gate_services_tracked


@pytest.fixture
def settings_factory(tmp_path, db_url):
    def make(**overrides):
        return gate_settings(tmp_path, db_url, **overrides)

    return make


async def test_missing_model_fails_closed_with_a_reason(settings_factory, gate_services, tmp_path):
    settings = settings_factory(model={"path": str(tmp_path / "nope.onnx")})
    services = gate_services(settings, None)
    async for client in _client(services):
        answer = await client.post("/pictrs/validate", content=encode(gradient()))
        ready = await client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["error"] == "model_unavailable"
    assert ready.status_code == 503 and "model not loaded" in ready.json()["problems"]
    assert services.decisions is not None
    [record] = services.decisions.recent()
    assert record.verdict.codes == ["model_unavailable"]


async def test_missing_model_fails_open_when_configured(settings_factory, gate_services, tmp_path):
    settings = settings_factory(
        model={"path": str(tmp_path / "nope.onnx")}, policy={"fail_mode_upload": "open"}
    )
    services = gate_services(settings, None)
    async for client in _client(services):
        answer = await client.post(
            "/pictrs/validate", content=encode(gradient()), params={"source": "upload"}
        )
    assert answer.status_code == 200 and answer.json()["decision"] == "accept"
    assert services.decisions is not None
    [record] = services.decisions.recent()
    assert record.verdict.reasons[0].detail["fail_mode"] == "open"


async def test_deadline_exceeded_answers_scan_timeout(settings_factory, gate_services, classifier):
    settings = settings_factory(
        server={"deadline_remote_ms": 1}, federated={"remote_media": "scan"}
    )
    services = gate_services(settings, classifier)
    async for client in _client(services):
        answer = await client.post(
            "/pictrs/validate", content=encode(gradient(2000, 1500)), params={"source": "remote"}
        )
    assert answer.status_code == 503 and answer.json()["error"] == "scan_timeout"
    assert services.decisions is not None
    [record] = services.decisions.recent()
    assert record.verdict.codes == ["scan_timeout"] and record.source == "remote"


async def test_each_source_has_its_own_deadline(settings_factory, gate_services, classifier):
    """Lemmy waits 10 s for a remote fetch and 30 s for an upload (LemmyNet/lemmy 0.19.3
    crates/utils/src/lib.rs:24 with crates/api_common/src/request.rs:137, and
    crates/routes/src/images.rs:110): a slow scan may finish for an upload and must
    give up sooner for a remote fetch. The API keeps server.deadline_ms."""
    settings = settings_factory(
        server={"deadline_remote_ms": 1, "deadline_upload_ms": 60_000, "deadline_ms": 1},
        federated={"remote_media": "scan"},
    )
    assert settings.server.hook_deadline_s("ingest") == 5.0  # default: the shorter wait
    services = gate_services(settings, classifier)
    body = encode(gradient(2000, 1500))
    async for client in _client(services):
        remote = await client.post("/pictrs/validate", content=body, params={"source": "remote"})
        upload = await client.post("/pictrs/validate", content=body, params={"source": "upload"})
    assert remote.status_code == 503 and remote.json()["error"] == "scan_timeout"
    assert "1 ms" in remote.json()["message"]
    assert upload.status_code == 200 and upload.json()["decision"] == "accept"


async def test_body_over_the_limit_is_refused_unread(settings_factory, gate_services, classifier):
    services = gate_services(settings_factory(media={"max_bytes": 1000}), classifier)
    async for client in _client(services):
        answer = await client.post("/pictrs/validate", content=encode(gradient()))

        async def chunks():
            for _ in range(5):
                yield b"\xff" * 400

        streamed = await client.post("/pictrs/validate", content=chunks())
    assert answer.status_code == 413 and answer.json()["error"] == "file_too_large"
    assert streamed.status_code == 413 and streamed.json()["error"] == "file_too_large"
    assert services.decisions is not None
    records = services.decisions.recent()
    assert [r.verdict.codes for r in records] == [["file_too_large"]] * 2
    assert all(r.verdict.sha256 == "" for r in records)


async def test_wrong_content_is_refused_as_unsupported(settings_factory, gate_services, classifier):
    services = gate_services(settings_factory(), classifier)
    async for client in _client(services):
        answer = await client.post(
            "/pictrs/validate",
            content=b"<html><body>hello</body></html>",
            headers={"Content-Type": "text/html"},
        )
    assert answer.status_code == 422 and answer.json()["error"] == "unsupported_format"
    assert services.decisions is not None
    [record] = services.decisions.recent()
    assert record.verdict.codes == ["unsupported_format"] and record.verdict.sha256


async def test_database_down_fails_closed_with_store_error(
    request, tmp_path, db_url, classifier, gate_services
):
    settings = gate_settings(tmp_path, db_url)
    if db_url.startswith("sqlite"):
        services = gate_services(settings, classifier, migrate=False)  # no tables: writes fail
    else:
        services = gate_services(settings, classifier)
        assert services.database is not None
        services.database.dispose()
        server = request.getfixturevalue("postgres")
        server.drop_database(db_url.rsplit("/", 1)[-1])
    async for client in _client(services):
        answer = await client.post("/pictrs/validate", content=encode(gradient()))
    assert answer.status_code == 503 and answer.json()["error"] == "store_error"


async def test_without_the_proxy_an_ingest_is_unattributed_and_fails_closed(
    settings_factory, gate_services, tmp_path
):
    """Uploads open, remote closed, no proxy to tell them apart: the stricter applies."""
    settings = settings_factory(
        model={"path": str(tmp_path / "nope.onnx")}, policy={"fail_mode_upload": "open"}
    )
    services = gate_services(settings, None)
    async for client in _client(services):
        answer = await client.post("/pictrs/validate", content=encode(gradient()))
    assert answer.status_code == 503
    assert services.decisions is not None
    [record] = services.decisions.recent()
    assert record.source == "ingest" and record.verdict.decision == "reject"


async def test_a_remote_fetch_is_refused_at_the_hook_when_blocked(settings_factory, gate_services):
    services = gate_services(settings_factory(), None)
    async for client in _client(services):
        answer = await client.post(
            "/pictrs/validate", content=encode(gradient()), params={"source": "remote"}
        )
    assert answer.status_code == 422 and answer.json()["error"] == "remote_blocked"


async def test_secret_and_address_restrictions(settings_factory, gate_services, classifier):
    services = gate_services(
        settings_factory(server={"pictrs_secret": "s3cret", "pictrs_allow_from": ["127.0.0.0/8"]}),
        classifier,
    )
    body = encode(gradient())
    async for client in _client(services):
        no_secret = await client.post("/pictrs/validate", content=body)
        wrong = await client.post("/pictrs/validate", content=body, params={"secret": "x"})
        right = await client.post("/pictrs/validate", content=body, params={"secret": "s3cret"})
    assert no_secret.status_code == 403 and no_secret.json()["error"] == "forbidden"
    assert wrong.status_code == 403
    # the ASGI test client comes from 127.0.0.1
    assert right.status_code == 200, right.text


async def test_address_outside_the_allowed_networks_is_refused(
    settings_factory, gate_services, classifier
):
    services = gate_services(
        settings_factory(server={"pictrs_allow_from": ["10.0.0.0/8"]}), classifier
    )
    async for client in _client(services):
        answer = await client.post("/pictrs/validate", content=encode(gradient()))
    assert answer.status_code == 403

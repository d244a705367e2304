"""Remote media policy end to end: "Lemmy" -> Warden's pict-rs proxy -> pict-rs double
-> Warden's validation hook, with a loopback origin serving the federated image."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import encode, gradient
from tests.servers.pictrs import PictrsDouble
from tests.servers.uvicorn_thread import ServedApp
from tests.web.gate import FACE_REJECT, gate_services, gate_settings
from warden.services import Services
from warden.web.app import create_app


@dataclass
class Deployment:
    lemmy: httpx.Client  # what Lemmy does: talk to "pict-rs" at Warden's proxy
    pictrs: PictrsDouble
    services: Services
    origin: str


def _origin(images: dict[str, bytes]) -> Starlette:
    def serve(request):  # type: ignore[no-untyped-def]
        body = images.get(request.path_params["name"])
        return Response(body, media_type="image/jpeg") if body else Response(status_code=404)

    return Starlette(routes=[Route("/{name}", serve)])


@pytest.fixture
def deploy(tmp_path, classifier, astronaut) -> Iterator:
    started: list[ServedApp] = []
    clients: list[httpx.Client] = []
    made: list[Services] = []

    def make(remote: str, *, with_model: bool = True, **overrides: object) -> Deployment:
        origin = ServedApp(
            _origin({"plain.jpg": encode(gradient()), "face.jpg": encode(astronaut)})
        )
        origin.start()
        pictrs = PictrsDouble("http://127.0.0.1:1/unset", timeout_s=20)
        served_pictrs = ServedApp(pictrs.app())
        served_pictrs.start()
        settings = gate_settings(
            tmp_path,
            f"sqlite:///{tmp_path / 'warden.db'}",
            federated={"remote_media": remote},
            pictrs={"url": f"http://127.0.0.1:{served_pictrs.port}"},
            **overrides,  # type: ignore[arg-type]
        )
        if not with_model:
            settings.model.path = tmp_path / "missing.onnx"
        services = gate_services(settings, classifier if with_model else None)
        warden = ServedApp(create_app(settings, services), on_stop=services.aclose)
        warden.start()
        pictrs.validation_url = f"http://127.0.0.1:{warden.port}/pictrs/validate"
        started.extend([warden, served_pictrs, origin])
        lemmy = httpx.Client(base_url=f"http://127.0.0.1:{warden.port}/pictrs-proxy", timeout=30)
        clients.append(lemmy)
        made.append(services)
        return Deployment(lemmy, pictrs, services, f"http://127.0.0.1:{origin.port}")

    yield make
    for client in clients:
        client.close()
    for app in started:
        app.stop()
    for services in made:
        if services.database is not None:
            services.database.dispose()


def _sources(services: Services) -> list[tuple[str, str]]:
    assert services.decisions is not None
    return [(r.source, r.verdict.decision.value) for r in reversed(services.decisions.recent())]


def test_block_never_fetches_and_uploads_still_work(deploy):
    d = deploy("block")
    blocked = d.lemmy.get("/image/download", params={"url": f"{d.origin}/plain.jpg"})
    assert blocked.status_code == 403
    assert blocked.json()["code"] == "remote-media-blocked"
    assert d.pictrs.fetched == [] and d.pictrs.stored == {}
    upload = d.lemmy.post(
        "/image", files={"images[]": ("a.png", encode(gradient(), "PNG"), "image/png")}
    )
    assert upload.status_code == 201 and upload.json()["msg"] == "ok"
    assert len(d.pictrs.stored) == 1
    assert _sources(d.services) == [("upload", "accept")]


def test_scan_fetches_through_the_full_gate_as_remote(deploy):
    d = deploy("scan", **FACE_REJECT)
    ok = d.lemmy.get("/image/download", params={"url": f"{d.origin}/plain.jpg"})
    assert ok.status_code == 200 and ok.json()["files"][0]["file"] in d.pictrs.stored
    refused = d.lemmy.get("/image/download", params={"url": f"{d.origin}/face.jpg"})
    assert refused.status_code == 400 and refused.json()["code"] == "validation-failed"
    assert len(d.pictrs.stored) == 1
    assert _sources(d.services) == [("remote", "accept"), ("remote", "reject")]


def test_allow_accepts_remote_media_when_no_decision_can_be_reached(deploy):
    d = deploy("allow", with_model=False)
    fetched = d.lemmy.get("/image/download", params={"url": f"{d.origin}/plain.jpg"})
    assert fetched.status_code == 200
    upload = d.lemmy.post(
        "/image", files={"images[]": ("a.png", encode(gradient(), "PNG"), "image/png")}
    )
    assert upload.status_code == 400  # uploads still fail closed
    records = list(reversed(d.services.decisions.recent()))  # type: ignore[union-attr]
    assert [(r.source, r.verdict.decision.value) for r in records] == [
        ("remote", "accept"),
        ("upload", "reject"),
    ]
    assert records[0].verdict.reasons[0].detail["fail_mode"] == "open"


def test_the_proxy_passes_other_requests_unchanged(deploy):
    d = deploy("block")
    missing = d.lemmy.get("/image/original/nothing.png")
    assert missing.status_code == 404  # pict-rs's own answer, relayed

"""The ingest proxy end to end: "Lemmy" -> Warden's /pictrs-proxy -> the pict-rs double
-> Warden's validation hook, with a loopback origin serving the federated image,
for each pict-rs range admins run (0.4.3+, 0.5.0-0.5.6, 0.5.7+)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import encode, gradient
from tests.servers.nginx import free_port, wait_for_port
from tests.servers.pictrs import PICTRS_VERSIONS, PictrsDouble
from tests.servers.uvicorn_thread import ServedApp
from tests.web.gate import FACE_REJECT, gate_services, gate_settings
from warden.services import Services
from warden.web.app import create_app


@dataclass
class Deployment:
    warden: str  # Warden's base URL
    pictrs: PictrsDouble
    services: Services
    origin: str


class _Joining(httpx.Client):
    """An HTTP client that joins paths onto `pictrs.url` the way Lemmy does: by string
    concatenation, so `http://w/pictrs-proxy` + `image` = `http://w/pictrs-proxyimage`
    (LemmyNet/lemmy 0.19.3 crates/routes/src/images.rs:102; 1.0 main
    crates/routes/src/images/upload.rs:194)."""

    def __init__(self, pictrs_url: str, local_address: str | None = None) -> None:
        transport = httpx.HTTPTransport(local_address=local_address) if local_address else None
        super().__init__(timeout=30, transport=transport)
        self.pictrs_url = pictrs_url

    def join(self, path: str) -> str:
        return f"{self.pictrs_url}{path}"


def _origin(images: dict[str, bytes]) -> Starlette:
    def serve(request: Request) -> Response:
        body = images.get(request.path_params["name"])
        return Response(body, media_type="image/jpeg") if body else Response(status_code=404)

    return Starlette(routes=[Route("/{name}", serve)])


@pytest.fixture(params=PICTRS_VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def deploy(tmp_path, classifier, astronaut) -> Iterator:
    started: list[ServedApp] = []
    made: list[Services] = []

    def make(
        remote: str, *, version: str = "0.5.7", with_model: bool = True, **overrides: object
    ) -> Deployment:
        origin = ServedApp(
            _origin({"plain.jpg": encode(gradient()), "face.jpg": encode(astronaut)})
        )
        origin.start()
        pictrs = PictrsDouble(None, version=version, timeout_s=20)
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
        base = f"http://127.0.0.1:{warden.port}"
        pictrs.validation_url = f"{base}/pictrs/validate"
        started.extend([warden, served_pictrs, origin])
        made.append(services)
        return Deployment(base, pictrs, services, f"http://127.0.0.1:{origin.port}")

    yield make
    for app in started:
        app.stop()
    for services in made:
        if services.database is not None:
            services.database.dispose()


def _sources(services: Services) -> list[tuple[str, str]]:
    """The decisions, leaving out the hook's rows that answered from the proxy's
    decision on an upload (issue 18: uploads are scanned in the proxy)."""
    assert services.decisions is not None
    records = reversed(services.decisions.recent())
    return [(r.source, r.verdict.decision.value) for r in records if r.linked_decision_id is None]


def _png() -> dict[str, tuple[str, bytes, str]]:
    return {"images[]": ("a.png", encode(gradient(), "PNG"), "image/png")}


def _failed_validation(answer: httpx.Response, version: str) -> None:
    """pict-rs's own refusal after a non-2xx hook answer (see tests/servers/pictrs.py)."""
    assert answer.status_code == 400
    body = answer.json()
    assert body["msg"] == "Failed external validation"
    if version == "0.4.3":
        assert "code" not in body
    else:
        assert body["code"] == "failed-external-validation"


# -- item 6: both forms of Lemmy's pictrs.url ------------------------------------------


@pytest.mark.parametrize("slash", ["/", ""], ids=["trailing-slash", "no-trailing-slash"])
def test_every_path_lemmy_joins_reaches_pictrs_with_or_without_the_slash(deploy, slash):
    d = deploy("scan")
    with _Joining(f"{d.warden}/pictrs-proxy{slash}") as lemmy:
        upload = lemmy.post(lemmy.join("image"), files=_png())
        assert upload.status_code == 201, upload.text
        alias = upload.json()["files"][0]["file"]
        served = lemmy.get(lemmy.join(f"image/original/{alias}"))
        assert served.status_code == 200 and served.content == d.pictrs.stored[alias]
        assert lemmy.get(lemmy.join("healthz")).status_code == 200
        fetched = lemmy.get(lemmy.join("image/download"), params={"url": f"{d.origin}/plain.jpg"})
        assert fetched.status_code == 201, fetched.text
        missing = lemmy.get(lemmy.join("image/original/nothing.png"))
        assert missing.status_code == 404 and missing.content == b""  # pict-rs's, relayed
    assert _sources(d.services) == [("upload", "accept"), ("remote", "accept")]


def test_only_the_prefixes_lemmy_joins_are_served_without_the_slash(deploy):
    d = deploy("scan")
    for path in ("/pictrs-proxyelsewhere", "/pictrs-proxyfoo/image", "/pictrs-proxy"):
        answer = httpx.get(f"{d.warden}{path}")
        assert answer.status_code == 404 and answer.json()["code"] == "not-found", path


def test_a_blocked_fetch_cannot_slip_past_as_the_other_form(deploy):
    d = deploy("block")
    for path in ("/pictrs-proxyimage/download", "/pictrs-proxy//image/download"):
        blocked = httpx.get(f"{d.warden}{path}", params={"url": f"{d.origin}/plain.jpg"})
        assert blocked.status_code == 403 and blocked.json()["code"] == "remote-media-blocked"
    assert d.pictrs.fetched == []


# -- item 7: the proxy's callers are Lemmy, not pict-rs -------------------------------


def test_lemmy_uses_the_proxy_when_pictrs_allow_from_names_pictrs(deploy):
    """As the docs say: the hook's list names pict-rs (127.0.0.1 here), the proxy's
    names Lemmy (127.0.0.2 here); both get through, and the upload is stored."""
    d = deploy(
        "scan",
        server={"pictrs_allow_from": ["127.0.0.1/32"], "proxy_allow_from": ["127.0.0.2/32"]},
    )
    with _Joining(f"{d.warden}/pictrs-proxy/", local_address="127.0.0.2") as lemmy:
        answer = lemmy.post(lemmy.join("image"), files=_png())
    assert answer.status_code == 201, answer.text
    assert len(d.pictrs.stored) == 1
    assert _sources(d.services) == [("upload", "accept")]


def test_callers_outside_proxy_allow_from_are_refused_with_the_setting_named(deploy):
    d = deploy("scan")  # default: loopback 127.0.0.1 and ::1 only
    with _Joining(f"{d.warden}/pictrs-proxy/", local_address="127.0.0.2") as lemmy:
        answer = lemmy.post(lemmy.join("image"), files=_png())
    assert answer.status_code == 403
    assert answer.json()["code"] == "forbidden"
    assert "server.proxy_allow_from" in answer.json()["msg"]
    assert d.pictrs.stored == {}


# -- the remote-media policy, per pict-rs version ---------------------------------------


def test_block_never_fetches_and_uploads_still_work(deploy, version):
    d = deploy("block", version=version)
    with _Joining(f"{d.warden}/pictrs-proxy/") as lemmy:
        blocked = lemmy.get(lemmy.join("image/download"), params={"url": f"{d.origin}/plain.jpg"})
        proxied = lemmy.get(lemmy.join("image/original"), params={"proxy": f"{d.origin}/a.jpg"})
        upload = lemmy.post(lemmy.join("image"), files=_png())
    for answer in (blocked, proxied):
        assert answer.status_code == 403
        assert answer.json()["code"] == "remote-media-blocked" and answer.json()["msg"]
    assert d.pictrs.fetched == []
    assert upload.status_code == 201 and upload.json()["msg"] == "ok"
    [file] = upload.json()["files"]
    assert file["details"]["content_type"] == "image/png" and file["delete_token"]
    assert _sources(d.services) == [("upload", "accept")]


def test_scan_fetches_through_the_full_gate_as_remote(deploy, version):
    d = deploy("scan", version=version, **FACE_REJECT)
    with _Joining(f"{d.warden}/pictrs-proxy/") as lemmy:
        ok = lemmy.get(lemmy.join("image/download"), params={"url": f"{d.origin}/plain.jpg"})
        refused = lemmy.get(lemmy.join("image/download"), params={"url": f"{d.origin}/face.jpg"})
    assert ok.status_code == 201 and ok.json()["files"][0]["file"] in d.pictrs.stored
    _failed_validation(refused, version)
    assert len(d.pictrs.stored) == 1
    assert _sources(d.services) == [("remote", "accept"), ("remote", "reject")]


@pytest.mark.parametrize("version", ["0.5.6", "0.5.7"])
def test_proxied_images_are_scanned_as_remote(deploy, version):
    """ProxyAllImages: Lemmy asks `image/original?proxy=` (0.19.9 crates/api_common/src/
    request.rs:478); pict-rs 0.5 fetches, validates and keeps it."""
    d = deploy("scan", version=version, **FACE_REJECT)
    with _Joining(f"{d.warden}/pictrs-proxy/") as lemmy:
        ok = lemmy.get(lemmy.join("image/original"), params={"proxy": f"{d.origin}/plain.jpg"})
        refused = lemmy.get(lemmy.join("image/original"), params={"proxy": f"{d.origin}/face.jpg"})
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/jpeg"
    _failed_validation(refused, version)
    assert _sources(d.services) == [("remote", "accept"), ("remote", "reject")]


def test_allow_accepts_remote_media_when_no_decision_can_be_reached(deploy, version):
    d = deploy("allow", version=version, with_model=False)
    with _Joining(f"{d.warden}/pictrs-proxy/") as lemmy:
        fetched = lemmy.get(lemmy.join("image/download"), params={"url": f"{d.origin}/plain.jpg"})
        upload = lemmy.post(lemmy.join("image"), files=_png())
    assert fetched.status_code == 201
    # uploads still fail closed, refused in the proxy as pict-rs 0.5 answers it
    assert upload.status_code == 400 and upload.json()["code"] == "failed-external-validation"
    records = list(reversed(d.services.decisions.recent()))  # type: ignore[union-attr]
    assert [(r.source, r.verdict.decision.value) for r in records] == [
        ("remote", "accept"),
        ("upload", "reject"),
    ]
    assert records[0].verdict.reasons[0].detail["fail_mode"] == "open"


def test_pictrs_size_refusals_are_relayed_as_each_version_answers(deploy, version):
    """`media.max_file_size` is MiB; over it 0.5.7+ answers 413, older versions 400."""
    d = deploy("scan", version=version)
    d.pictrs.max_file_size = 1
    big = encode(gradient(1600, 1200, seed=3), "PNG")
    assert len(big) > 1024 * 1024
    with _Joining(f"{d.warden}/pictrs-proxy/") as lemmy:
        answer = lemmy.post(lemmy.join("image"), files={"images[]": ("b.png", big, "image/png")})
    assert answer.status_code == (413 if version == "0.5.7" else 400)
    assert d.pictrs.validation_calls == []


# -- what the hook receives ------------------------------------------------------------


def test_the_hook_scans_the_processed_bytes_pictrs_stores(deploy, version):
    """A JPEG that needs re-orienting is stored transcoded: Warden judges those bytes."""
    d = deploy("scan", version=version)
    image = gradient(320, 200)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    uploaded = encode(image, "JPEG", exif=exif.tobytes())
    with _Joining(f"{d.warden}/pictrs-proxy/") as lemmy:
        answer = lemmy.post(
            lemmy.join("image"), files={"images[]": ("r.jpg", uploaded, "image/jpeg")}
        )
    assert answer.status_code == 201, answer.text
    [stored] = d.pictrs.stored.values()
    assert stored != uploaded and Image.open(io.BytesIO(stored)).size == (200, 320)
    [call] = d.pictrs.validation_calls
    assert call.chunked and call.content_type == "image/jpeg" and call.status == 200
    records = d.services.decisions.recent()  # type: ignore[union-attr]
    [record] = [r for r in records if r.linked_decision_id is not None]  # the hook's row
    assert record.verdict.sha256 == hashlib.sha256(stored).hexdigest() == call.sha256


def test_jpeg_xl_stored_as_uploaded_is_scanned_and_accepted(deploy, version):
    """pict-rs keeps JPEG XL as it came (31049d3 src/formats/image.rs:40-55)."""
    import pillow_jxl  # noqa: F401 - registers the encoder

    d = deploy("scan", version=version)
    data = encode(gradient(), "JXL", quality=80)
    with _Joining(f"{d.warden}/pictrs-proxy/") as lemmy:
        answer = lemmy.post(lemmy.join("image"), files={"images[]": ("a.jxl", data, "image/jxl")})
    assert answer.status_code == 201, answer.text
    assert [c.content_type for c in d.pictrs.validation_calls] == ["image/jxl"]
    assert _sources(d.services) == [("upload", "accept")]


def test_warden_serve_judges_the_peer_not_x_forwarded_for(tmp_path):
    """Lemmy adds `X-Forwarded-For: <its peer ip:port>` to every request it sends
    pict-rs (LemmyNet/lemmy 0.19.3 crates/routes/src/images.rs:107; 1.0 main
    crates/routes/src/images/upload.rs:227). `warden serve` must judge the TCP peer:
    uvicorn's default would put that header's value in its place and refuse Lemmy."""
    pictrs = ServedApp(PictrsDouble(None).app())
    pictrs.start()
    port = free_port()
    env = {
        **os.environ,
        "WARDEN_DATA_DIR": str(tmp_path),
        "WARDEN_PICTRS__URL": f"http://127.0.0.1:{pictrs.port}",
        "WARDEN_MODEL__PATH": str(tmp_path / "missing.onnx"),
    }
    env.pop("WARDEN_CONFIG", None)
    warden = Path(sys.executable).with_name("warden")
    process = subprocess.Popen(
        [str(warden), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout_s=60)
        answer = httpx.get(
            f"http://127.0.0.1:{port}/pictrs-proxy/healthz",
            headers={"X-Forwarded-For": "203.0.113.7:51234"},
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
        pictrs.stop()
    assert answer.status_code == 200, answer.text  # pict-rs's healthz, relayed

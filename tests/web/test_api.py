"""`/api/v1`: tokens, raw and multipart scans, reload, OpenAPI, metrics, micro-batching."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
from PIL import Image

from tests.conftest import encode, gradient
from tests.web.gate import gate_settings
from warden.media.classify import Classification, NudeNetClassifier
from warden.services import Services
from warden.web.app import create_app


def _client(services: Services) -> httpx.AsyncClient:
    app = create_app(services.settings, services)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://warden")


def _token(services: Services) -> dict[str, str]:
    assert services.tokens is not None
    _, plaintext = services.tokens.create("tests")
    return {"Authorization": f"Bearer {plaintext}"}


async def test_scan_needs_a_token_and_answers_the_full_verdict(
    tmp_path, db_url, classifier, gate_services_tracked
):
    services = gate_services_tracked(gate_settings(tmp_path, db_url), classifier)
    body = encode(gradient())
    async with _client(services) as client:
        missing = await client.post("/api/v1/scan", content=body)
        wrong = await client.post(
            "/api/v1/scan", content=body, headers={"Authorization": "Bearer wdn_nope"}
        )
        auth = _token(services)
        raw = await client.post("/api/v1/scan", content=body, headers=auth)
        multi = await client.post(
            "/api/v1/scan", files={"file": ("a.jpg", body, "image/jpeg")}, headers=auth
        )
        bad = await client.post(
            "/api/v1/scan",
            content=b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nbroken',
            headers={**auth, "Content-Type": "multipart/form-data; boundary=xyz"},
        )
        no_file = await client.post(
            "/api/v1/scan", files={"other": ("x.txt", b"x", "text/plain")}, headers=auth
        )
    assert services.gate is not None
    await services.gate.close()
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    assert wrong.status_code == 401
    assert raw.status_code == 200, raw.text
    verdict = raw.json()
    assert verdict["decision"] == "accept" and verdict["media"]["format"] == "jpeg"
    assert set(verdict["labels"]) >= {"FACE_FEMALE"} and verdict["id"] is not None
    assert multi.json()["sha256"] == verdict["sha256"]
    assert bad.status_code == 400 and bad.json()["error"] == "bad_multipart"
    assert no_file.status_code == 400 and "'file'" in no_file.json()["message"]
    assert services.decisions is not None
    record = services.decisions.get(verdict["id"])
    assert record is not None and record.source == "api" and record.uploader == "token:tests"


async def test_openapi_documents_the_scan_route(
    tmp_path, db_url, classifier, gate_services_tracked
):
    services = gate_services_tracked(gate_settings(tmp_path, db_url), classifier)
    async with _client(services) as client:
        doc = (await client.get("/openapi.json")).json()
    scan = doc["paths"]["/api/v1/scan"]["post"]
    assert set(scan["requestBody"]["content"]) >= {
        "application/octet-stream",
        "multipart/form-data",
    }
    assert {"200", "400", "401", "413"} <= set(scan["responses"])
    ok = scan["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ok.endswith("/VerdictOut")
    assert "decision" in doc["components"]["schemas"]["VerdictOut"]["properties"]
    assert {"200", "403", "413", "422", "503"} <= set(
        doc["paths"]["/pictrs/validate"]["post"]["responses"]
    )


async def test_reload_swaps_thresholds_and_metrics_count_decisions(
    tmp_path, db_url, classifier, astronaut, gate_services_tracked
):
    config = tmp_path / "warden.toml"
    config.write_text("")
    settings = gate_settings(tmp_path, db_url)
    services = gate_services_tracked(settings, classifier, config_path=config)
    face = encode(astronaut)
    async with _client(services) as client:
        assert services.tokens is not None
        auth = {"Authorization": f"Bearer {services.tokens.create('ops', ['admin'])[1]}"}
        before = await client.post("/pictrs/validate", content=face)
        config.write_text("[policy.labels.FACE_FEMALE]\nreject = 0.3\n")
        reloaded = await client.post("/api/v1/admin/reload", headers=auth)
        after = await client.post("/pictrs/validate", content=face)
        config.write_text("[policy\n")
        broken = await client.post("/api/v1/admin/reload", headers=auth)
        still = await client.post("/pictrs/validate", content=face)
        unauth = await client.post("/api/v1/admin/reload")
        metrics = (await client.get("/metrics")).text
        ready = await client.get("/readyz")
    assert services.gate is not None
    await services.gate.close()
    assert before.status_code == 200
    assert reloaded.status_code == 200 and reloaded.json()["config_version"]
    assert after.status_code == 422 and after.json()["error"] == "label_reject"
    assert broken.status_code == 422 and broken.json()["error"] == "config_error"
    assert still.status_code == 422
    assert unauth.status_code == 401
    assert 'warden_decisions_total{decision="reject",reason="label_reject"} 2.0' in metrics
    assert 'warden_decisions_total{decision="accept",reason="none"} 1.0' in metrics
    assert "warden_scan_seconds_count 3.0" in metrics and "warden_scan_queue_depth" in metrics
    assert ready.status_code == 200


class CountingClassifier:
    """The real classifier, counting model calls."""

    def __init__(self, inner: NudeNetClassifier) -> None:
        self.inner = inner
        self.calls = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def labels(self) -> tuple[str, ...]:
        return self.inner.labels

    def classify(self, images: Sequence[Image.Image]) -> list[Classification]:
        self.calls += 1
        return self.inner.classify(images)


async def test_concurrent_requests_share_model_calls(
    tmp_path, classifier, ordinary_images, gate_services_tracked
):
    counting = CountingClassifier(classifier)
    settings = gate_settings(
        tmp_path, f"sqlite:///{tmp_path / 'w.db'}", server={"batch_window_ms": 2000}
    )
    services = gate_services_tracked(settings, counting)
    images = [encode(img) for img in ordinary_images.values()] + [
        encode(gradient(seed=s)) for s in (1, 2)
    ]
    async with _client(services) as client:
        answers = await asyncio.gather(
            *(client.post("/api/v1/scan", content=b, headers=_token(services)) for b in images)
        )
    assert services.gate is not None
    await services.gate.close()
    assert len(images) == 8 and counting.calls < 8
    alone = [services.scanner.scan(b).as_dict() for b in images]
    for answer, single in zip(answers, alone, strict=True):
        got = answer.json()
        assert got["decision"] == single["decision"] and got["reasons"] == single["reasons"]
        assert got["labels"].keys() == single["labels"].keys()
        for label, score in single["labels"].items():
            assert abs(got["labels"][label] - score) < 1e-3

"""Attribution (issue 18): every upload through the ingest proxy carries its uploader.

Real uvicorn Warden between a Lemmy stand-in and the pict-rs double, with the
Lemmy double answering who a token is. The stand-in sends what Lemmy sends
pict-rs on an upload: every header of the uploader's request (its login
included) and an appended `X-Forwarded-For: <Lemmy's peer ip:port>`
(LemmyNet/lemmy 0.19.3 crates/routes/src/images.rs:69-90, :102-107; 1.0 main
crates/routes/src/images/utils.rs:17-40, upload.rs:194, :227). Lemmy's peer is
nginx here (10.0.0.5, in `server.trusted_proxies`), which wrote the uploader's
address first (`X-Forwarded-For $proxy_add_x_forwarded_for`).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import encode, gradient
from tests.servers.lemmy_double import LemmyDouble, running_double
from tests.servers.nginx import free_port
from tests.servers.pictrs import PictrsDouble
from tests.servers.uvicorn_thread import ServedApp
from tests.web.gate import FACE_REJECT, gate_services, gate_settings
from warden.media.classify import Classification, Classifier
from warden.services import Services
from warden.store.console import ConsoleStore
from warden.store.decisions import DecisionRecord
from warden.web.app import create_app

NGINX = "10.0.0.5"


class CountingClassifier:
    """The real model, counting the images it is asked about."""

    def __init__(self, inner: Classifier) -> None:
        self.inner = inner
        self.images = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def labels(self) -> tuple[str, ...]:
        return self.inner.labels

    def classify(self, images: Sequence[Image.Image]) -> list[Classification]:
        self.images += len(images)
        return self.inner.classify(images)

    def classify_at(self, images: Sequence[Image.Image], size: int) -> list[Classification]:
        self.images += len(images)
        return self.inner.classify_at(images, size)  # type: ignore[attr-defined]


@dataclass
class World:
    warden: str
    pictrs: PictrsDouble
    lemmy: LemmyDouble
    services: Services
    model: CountingClassifier

    def records(self) -> list[DecisionRecord]:
        assert self.services.decisions is not None
        return list(reversed(self.services.decisions.recent(limit=1000)))


@pytest.fixture(params=["0.19.5", "1.0"])
def lemmy(request: pytest.FixtureRequest) -> Iterator[LemmyDouble]:
    yield from running_double(request.param)


@pytest.fixture
def world(tmp_path: Path, classifier: Classifier, lemmy: LemmyDouble) -> Iterator[Any]:
    started: list[ServedApp] = []

    def make(pictrs_version: str, **overrides: Any) -> World:
        pictrs = PictrsDouble(None, version=pictrs_version, timeout_s=20)
        served_pictrs = ServedApp(pictrs.app())
        served_pictrs.start()
        started.append(served_pictrs)
        chosen: dict[str, Any] = {
            "pictrs": {"url": f"http://127.0.0.1:{served_pictrs.port}"},
            "lemmy": {"url": lemmy.url, "api": "auto"},
            "server": {"trusted_proxies": ["10.0.0.0/8"]},
            **overrides,
        }
        settings = gate_settings(tmp_path, f"sqlite:///{tmp_path / 'warden.db'}", **chosen)
        model = CountingClassifier(classifier)
        services = gate_services(settings, model)
        warden = ServedApp(  # as `warden serve` runs it: the client is the TCP peer
            create_app(settings, services), on_stop=services.aclose, proxy_headers=False
        )
        warden.start()
        started.insert(0, warden)
        base = f"http://127.0.0.1:{warden.port}"
        pictrs.validation_url = f"{base}/pictrs/validate"
        return World(base, pictrs, lemmy, services, model)

    yield make
    for app in started:
        app.stop()


async def _upload(
    client: httpx.AsyncClient, world: World, token: str, address: str, data: bytes, cookie: bool
) -> httpx.Response:
    """An upload as Lemmy forwards it (see the module docstring): the uploader's own
    headers, then Lemmy's appended X-Forwarded-For naming its peer."""
    login = ("Cookie", f"jwt={token}") if cookie else ("Authorization", f"Bearer {token}")
    headers = [login, ("X-Forwarded-For", address), ("X-Forwarded-For", f"{NGINX}:40312")]
    return await client.post(
        f"{world.warden}/pictrs-proxy/image",
        files={"images[]": ("u.png", data, "image/png")},
        headers=headers,
    )


@pytest.mark.parametrize("pictrs_version", ["0.4.3", "0.5.7"])
def test_twenty_uploads_from_five_accounts_at_once_each_carry_account_address_alias(
    world: Any, pictrs_version: str
) -> None:
    w: World = world(pictrs_version)
    people = [w.lemmy.add_user(f"t-{n}", n, timedelta(days=30)) for n in "abcde"]
    jobs = []
    for i in range(20):
        person = people[i % 5]
        address = f"198.51.100.{10 + i % 5}"
        data = encode(gradient(160, 120, seed=i), "PNG")
        jobs.append((person, address, data, i % 2 == 0))

    async def all_at_once() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(
                *(_upload(client, w, p.token, a, d, c) for p, a, d, c in jobs)
            )

    answers = asyncio.run(all_at_once())
    expected: dict[str, tuple[str, int, str]] = {}  # sha256 -> who, id, address
    alias_of: dict[str, str] = {}
    for answer, (person, address, data, _) in zip(answers, jobs, strict=True):
        assert answer.status_code == 201, answer.text
        [stored] = answer.json()["files"]
        digest = __import__("hashlib").sha256(data).hexdigest()
        expected[digest] = (person.name, person.id, address)
        alias_of[digest] = stored["file"]
        assert w.pictrs.stored[stored["file"]] == data
    records = w.records()
    proxy_rows = [r for r in records if r.linked_decision_id is None]
    hook_rows = [r for r in records if r.linked_decision_id is not None]
    assert len(proxy_rows) == 20 and len(hook_rows) == 20
    by_id = {r.id: r for r in proxy_rows}
    for record in proxy_rows:
        name, person_id, address = expected[record.verdict.sha256]
        assert (record.account, record.account_id, record.client_address) == (
            name,
            person_id,
            address,
        )
        assert record.alias == alias_of[record.verdict.sha256]
        assert record.source == "upload" and record.verdict.decision.value == "accept"
    for record in hook_rows:  # the hook's rows answer from the proxy's, same bytes
        origin = by_id[record.linked_decision_id or 0]
        assert record.verdict.sha256 == origin.verdict.sha256
        assert (record.account, record.client_address, record.alias) == (
            origin.account,
            origin.client_address,
            origin.alias,
        )
    # every file classified once, in the proxy; the hook recognised all twenty
    assert w.model.images == 20
    assert len(w.pictrs.validation_calls) == 20
    assert all(c.status == 200 for c in w.pictrs.validation_calls)


def test_a_refused_attempt_is_attributed_and_never_reaches_pictrs(
    world: Any, astronaut: Image.Image
) -> None:
    w: World = world("0.5.7", **FACE_REJECT)
    mallory = w.lemmy.add_user("t-mallory", "mallory", timedelta(days=2))

    async def attempt() -> httpx.Response:
        async with httpx.AsyncClient(timeout=60) as client:
            return await _upload(
                client, w, mallory.token, "203.0.113.66", encode(astronaut), cookie=False
            )

    answer = asyncio.run(attempt())
    # what pict-rs answers a failed validation, which both Lemmy versions read
    assert answer.status_code == 400
    assert answer.json() == {
        "msg": "Failed external validation",
        "code": "failed-external-validation",
    }
    assert w.pictrs.stored == {} and w.pictrs.validation_calls == []
    [record] = w.records()
    assert record.verdict.decision.value == "reject"
    assert record.verdict.reasons[0].code == "label_reject"
    assert (record.account, record.account_id, record.client_address) == (
        "mallory",
        mallory.id,
        "203.0.113.66",
    )
    assert record.alias is None and record.evidence_id is not None
    assert w.services.evidence is not None
    kept = w.services.evidence.show(record.evidence_id)
    assert kept.metadata["account"] == "mallory"
    assert kept.metadata["client_address"] == "203.0.113.66"


def test_bytes_pictrs_reencodes_are_scanned_again_and_still_attributed(world: Any) -> None:
    """A JPEG that needs re-orienting is stored transcoded (tests/servers/pictrs.py):
    the hook cannot recognise the bytes, so it scans them, linked to the one upload."""
    w: World = world("0.5.7")
    erin = w.lemmy.add_user("t-erin", "erin", timedelta(days=30))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(gradient(320, 200), "JPEG", exif=exif.tobytes())

    async def one() -> httpx.Response:
        async with httpx.AsyncClient(timeout=60) as client:
            login = {"Authorization": f"Bearer {erin.token}", "X-Forwarded-For": "198.51.100.4"}
            return await client.post(
                f"{w.warden}/pictrs-proxy/image",
                files={"images[]": ("r.jpg", data, "image/jpeg")},
                headers=login,
            )

    answer = asyncio.run(one())
    assert answer.status_code == 201, answer.text
    alias = answer.json()["files"][0]["file"]
    proxy_row, hook_row = w.records()
    assert Image.open(io.BytesIO(w.pictrs.stored[alias])).size == (200, 320)
    assert hook_row.linked_decision_id == proxy_row.id
    assert hook_row.verdict.sha256 != proxy_row.verdict.sha256
    assert {proxy_row.account, hook_row.account} == {"erin"}
    assert proxy_row.alias == hook_row.alias == alias
    assert w.model.images == 2  # the original, then what pict-rs stored


def test_a_login_lemmy_does_not_confirm_leaves_the_upload_unattributed_but_scanned(
    world: Any,
) -> None:
    w: World = world("0.5.7")

    async def one() -> httpx.Response:
        async with httpx.AsyncClient(timeout=60) as client:
            return await _upload(
                client, w, "not-a-token", "198.51.100.9", encode(gradient(), "PNG"), cookie=True
            )

    assert asyncio.run(one()).status_code == 201
    proxy_row, hook_row = w.records()
    assert proxy_row.account is None and proxy_row.client_address == "198.51.100.9"
    assert proxy_row.alias is not None and hook_row.linked_decision_id == proxy_row.id


def test_oversized_uploads_are_refused_in_the_proxy_and_attributed(world: Any) -> None:
    """A file over media.max_bytes, and a request body over what any upload may carry:
    each refused before pict-rs, each logged with who tried."""
    w: World = world("0.5.7", media={"max_bytes": 4096})
    frank = w.lemmy.add_user("t-frank", "frank", timedelta(days=30))
    big = encode(gradient(120, 90, seed=9), "PNG")
    huge = b"\0" * (4096 * 16 + 128 * 1024)
    assert 4096 < len(big) < 4096 * 16

    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return [
                await _upload(client, w, frank.token, "198.51.100.77", data, cookie=False)
                for data in (big, huge)
            ]

    file_over, body_over = asyncio.run(both())
    assert file_over.status_code == 400
    assert file_over.json()["code"] == "failed-external-validation"
    assert body_over.status_code == 413 and body_over.json()["code"] == "validate-file-size"
    assert w.pictrs.stored == {} and w.pictrs.validation_calls == []
    first, second = w.records()
    assert [first.verdict.reasons[0].code, second.verdict.reasons[0].code] == [
        "file_too_large",
        "file_too_large",
    ]
    for record in (first, second):
        assert (record.account, record.client_address) == ("frank", "198.51.100.77")


def test_a_review_upload_is_one_item_in_the_console_queue_not_two(
    world: Any, astronaut: Image.Image
) -> None:
    """The hook's echo of the proxy's decision is logged, but the review queue, the
    counts and people pages see one decision per upload (store/decisions.not_echo)."""
    w: World = world("0.5.7", policy={"labels": {"FACE_FEMALE": {"review": 0.5}}})
    gina = w.lemmy.add_user("t-gina", "gina", timedelta(days=30))

    async def one() -> httpx.Response:
        async with httpx.AsyncClient(timeout=60) as client:
            return await _upload(client, w, gina.token, "198.51.100.8", encode(astronaut), False)

    assert asyncio.run(one()).status_code == 201  # a review is stored, and queued
    proxy_row, hook_row = w.records()
    assert proxy_row.verdict.decision.value == hook_row.verdict.decision.value == "review"
    assert hook_row.linked_decision_id == proxy_row.id
    store = ConsoleStore(w.services.database)
    assert store.review_ids(10) == [proxy_row.id]
    assert store.decision_ids_of("gina") == [proxy_row.id]
    assert sum(c.count for c in store.decision_counts(proxy_row.created_at.replace(second=0))) == 1


def test_an_accepted_upload_pictrs_never_got_is_still_recorded_and_attributed(
    world: Any,
) -> None:
    """pict-rs down: Lemmy gets a 502 naming it; the decision stays, with no alias."""
    w: World = world("0.5.7", pictrs={"url": f"http://127.0.0.1:{free_port()}"})
    hal = w.lemmy.add_user("t-hal", "hal", timedelta(days=30))

    async def one() -> httpx.Response:
        async with httpx.AsyncClient(timeout=60) as client:
            return await _upload(client, w, hal.token, "198.51.100.3", encode(gradient()), True)

    answer = asyncio.run(one())
    assert answer.status_code == 502 and answer.json()["code"] == "bad-gateway"
    [record] = w.records()
    assert (record.account, record.client_address, record.alias) == ("hal", "198.51.100.3", None)
    assert record.verdict.decision.value == "accept"

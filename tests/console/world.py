"""One incident, staged for the console tests: Warden served on loopback beside a
Lemmy double (0.19 or 1.0) and a pict-rs double, with review decisions in its log.

- Lemmy: an admin who signs in, the bot account Warden bans with, an uploader
  (mallory) invited by alice, another uploader (eve), a moderator of community 7
  and an ordinary user (for /authz). Ban calls are recorded with their form, so
  a test can see `remove_data` (v3) / `remove_or_restore_data` (v4): Lemmy's
  `BanPerson` / `BanPersonV4` fields (lemmy-js-client 0.19.9 src/types/BanPerson.ts,
  1.0.0-beta.1 src/types/BanPerson.ts).
- pict-rs 0.5.7 (tests/servers/pictrs_internal.py): the reviewed picture under
  two aliases (one file), an earlier resized copy eve uploaded, and an unrelated
  picture that must survive the flag.
- The decisions log: review decisions for each, written as the gate writes them;
  one of them recorded a CSAM-bank match.

Pictures are ordinary photographs from scikit-image and synthetic gradients.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from tests.conftest import encode, gradient
from tests.servers.lemmy_double import LemmyDouble, lemmy_jwt
from tests.servers.pictrs_internal import PictrsInternalDouble
from tests.servers.uvicorn_thread import ServedApp
from warden.config import load_settings
from warden.domain.verdict import Decision, FrameHash, MediaInfo, Reason, Verdict
from warden.media import hashing
from warden.services import Services, build_services
from warden.store.decisions import Attribution, DecisionLog
from warden.web.app import create_app

ADMIN_PASSWORD = "admin pass"
MOD_PASSWORD = "mod pass"


@dataclass(frozen=True)
class Post:
    """A Lemmy post as the search answer's PostView carries it (`post`, `community`)."""

    id: int
    community_id: int
    community: str
    url: str | None = None
    body: str | None = None
    thumbnail_url: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "post": {
                "id": self.id,
                "name": f"post {self.id}",
                "url": self.url,
                "body": self.body,
                "thumbnail_url": self.thumbnail_url,
                "community_id": self.community_id,
            },
            "community": {"id": self.community_id, "name": self.community},
        }


class RecordingLemmy(LemmyDouble):
    """The Lemmy double, also keeping every ban call's whole form, and answering the
    search route over `posts`:

    - 0.19: `GET /api/v3/search?q=&type_=` (0.19.5 src/api_routes_http.rs:159-162,
      crates/api_common/src/site.rs:63-77): `Url` matches `post.url` exactly, `Posts`
      the name or body by ILIKE `%q%` (0.19.5 crates/db_views/src/post_view.rs:377-390);
    - 1.0: `GET /api/v4/search?search_term=&type_=Posts[&post_url_only=true]`
      (1.0.0-beta.1 crates/api/routes/src/lib.rs:210-213, crates/db_views/site/src/api.rs:695-715,
      crates/db_views/post/src/impls.rs:455-472); neither reads `thumbnail_url`.
      The answer's `posts` are PostViews (0.19.5 site.rs:80-88; 1.0 api.rs:720-735)."""

    def __init__(self, version: str) -> None:
        super().__init__(version)
        self.ban_forms: list[dict[str, Any]] = []
        self.posts: list[Post] = []
        self.searches: list[dict[str, str]] = []

    def _search(self, query: dict[str, str]) -> list[dict[str, Any]]:
        self.searches.append(query)
        term = query.get("q" if self.api == "v3" else "search_term", "")
        by_url = query.get("type_") == "Url" or query.get("post_url_only") == "true"
        if by_url:
            return [p.view() for p in self.posts if p.url == term]
        if query.get("type_") != "Posts":
            return []
        needle = term.lower()
        return [p.view() for p in self.posts if needle in f"post {p.id} {p.body or ''}".lower()]

    def _invites_route(self, handler: Any, method: str, form: dict[str, Any]) -> tuple[int, Any]:
        path = urlsplit(handler.path).path
        if method == "POST" and path in ("/api/v3/user/ban", "/api/v4/admin/ban"):
            self.ban_forms.append(dict(form))
        if method == "GET" and path == f"/api/{self.api}/search":
            query = {k: v[0] for k, v in parse_qs(urlsplit(handler.path).query).items()}
            posts = self._search(query)
            if self.api == "v3":
                return 200, {"type_": query.get("type_", "All"), "posts": posts, "comments": []}
            return 200, {"posts": posts, "comments": [], "communities": [], "persons": []}
        return super()._invites_route(handler, method, form)


def frames_of(image: Image.Image) -> tuple[FrameHash, ...]:
    hashes = hashing.pdq_dihedral(image)
    return (FrameHash(0, hashes[0].hex, hashes[0].quality, tuple(h.hex for h in hashes[1:])),)


def review_verdict(data: bytes, image: Image.Image, *, csam: bool = False) -> Verdict:
    """A `review` verdict as the gate makes it for this picture."""
    reasons = [Reason("label_review", "A label scored above its review threshold.")]
    matches: tuple[Any, ...] = ()
    if csam:
        match = {"bank": "hotline-list", "csam": True, "entry_id": 1, "distance": 12}
        matches = (MappingProxyType(match),)
        reasons = [Reason("hash_match", "Matched a known list.", MappingProxyType({"csam": True}))]
    return Verdict(
        decision=Decision.REVIEW,
        reasons=tuple(reasons),
        sha256=hashing.sha256(data),
        size=len(data),
        media=MediaInfo("JPEG", "image/jpeg", image.width, image.height, 1, 1),
        frames=frames_of(image),
        labels=MappingProxyType({"FEMALE_BREAST_EXPOSED": 0.41}),
        model="nudenet-320n",
        matches=matches,
    )


@dataclass
class World:
    lemmy: RecordingLemmy
    pictrs: PictrsInternalDouble
    services: Services
    served: ServedApp
    artefacts: Path
    ids: dict[str, int] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.served.port}"


def artefacts_dir(tmp_path: Path, version: str) -> Path:
    """Where screenshots go: $WARDEN_ARTEFACTS/console/<version>, else the test's tmp dir."""
    root = os.environ.get("WARDEN_ARTEFACTS")
    base = Path(root) / "console" if root else tmp_path / "artefacts"
    out = base / version
    out.mkdir(parents=True, exist_ok=True)
    return out


def staged(
    version: str,
    tmp_path: Path,
    astronaut: Image.Image,
    federated: dict[str, Any] | None = None,
    **console: Any,
) -> Iterator[World]:
    lemmy = RecordingLemmy(version)
    lemmy.add_user("t-admin", "admin", timedelta(days=900), admin=True, password=ADMIN_PASSWORD)
    bot = lemmy.add_user("t-bot", "wardenbot", timedelta(days=900), admin=True)
    lemmy.add_user("t-alice", "alice", timedelta(days=400), comments=50)
    lemmy.add_user("t-mallory", "mallory", timedelta(days=2))
    lemmy.add_user("t-eve", "eve", timedelta(days=3))
    lemmy.add_user("t-mod", "moddy", timedelta(days=500), moderates=[7], password=MOD_PASSWORD)
    lemmy.add_user("t-user", "ursula", timedelta(days=500), comments=80)
    lemmy.start()
    pictrs = PictrsInternalDouble(api_key="pictrs-key")
    pictrs.__enter__()
    settings = load_settings(
        None,
        data_dir=tmp_path / "data",
        lemmy={"url": lemmy.url, "api": lemmy.api, "identity_ttl_s": 0, "bot_token": bot.token},
        pictrs={"url": pictrs.url, "api_key": "pictrs-key"},
        console={"cookie_secure": False, **console},
        federated=federated or {},
    )
    services = build_services(settings)
    services.database.upgrade()
    world = World(
        lemmy,
        pictrs,
        services,
        ServedApp(create_app(settings, services)),
        artefacts_dir(tmp_path, version),
    )
    log = DecisionLog(services.database)
    photo = astronaut.convert("RGB")
    pictures = {
        "reviewed": photo,
        "earlier": photo.resize((photo.width * 3 // 4, photo.height * 3 // 4)),
        "other": gradient(480, 360, seed=3),
        "matched": gradient(400, 300, seed=5),
    }
    for name, image in pictures.items():
        data = encode(image, "JPEG", quality=90)
        world.data[name] = data
        pictrs.add(data, f"{name}-1.jpg")
    pictrs.add(world.data["reviewed"], "reviewed-2.jpg")  # the same file, uploaded twice
    uploader = {"earlier": "eve", "reviewed": "mallory", "other": "ursula", "matched": "eve"}
    for name in ("earlier", "other", "matched", "reviewed"):
        verdict = review_verdict(world.data[name], pictures[name], csam=name == "matched")
        # attributed as the ingest proxy records it (issue 18): account and address
        who = Attribution(account=uploader[name], client_address=ADDRESSES[uploader[name]])
        world.ids[name] = log.record(
            verdict, source="upload", config_version="test", attribution=who
        )
    ledger = services.console.service.invites if services.console else None
    assert ledger is not None
    alice, mallory = lemmy.accounts["t-alice"], lemmy.accounts["t-mallory"]
    from datetime import UTC, datetime

    ledger.add_edge(mallory.id, "mallory", alice.id, "alice", datetime.now(UTC))
    world.served.on_stop = services.aclose
    world.served.start()
    try:
        yield world
    finally:
        for close in world.closers:
            close()
        world.served.stop()
        pictrs.__exit__()
        lemmy.stop()


#: where each uploader's uploads came from (the ingest proxy's X-Forwarded-For)
ADDRESSES = {"eve": "198.51.100.5", "mallory": "203.0.113.66", "ursula": "198.51.100.21"}


def png_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


__all__ = ["ADMIN_PASSWORD", "MOD_PASSWORD", "World", "lemmy_jwt", "png_size", "staged"]

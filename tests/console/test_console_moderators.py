"""Moderators see exactly the reviews posted in the communities they moderate, in real
headless Chromium (JavaScript off), for Lemmy 0.19 and 1.0 doubles, with the posts
found through Lemmy's database (read only) and through its search API.

An upload is attributed when it is stored (account, address, alias), but it only
reaches a community when someone posts it. The console's placement look-up finds
the posts using each reviewed alias — `post.url`, `post.thumbnail_url` (database
only) or the body's markdown — and a moderator's queue shows only what a post in
one of their communities uses. Decoys in the moderator's own community (a longer
alias, another host's URL) must place nothing.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from tests.console.world import MOD_PASSWORD, Post, World, staged
from tests.servers import lemmy_schema

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HOST = "lemmy.example"
NINE_PASSWORD = "nine pass"


def _posts(version: str, via: str) -> list[Post]:
    """Community 7 ("pics", moddy's) uses `reviewed` (post url) and `matched` (a body
    image; a cached thumbnail where the database is read); community 9 ("memes",
    nina's) uses `other`; decoys in 7 name `earlier` only inside a longer alias or on
    another host."""
    url = lambda alias, host=HOST: lemmy_schema.image_url(host, alias, version)  # noqa: E731
    matched = (
        Post(104, 7, "pics", thumbnail_url=url("matched-1.jpg"))
        if via == "database"
        else Post(104, 7, "pics", body=f"look ![x]({url('matched-1.jpg')})")
    )
    return [
        Post(101, 7, "pics", url=url("reviewed-1.jpg")),
        Post(102, 9, "memes", body=f"lol ![]({url('other-1.jpg')}) lol"),
        Post(
            103,
            7,
            "pics",
            body=f"![]({url('earlier-1.jpgx')}) and ![]({url('earlier-1.jpg', 'elsewhere.example')})",
        ),
        matched,
    ]


def _lemmy_database(postgres, version: str, posts: list[Post]) -> str:  # type: ignore[no-untyped-def]
    url = postgres.create_database(f"lemmy_mods_{os.getpid()}_{time.monotonic_ns()}")
    with psycopg.connect(
        url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        conn.execute(lemmy_schema.ddl(version))
        conn.execute("INSERT INTO community (id, name) VALUES (7, 'pics'), (9, 'memes')")
        for p in posts:
            conn.execute(
                "INSERT INTO post (id, name, url, body, thumbnail_url, community_id)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (p.id, f"post {p.id}", p.url, p.body, p.thumbnail_url, p.community_id),
            )
    return url


@pytest.fixture(
    params=[
        ("0.19.5", "api"),
        ("1.0", "api"),
        pytest.param(("0.19.5", "database"), marks=pytest.mark.postgres),
        pytest.param(("1.0", "database"), marks=pytest.mark.postgres),
    ],
    ids=lambda p: "-".join(p),
)
def world(
    request: pytest.FixtureRequest, tmp_path: Path, astronaut: Image.Image
) -> Iterator[World]:
    version, via = request.param
    posts = _posts(version, via)
    federated: dict[str, object] = {"local_hosts": [HOST]}
    if via == "database":
        federated["lemmy_database_url"] = _lemmy_database(
            request.getfixturevalue("postgres"), version, posts
        )
    for w in staged(version, tmp_path, astronaut, federated, moderators=True):
        if via == "api":
            w.lemmy.posts.extend(posts)
        w.lemmy.add_user(
            "t-nine", "nina", timedelta(days=300), moderates=[9], password=NINE_PASSWORD
        )
        for name in ("reviewed", "earlier", "other", "matched"):  # pict-rs answered 201
            w.services.decisions.set_alias(w.ids[name], f"{name}-1.jpg")
        yield w


def _queue_as(world: World, p, user: str, password: str) -> tuple[set[int], object]:  # type: ignore[no-untyped-def]
    browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
    page = browser.new_context(java_script_enabled=False).new_page()
    page.goto(f"{world.url}/console")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("button[type=submit]")
    assert page.url.endswith("/console/queue"), page.url
    items = page.locator(".item")
    shown = {
        int((items.nth(i).get_attribute("id") or "").removeprefix("item-"))
        for i in range(items.count())
    }
    return shown, (browser, page)


def test_moderators_see_exactly_the_reviews_posted_in_their_communities(world: World) -> None:
    from playwright.sync_api import sync_playwright

    ids = world.ids
    via = "database" if world.services.settings.federated.lemmy_database_url else "api"
    with sync_playwright() as p:
        shown, (browser, page) = _queue_as(world, p, "moddy", MOD_PASSWORD)
        assert shown == {ids["reviewed"], ids["matched"]}
        # the CSAM-bank match is placed in community 7 too, but still only metadata
        assert page.locator(f"#withheld-{ids['matched']}").count() == 1
        assert page.locator(f"#item-{ids['matched']} img").count() == 0
        assert "pics (#7, post 101)" in (page.text_content(f"#item-{ids['reviewed']}") or "")
        thumb = page.request.get(f"{world.url}/console/queue/{ids['reviewed']}/thumb.png")
        assert thumb.status == 200 and thumb.headers["content-type"] == "image/png"
        for hidden in ("other", "earlier"):  # another community's, and the decoys' media
            answer = page.request.get(f"{world.url}/console/queue/{ids[hidden]}/thumb.png")
            assert answer.status == 404, hidden
        page.screenshot(path=str(world.artefacts / f"queue-moderator-{via}.png"), full_page=True)
        browser.close()

        searches = len(world.lemmy.searches)
        shown, (browser, page) = _queue_as(world, p, "nina", NINE_PASSWORD)
        assert shown == {ids["other"]}  # community 9's, nothing of community 7
        assert "memes (#9, post 102)" in (page.text_content(f"#item-{ids['other']}") or "")
        browser.close()
        # the look-up is cached for console.placement_s: opening the queue again asks nobody
        assert len(world.lemmy.searches) == searches
    if via == "database":
        assert world.lemmy.searches == []  # the database answered; the API was never asked
    else:
        assert world.lemmy.searches, "Lemmy's search API was asked"
    places = world.services.console.service.places.of(  # type: ignore[union-attr]
        f"{n}-1.jpg" for n in ("reviewed", "earlier", "other", "matched")
    )
    assert {a: [(p.post_id, p.community_id) for p in ps] for a, ps in places.items()} == {
        "reviewed-1.jpg": [(101, 7)],
        "other-1.jpg": [(102, 9)],
        "matched-1.jpg": [(104, 7)],
    }

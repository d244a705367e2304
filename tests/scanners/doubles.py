"""Doubles of the external scanning services, served on loopback by one Starlette app.

Each answers as its vendor documents (or, for pictrs-safety, as its code does),
including its refusals and throttling; a test picks the behaviour with `mode`
and what counts as a hit with `hits`. Sources:

- PhotoDNA Cloud Service, Match:
  https://developer.microsoftmoderator.com/docs/services/57c7426e2703740ec4c9f4c3/operations/57c7426f27037407c8cc69e6
  (POST .../photodna/v1.0/Match?enhance, Ocp-Apim-Subscription-Key, image body of
  gif/jpeg/png/bmp/tiff; 200 {Status{Code 3000|3002|3004|3206|3208, Description},
  ContentId, IsMatch, MatchDetails{AdvancedInfo, MatchFlags[{AdvancedInfo[{Key,
  Value}], Source}]}, TrackingId}; 5 or 10 requests a second, beyond: 429). The
  401/429 bodies are Azure API Management's `{"statusCode", "message"}`.
- Hive v2 sync task: https://docs.thehive.ai/reference/post_v2-task-sync (multipart
  `media`), https://docs.thehive.ai/docs/authentication (`authorization: token
  <key>`), https://docs.thehive.ai/reference-link/classification (status.status
  {code, message "SUCCESS"}, response.output[{time, classes[{class, score}]}]).
- pictrs-safety v1.2.2 (github:db0/pictrs-safety@844a8e66abb212d17a2aa0be96b148329e1fc91f):
  pictrs_safety_api/apis/v1/base.py:49-54 (401 for unknown ids), :55-61 (200
  "Worker Stale"/"Queue Full"), :64-67 (Content-Type subtype as extension),
  :104-108 (406 "Potential CSAM Image detected"), :109-113 (200 "Image OK").
- The generic HTTP scanner has no vendor: its protocol is Warden's own
  (docs/scanners.md, "Generic HTTP"); with `send = "url"` the request is JSON
  {url, sha256, content_type, size, expires_at} and the scanner GETs the url.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PHOTODNA_KEY = "pdna-key-5b1e0c77"
HIVE_KEY = "hive-key-92a0d4e1"
PICTRS_ID = "pictrs-id-6f3c2a18"
GENERIC_TOKEN = "Bearer generic-token-0d9e4b2c"
PHOTODNA_TYPES = {"image/gif", "image/jpeg", "image/png", "image/bmp", "image/tiff"}


@dataclass
class State:
    """What the doubles do next, and what they saw."""

    mode: str = "ok"  # ok | throttle | error | slow | bad_json | <vendor-specific>
    slow_s: float = 2.0
    retry_after: str = "2"
    hits: set[str] = field(default_factory=set)  # SHA-256s the service "recognises"
    hive_scores: dict[str, float] = field(default_factory=dict)
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    seen_headers: list[dict[str, str]] = field(default_factory=list)
    hook: list[dict[str, Any]] = field(default_factory=list)  # alerts posted to /hook
    fetched: list[tuple[str, int]] = field(default_factory=list)  # (url, status) by-url GETs
    sent: list[dict[str, Any]] = field(default_factory=list)  # by-url request bodies
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        self.mode, self.slow_s, self.retry_after = "ok", 2.0, "2"
        self.hits, self.hive_scores = set(), {}
        self.requests = self.in_flight = self.max_in_flight = 0
        self.seen_headers = []
        self.hook = []
        self.fetched, self.sent = [], []


STATE = State()


async def _common(request: Request) -> Response | None:
    """Throttling, failures and slowness, the same for every vendor."""
    if STATE.mode == "throttle":
        return JSONResponse(
            {"statusCode": 429, "message": "Rate limit is exceeded."},
            status_code=429,
            headers={"Retry-After": STATE.retry_after},
        )
    if STATE.mode == "error":
        return JSONResponse({"message": "internal error"}, status_code=500)
    if STATE.mode == "bad_json":
        return Response("<html>gateway</html>", media_type="text/html")
    if STATE.mode == "slow":
        await asyncio.sleep(STATE.slow_s)
    return None


def _counted(handler: Any) -> Any:
    async def wrapped(request: Request) -> Response:
        with STATE.lock:
            STATE.requests += 1
            STATE.in_flight += 1
            STATE.max_in_flight = max(STATE.max_in_flight, STATE.in_flight)
            STATE.seen_headers.append(dict(request.headers))
        try:
            return await handler(request)
        finally:
            with STATE.lock:
                STATE.in_flight -= 1

    return wrapped


async def photodna(request: Request) -> Response:
    if request.headers.get("ocp-apim-subscription-key") != PHOTODNA_KEY:
        return JSONResponse(
            {"statusCode": 401, "message": "Access denied due to invalid subscription key."},
            status_code=401,
        )
    early = await _common(request)
    if early is not None:
        return early
    body = await request.body()
    tracking = f"1_photodna_{uuid.uuid4()}"
    if STATE.mode == "status3004":
        status = {"Code": 3004, "Description": "Unknown scenario or unhandled error"}
        return JSONResponse({"Status": status, "TrackingId": tracking})
    if request.headers.get("content-type") not in PHOTODNA_TYPES:
        status = {"Code": 3206, "Description": "The given file could not be verified as an image"}
        return JSONResponse({"Status": status, "TrackingId": tracking})
    matched = hashlib.sha256(body).hexdigest() in STATE.hits
    flags = (
        [{"AdvancedInfo": [{"Key": "MatchId", "Value": "104149"}], "Source": "Test"}]
        if matched
        else []
    )
    return JSONResponse(
        {
            "Status": {"Code": 3000, "Description": "OK", "Exception": None},
            "ContentId": None,
            "IsMatch": matched,
            "MatchDetails": {"AdvancedInfo": [], "MatchFlags": flags},
            "TrackingId": tracking,
        }
    )


async def hive(request: Request) -> Response:
    if request.headers.get("authorization") != f"token {HIVE_KEY}":
        return JSONResponse({"message": "invalid api key"}, status_code=401)
    early = await _common(request)
    if early is not None:
        return early
    async with request.form() as form:
        media = form.get("media")
        if media is None or isinstance(media, str):
            return JSONResponse({"message": "media, url or text_data is required"}, 400)
        await media.read()
    classes = [{"class": k, "score": v} for k, v in STATE.hive_scores.items()]
    task = {
        "status": {"code": "0", "message": "SUCCESS"},
        "response": {
            "input": {"id": str(uuid.uuid4())},
            "output": [{"time": 0, "classes": classes}],
        },
    }
    return JSONResponse({"id": str(uuid.uuid4()), "code": 200, "status": [task]})


async def pictrs_safety(request: Request) -> Response:
    if request.path_params["pictrs_id"] not in (PICTRS_ID, "IPADDR"):
        return JSONResponse({"message": "You are not authorized to use this service"}, 401)
    if STATE.mode in ("stale", "queue_full"):
        text = {"stale": "Worker Stale", "queue_full": "Queue Full"}[STATE.mode]
        return JSONResponse({"message": text}, 200)
    early = await _common(request)
    if early is not None:
        return early
    body = await request.body()
    if hashlib.sha256(body).hexdigest() in STATE.hits:
        return JSONResponse({"message": "Potential CSAM Image detected"}, 406)
    return JSONResponse({"message": "Image OK"}, 200)


async def generic(request: Request) -> Response:
    if request.headers.get("authorization") != GENERIC_TOKEN:
        return JSONResponse({"error": "unauthorized"}, 401)
    early = await _common(request)
    if early is not None:
        return early
    body = await request.body()
    if STATE.mode == "unknown_value":
        return JSONResponse({"result": {"action": "maybe"}})
    action = "block" if hashlib.sha256(body).hexdigest() in STATE.hits else "pass"
    return JSONResponse(
        {"result": {"action": action}, "labels": {"nsfw": 0.97 if action == "block" else 0.01}}
    )


async def generic_by_url(request: Request) -> Response:
    """The generic scanner fed a URL: it GETs the media (and, in mode `refetch`, GETs
    it a second time, as a retrying client would), then answers as `generic` does.
    Mode `no_fetch` answers without fetching."""
    if request.headers.get("authorization") != GENERIC_TOKEN:
        return JSONResponse({"error": "unauthorized"}, 401)
    early = await _common(request)
    if early is not None:
        return early
    sent = await request.json()
    STATE.sent.append(sent)
    if STATE.mode == "no_fetch":
        return JSONResponse({"result": {"action": "pass"}})
    async with httpx.AsyncClient() as client:
        first = await client.get(sent["url"])
        STATE.fetched.append((sent["url"], first.status_code))
        if STATE.mode == "refetch":
            again = await client.get(sent["url"])
            STATE.fetched.append((sent["url"], again.status_code))
    if first.status_code != 200:
        return JSONResponse({"error": f"could not fetch the media ({first.status_code})"}, 400)
    action = "block" if hashlib.sha256(first.content).hexdigest() in STATE.hits else "pass"
    return JSONResponse({"result": {"action": action}})


async def hook(request: Request) -> Response:
    """A Discord-style webhook (204), for alerts raised by the gate."""
    STATE.hook.append(await request.json())
    return Response(status_code=204)


def app() -> Starlette:
    return Starlette(
        routes=[
            Route("/photodna/v1.0/Match", _counted(photodna), methods=["POST"]),
            Route("/api/v2/task/sync", _counted(hive), methods=["POST"]),
            Route("/api/v1/scan/{pictrs_id}", _counted(pictrs_safety), methods=["POST"]),
            Route("/generic/scan", _counted(generic), methods=["POST"]),
            Route("/generic/by-url", _counted(generic_by_url), methods=["POST"]),
            Route("/hook", hook, methods=["POST"]),
        ]
    )

"""The ingest proxy: Lemmy talks to pict-rs through Warden, so remote fetches can be told apart.

pict-rs calls the validation hook with the bytes only: an upload and a remote
image Lemmy asked it to cache look the same there. Warden therefore sits
between Lemmy and pict-rs (Lemmy's `pictrs.url` points at
`http://<warden>:8790/pictrs-proxy/`) and forwards every request unchanged,
streaming both ways, with two exceptions:

- `GET /image/download?url=...` and `GET /image/...?proxy=...` (remote fetches)
  obey `federated.remote_media`:
  `block` answers it here, as pict-rs answers a failed ingest, so pict-rs never
  fetches the image and Lemmy keeps linking to the origin; `scan` and `allow`
  forward it.
- While a request is forwarded, the tracker counts it as an upload or a remote
  fetch in flight. The validation hook asks the tracker which kind of ingest is
  running: only uploads -> `upload`, only fetches -> `remote`, both or neither
  -> `ingest` (cannot tell; the stricter failure mode of the two applies).

The trade-off, chosen knowingly: blocking is exact (it happens in the proxy);
labelling a scanned image as upload or remote is exact whenever one kind of
ingest runs at a time and falls back to the stricter rules when both overlap.
Every ingest is scanned in every mode, since pict-rs calls the hook for all.

Uploads (issue 18) are scanned here, where the uploader is known, before pict-rs
stores a byte (web/routers/pictrs_proxy.py, services/uploads.py). While the
accepted upload is forwarded, the tracker holds each file's SHA-256 with the
proxy's decision (`expect`); the validation hook `claim`s it when pict-rs sends
the same bytes and answers from that decision instead of classifying twice. The
link lives exactly as long as the proxy request: pict-rs calls the hook before it
answers the upload, so an unclaimed entry is dropped (`release`) when it answers.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

#: hop-by-hop headers a proxy must not forward (RFC 9110 7.6.1), plus Host
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


@dataclass
class Expected:
    """One file the proxy decided and forwarded: what the hook will be sent."""

    request: int  # the proxy request that forwards it
    sha256: str
    decision_id: int | None
    payload: Any  # the proxy's verdict and attribution, opaque here
    claimed: bool = field(default=False)


class IngestTracker:
    """Counts uploads and remote fetches being forwarded to pict-rs right now, and
    holds the files the proxy already decided until the hook claims them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._uploads = 0
        self._fetches = 0
        self._ids = itertools.count(1)
        self._expected: dict[int, list[Expected]] = {}

    def expect(self, files: list[tuple[str, int | None, Any]]) -> int:
        """Hold `(sha256, decision id, payload)` per file for one proxy request; its key."""
        with self._lock:
            request = next(self._ids)
            self._expected[request] = [Expected(request, s, d, p) for s, d, p in files]
        return request

    def claim(self, sha256: str, *, guess: bool = False) -> Expected | None:
        """The oldest unclaimed file with these bytes, marked claimed; or, with `guess`
        and bytes that match nothing (pict-rs re-encoded them), the one unclaimed file
        of the only upload in flight (its `sha256` then differs). None when it cannot
        be told."""
        with self._lock:
            waiting = [e for files in self._expected.values() for e in files if not e.claimed]
            for entry in waiting:
                if entry.sha256 == sha256:
                    entry.claimed = True
                    return entry
            if guess and len(waiting) == 1 and len(self._expected) == 1:
                waiting[0].claimed = True
                return waiting[0]
        return None

    def release(self, request: int) -> None:
        """Forget one request's files (pict-rs answered it)."""
        with self._lock:
            self._expected.pop(request, None)

    @contextmanager
    def running(self, kind: str) -> Iterator[None]:
        with self._lock:
            if kind == "remote":
                self._fetches += 1
            else:
                self._uploads += 1
        try:
            yield
        finally:
            with self._lock:
                if kind == "remote":
                    self._fetches -= 1
                else:
                    self._uploads -= 1

    def source(self) -> str:
        """`upload`, `remote`, or `ingest` when it cannot be told."""
        with self._lock:
            uploads, fetches = self._uploads, self._fetches
        if uploads and not fetches:
            return "upload"
        if fetches and not uploads:
            return "remote"
        return "ingest"


#: What Lemmy appends to `pictrs.url` (see web/routers/pictrs_proxy.py for the
#: citations): `image...`, `internal/...`, `healthz`.
_JOINED = ("image", "internal/", "healthz")


def pictrs_path(path: str) -> str | None:
    """The pict-rs path for what followed `/pictrs-proxy` in the request, or None.

    `/image/download` (Lemmy's `pictrs.url` with a trailing slash) and `image/download`
    (without one: Lemmy concatenates) both mean pict-rs's `/image/download`. Repeated
    slashes are folded, so what is classified here is what pict-rs is sent.
    """
    if path.startswith("/"):
        rest = path.lstrip("/")
    elif path.startswith(_JOINED):
        rest = path
    else:
        return None
    while "//" in rest:
        rest = rest.replace("//", "/")
    return "/" + rest


def ingest_kind(method: str, path: str, query: Mapping[str, str] | None = None) -> str | None:
    """Which pict-rs requests ingest media: `upload`, `remote`, or None.

    Remote: `GET /image/download?url=` (Lemmy caching a federated image or link
    preview: LemmyNet/lemmy 0.19.5 crates/api_common/src/request.rs:288-299, 1.0
    main crates/api/api_utils/src/request.rs:483-495) and any `GET /image/...?proxy=`
    (pict-rs's proxy mode, which Lemmy's `image_mode = ProxyAllImages` uses: pict-rs
    fetches and keeps it; 0.19.9 crates/api_common/src/request.rs:478, :491, 1.0
    crates/routes/src/images/download.rs:82-92). Upload: `POST /image` (0.19.3
    crates/routes/src/images.rs:102, 1.0 crates/routes/src/images/upload.rs:194).
    """
    clean = "/" + path.strip("/")
    if method == "POST" and clean in ("/image", "/image/backgrounded"):
        return "upload"
    if method == "GET" and clean == "/image/download":
        return "remote"
    if method == "GET" and clean.startswith("/image/") and query and "proxy" in query:
        return "remote"
    return None


@dataclass(frozen=True)
class UploadPart:
    """One file of a pict-rs upload (multipart field `images[]`)."""

    filename: str | None
    content_type: str | None
    data: bytes


def stored_aliases(body: bytes) -> list[str]:
    """The aliases in pict-rs's 201 answer to an upload, in the order of the files:
    `{"msg": "ok", "files": [{"file": alias, "delete_token", "details"}]}`, the same in
    0.4 and 0.5 (robinst/pict-rs 31049d3 = v0.5.16 src/lib.rs:329-368; 0.4.1 e10cb14
    src/lib.rs:281-296); what Lemmy reads from it (LemmyNet/lemmy 0.19.3
    crates/routes/src/images.rs:44-53, 1.0 main crates/api/api_utils/src/request.rs:328-338).
    An answer of another shape names no alias."""
    try:
        answer = json.loads(body)
    except ValueError:
        return []
    files = answer.get("files") if isinstance(answer, dict) else None
    if not isinstance(files, list):
        return []
    return [str(f["file"]) for f in files if isinstance(f, dict) and isinstance(f.get("file"), str)]


@dataclass(frozen=True)
class Forwarded:
    """pict-rs's answer, streamed back unchanged."""

    status: int
    headers: Mapping[str, str]
    body: AsyncIterator[bytes]
    response: httpx.Response  # closed once the body is sent


class PictrsProxy:
    """Forwards requests to pict-rs, streaming bodies both ways."""

    def __init__(self, upstream: str, *, timeout_s: float) -> None:
        self.upstream = upstream.rstrip("/")
        self._client = httpx.AsyncClient(timeout=timeout_s)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def forward(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: AsyncIterator[bytes] | bytes,
    ) -> Forwarded:
        url = f"{self.upstream}/{path.lstrip('/')}" + (f"?{query}" if query else "")
        clean = {k: v for k, v in headers.items() if k.lower() not in _HOP}
        has_body = method not in ("GET", "HEAD", "DELETE", "OPTIONS")
        request = self._client.build_request(
            method, url, headers=clean, content=body if has_body else None
        )
        response = await self._client.send(request, stream=True)
        out = {k: v for k, v in response.headers.items() if k.lower() not in _HOP}
        return Forwarded(response.status_code, out, response.aiter_raw(), response)

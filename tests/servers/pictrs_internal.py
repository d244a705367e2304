"""A pict-rs double for the internal API, rebuilt from pict-rs's handlers, per version.

Versions (robinst/pict-rs, a GitHub mirror without tags; commits are where
Cargo.toml says the version): "0.4" = 0.4.1 e10cb14 (what 0.4.3+ answers for
these routes), "0.5.6" = 0.5.0-0.5.6 (a613499 is 0.5.6), "0.5.7" = 0.5.7+
(6f95c72; the purge change is 3ecefcb).

- Every call needs `X-Api-Token` equal to the api key, else 401
  `{"msg": "Invalid API Key"}` (0.4.1 src/middleware.rs:44-76, 221-233).
- Files are stored once per distinct bytes; a second upload of the same bytes
  only adds an alias to the existing file (0.5.7 src/ingest.rs:220-239).
- `GET /internal/aliases?alias=`: 200 `{"msg": "ok", "aliases": [...]}`, an
  empty list for an unknown alias (0.4.1 src/lib.rs:1047-1058, src/repo.rs:95-101;
  0.5.7 src/lib.rs:1442-1454).
- `POST /internal/purge?alias=`: removes the file and every alias of it,
  answering its aliases (0.5.7 src/lib.rs:1393-1417, src/queue/cleanup.rs:111-144);
  unknown alias: 400 `{"msg": "No images associated with provided alias"}` on
  0.4 and 0.5.6 (0.4.1 src/lib.rs:1031-1036; 0.5.6 src/lib.rs:1436-1439), 404
  `{"msg": "Requested a file that doesn't exist", "code": "alias-not-found"}` on
  0.5.7 (src/lib.rs:1405-1409, src/error.rs:132-133, 273, 281-293, src/error_code.rs:125-127).
- `GET /image/original/{alias}` serves the bytes, 404 empty when unknown.
- `GET /internal/identifier?alias=`: `{"msg": "ok", "identifier": "..."}`;
  unknown: 404 `{"msg": "No identifiers associated with provided alias"}` on 0.4
  and 0.5.6 (0.4.1 src/lib.rs:1066-1071), the alias-not-found 404 on 0.5.7
  (src/lib.rs:1457-1473).
- `GET /internal/hashes?slug=&limit=` (0.5 only; 0.4 has no route: 404, empty
  body, 0.4.1 src/lib.rs:1184-1194): newest first, `limit` default 20, `next` =
  slug (URL-safe base64 with padding of the hash bytes) of the first file of the
  next page, an unknown slug starts from the newest again
  (0.5.7 src/lib.rs:560-654, src/repo.rs:546-576, 610-620, src/repo/postgres.rs:716-786);
  `hex` = SHA-256, 6 bytes of size, 1 format byte (src/repo/hash.rs:58-88);
  `details` as ApiDetails (src/details.rs:12-34).
Every purge call is recorded so tests can prove nothing was purged twice.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI, Header, Query
from fastapi.responses import JSONResponse, Response

from tests.servers.uvicorn_thread import ServedApp

VERSIONS = ("0.4", "0.5.6", "0.5.7")
_GONE_OLD = {"msg": "No images associated with provided alias"}
_GONE_NEW = {"msg": "Requested a file that doesn't exist", "code": "alias-not-found"}


@dataclass
class StoredFile:
    hex: str
    aliases: list[str]
    created_at: datetime
    identifier: str
    content_type: str = "image/webp"
    data: bytes = field(default=b"", repr=False)


def _hex(data: bytes, format_byte: int = 0) -> str:
    return (
        hashlib.sha256(data).digest() + len(data).to_bytes(8, "big")[2:] + bytes([format_byte])
    ).hex()


def _slug(hex_: str) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(hex_)).decode()


class PictrsInternalDouble:
    def __init__(
        self,
        aliases: set[str] | None = None,
        api_key: str = "pictrs-key",
        identifiers: dict[str, str] | None = None,
        *,
        version: str = "0.5.7",
        read_only: bool = False,
    ) -> None:
        assert version in VERSIONS, version
        self.version = version
        self.read_only = read_only
        self.api_key = api_key
        self.files: dict[str, StoredFile] = {}
        self._by_alias: dict[str, str] = {}
        self._clock = datetime(2024, 1, 1, tzinfo=UTC)
        self.purge_calls: Counter[str] = Counter()
        self.hash_pages = 0
        self._lock = threading.Lock()
        identifiers = identifiers or {}
        for alias in sorted(aliases or ()):
            self.add(alias.encode(), alias, identifier=identifiers.get(alias))
        self.app = FastAPI()
        self.app.post("/internal/purge")(self._purge)
        self.app.get("/internal/aliases")(self._aliases)
        self.app.get("/internal/identifier")(self._identifier)
        self.app.get("/image/original/{alias}")(self._original)
        self.app.get("/internal/hashes")(self._hashes if version != "0.4" else self._no_route)
        self.served: ServedApp | None = None

    # --- the store ---------------------------------------------------------------
    def add(
        self,
        data: bytes,
        alias: str,
        *,
        created_at: datetime | None = None,
        identifier: str | None = None,
    ) -> str:
        """Store bytes under an alias (identical bytes: one file, one more alias); returns the hex."""
        hex_ = _hex(data)
        with self._lock:
            if hex_ in self.files:
                self.files[hex_].aliases.append(alias)
            else:
                self._clock += timedelta(seconds=1)
                self.files[hex_] = StoredFile(
                    hex_,
                    [alias],
                    created_at or self._clock,
                    identifier or f"files/{hex_[:2]}/{hex_[2:4]}/{hex_[:16]}",
                    data=data,
                )
            self._by_alias[alias] = hex_
        return hex_

    @property
    def aliases(self) -> set[str]:
        """Every alias pict-rs still knows."""
        return set(self._by_alias)

    # --- the handlers ------------------------------------------------------------
    def _denied(self, token: str | None) -> JSONResponse | None:
        if token != self.api_key:
            return JSONResponse({"msg": "Invalid API Key"}, status_code=401)
        return None

    def _missing(self, old: dict[str, str]) -> JSONResponse:
        if self.version == "0.5.7":
            return JSONResponse(_GONE_NEW, status_code=404)
        return JSONResponse(old, status_code=400 if old is _GONE_OLD else 404)

    def _purge(
        self, alias: str = Query(...), x_api_token: str | None = Header(None)
    ) -> JSONResponse:
        denied = self._denied(x_api_token)
        if denied:
            return denied
        if self.read_only:  # server.read_only: 400 before anything (0.5.7 src/lib.rs:1397-1399,
            # src/error.rs:114-115, 194, 265; src/error_code.rs:109)
            return JSONResponse(
                {"msg": "pict-rs is in read-only mode", "code": "read-only"}, status_code=400
            )
        with self._lock:
            self.purge_calls[alias] += 1
            hex_ = self._by_alias.get(alias)
            if hex_ is None:
                return self._missing(_GONE_OLD)
            stored = self.files.pop(hex_)
            for each in stored.aliases:
                self._by_alias.pop(each, None)
        return JSONResponse({"msg": "ok", "aliases": stored.aliases})

    def _aliases(
        self, alias: str = Query(...), x_api_token: str | None = Header(None)
    ) -> JSONResponse:
        denied = self._denied(x_api_token)
        if denied:
            return denied
        hex_ = self._by_alias.get(alias)
        found = list(self.files[hex_].aliases) if hex_ else []
        return JSONResponse({"msg": "ok", "aliases": found})

    def _identifier(
        self, alias: str = Query(...), x_api_token: str | None = Header(None)
    ) -> JSONResponse:
        denied = self._denied(x_api_token)
        if denied:
            return denied
        hex_ = self._by_alias.get(alias)
        if hex_ is None:
            return self._missing({"msg": "No identifiers associated with provided alias"})
        return JSONResponse({"msg": "ok", "identifier": self.files[hex_].identifier})

    def _original(self, alias: str) -> Response:
        """The stored bytes; an unknown alias is 404 with an empty body
        (0.5.7 src/lib.rs:984-1022; no key needed: the route is public, 1532-1543)."""
        hex_ = self._by_alias.get(alias)
        if hex_ is None:
            return Response(status_code=404)
        stored = self.files[hex_]
        return Response(stored.data, media_type=stored.content_type)

    def _no_route(self, x_api_token: str | None = Header(None)) -> Response:
        """pict-rs 0.4: no such resource; the scope's key check still runs first, then the
        app's default 404 with an empty body (actix-web web-v4.4.0 actix-web/src/scope.rs:381-399)."""
        return self._denied(x_api_token) or Response(status_code=404)

    def _hashes(
        self,
        slug: str | None = None,
        limit: int = 20,
        x_api_token: str | None = Header(None),
    ) -> Response:
        denied = self._denied(x_api_token)
        if denied:
            return denied
        with self._lock:
            self.hash_pages += 1
            ordered = sorted(self.files.values(), key=lambda f: (f.created_at, f.hex), reverse=True)
            start = 0
            if slug is not None:
                bound = next((i for i, f in enumerate(ordered) if _slug(f.hex) == slug), None)
                start = bound if bound is not None else 0  # unknown bound: from the newest
            window = ordered[start : start + limit + 1]
            page_files, following = window[:limit], window[limit:]
            page: dict[str, object] = {"limit": limit}
            if page_files:
                page["current"] = _slug(page_files[0].hex)
            if following:
                page["next"] = _slug(following[0].hex)
            page["hashes"] = [
                {
                    "hex": f.hex,
                    "aliases": list(f.aliases),
                    "details": {
                        "width": 100,
                        "height": 100,
                        "frames": None,
                        "content_type": f.content_type,
                        "created_at": f.created_at.isoformat().replace("+00:00", "Z"),
                        "format": "Image",
                    },
                }
                for f in page_files
            ]
        return JSONResponse({"msg": "ok", "page": page})

    @property
    def url(self) -> str:
        assert self.served is not None
        return f"http://127.0.0.1:{self.served.port}"

    def __enter__(self) -> PictrsInternalDouble:
        self.served = ServedApp(self.app)
        self.served.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.served:
            self.served.stop()

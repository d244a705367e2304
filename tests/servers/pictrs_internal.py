"""A pict-rs double for the internal API that Warden's purge uses.

Behaves as pict-rs 0.5 does for these calls: every request needs the
`X-Api-Token` header equal to the configured api_key (else 401);
`POST /internal/purge?alias=` removes the image and answers
`{"msg": "ok", "aliases": [...]}`, or 404 when the alias is unknown;
`GET /internal/aliases?alias=` answers `{"msg": "ok", "aliases": [...]}` or 404;
`GET /internal/identifier?alias=` answers `{"msg": "ok", "identifier": "<path>"}`
(the file path or object key behind the alias; `identifiers` maps them) or 404.
Every purge call is recorded so tests can prove nothing was purged twice.
"""

from __future__ import annotations

import threading
from collections import Counter

from fastapi import FastAPI, Header, Query
from fastapi.responses import JSONResponse

from tests.servers.uvicorn_thread import ServedApp


class PictrsInternalDouble:
    def __init__(
        self,
        aliases: set[str],
        api_key: str = "pictrs-key",
        identifiers: dict[str, str] | None = None,
    ) -> None:
        self.aliases = set(aliases)
        self.identifiers = dict(identifiers or {})
        self.api_key = api_key
        self.purge_calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.app = FastAPI()
        self.app.post("/internal/purge")(self._purge)
        self.app.get("/internal/aliases")(self._aliases)
        self.app.get("/internal/identifier")(self._identifier)
        self.served: ServedApp | None = None

    def _denied(self, token: str | None) -> JSONResponse | None:
        if token != self.api_key:
            return JSONResponse({"msg": "Invalid API Key"}, status_code=401)
        return None

    def _purge(
        self, alias: str = Query(...), x_api_token: str | None = Header(None)
    ) -> JSONResponse:
        denied = self._denied(x_api_token)
        if denied:
            return denied
        with self._lock:
            self.purge_calls[alias] += 1
            if alias not in self.aliases:
                return JSONResponse({"msg": "Requested alias does not exist"}, status_code=404)
            self.aliases.discard(alias)
        return JSONResponse({"msg": "ok", "aliases": [alias]})

    def _aliases(
        self, alias: str = Query(...), x_api_token: str | None = Header(None)
    ) -> JSONResponse:
        denied = self._denied(x_api_token)
        if denied:
            return denied
        if alias not in self.aliases:
            return JSONResponse({"msg": "Requested alias does not exist"}, status_code=404)
        return JSONResponse({"msg": "ok", "aliases": [alias]})

    def _identifier(
        self, alias: str = Query(...), x_api_token: str | None = Header(None)
    ) -> JSONResponse:
        denied = self._denied(x_api_token)
        if denied:
            return denied
        if alias not in self.aliases or alias not in self.identifiers:
            return JSONResponse({"msg": "Requested alias does not exist"}, status_code=404)
        return JSONResponse({"msg": "ok", "identifier": self.identifiers[alias]})

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

"""A pict-rs double at the external-validation step, following pict-rs 0.5's wire protocol.

`POST /image` takes a multipart upload (field `images[]`, as Lemmy sends it),
then - as pict-rs's ingest does after its own processing - POSTs the bytes it
would store as the raw body, with the media's Content-Type, to the
`external_validation` URL using a client with a timeout. Only a 2xx answer
stores the file (answer `{"msg": "ok", "files": [...]}`); any other status, a
connection error or a timeout fails the ingest and nothing is stored (answer
`{"msg": ..., "code": "validation-failed"}` with a 4xx/5xx status).

`GET /image/download?url=...` is the remote fetch Lemmy uses to cache federated
images: pict-rs downloads the URL itself and ingests it exactly like an upload
(same processing, same validation call), answering with the same shape.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class PictrsDouble:
    validation_url: str
    timeout_s: float = 30.0  # pict-rs's [client] timeout default
    stored: dict[str, bytes] = field(default_factory=dict)
    validation_calls: list[tuple[str, int]] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)  # URLs downloaded for Lemmy

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/image", self.upload, methods=["POST"]),
                Route("/image/download", self.download, methods=["GET"]),
            ]
        )

    async def download(self, request: Request) -> JSONResponse:
        url = request.query_params.get("url")
        if not url:
            return JSONResponse({"msg": "missing url", "code": "bad-request"}, 400)
        self.fetched.append(url)
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            fetched = await client.get(url)
        if not fetched.is_success:
            return JSONResponse({"msg": "download failed", "code": "download-failed"}, 400)
        mime = fetched.headers.get("content-type", "application/octet-stream")
        refusal = await self._validate(fetched.content, mime)
        if refusal is not None:
            return refusal
        alias = f"{secrets.token_hex(8)}.{mime.rsplit('/', 1)[-1]}"
        self.stored[alias] = fetched.content
        return JSONResponse(
            {"msg": "ok", "files": [{"file": alias, "delete_token": secrets.token_hex(8)}]}, 200
        )

    async def upload(self, request: Request) -> JSONResponse:
        form = await request.form()
        uploads = form.getlist("images[]")
        files = []
        try:
            for upload in uploads:
                if isinstance(upload, str):
                    return JSONResponse({"msg": "not a file", "code": "bad-request"}, 400)
                data = await upload.read()
                mime = upload.content_type or "application/octet-stream"
                refusal = await self._validate(data, mime)
                if refusal is not None:
                    return refusal
                alias = f"{secrets.token_hex(8)}.{mime.rsplit('/', 1)[-1]}"
                self.stored[alias] = data
                files.append({"file": alias, "delete_token": secrets.token_hex(8)})
        finally:
            await form.close()
        return JSONResponse({"msg": "ok", "files": files}, 201)

    async def _validate(self, data: bytes, mime: str) -> JSONResponse | None:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                answer = await client.post(
                    self.validation_url, content=data, headers={"Content-Type": mime}
                )
        except httpx.HTTPError as exc:
            self.validation_calls.append((mime, 0))
            return JSONResponse(
                {"msg": f"Error in external validation: {exc}", "code": "validation-failed"}, 500
            )
        self.validation_calls.append((mime, answer.status_code))
        if not answer.is_success:
            return JSONResponse(
                {"msg": "Failed external validation", "code": "validation-failed"}, 400
            )
        return None

"""A pict-rs double for uploads, remote fetches and the external-validation hook.

Rebuilt from pict-rs's source (github.com/robinst/pict-rs, a mirror of
asonix/pict-rs; commits named by the version their Cargo.toml carries):
0.5.16 = 31049d3, 0.5.7 = feb8840, 0.5.6 = 07d6231, 0.4.1 = e10cb14. The 0.4.x
branch that carries 0.4.3 (where `external_validation` first shipped) is not in
the mirror; its behaviour is taken from releases/0.4.3.md and releases/0.4.4.md
and from 0.4.1's error shape. One representative per range admins run:

- "0.4.3": 0.4.3+ (errors are `{"msg"}` only, no `code`: e10cb14
  src/error.rs:185-200; no `?proxy=`, which came with 0.5: releases/0.5.0.md:143-150;
  the hook's timeout is the client's fixed 30 s until 0.4.4 made it
  `media.external_validation_timeout`: e10cb14 src/lib.rs:1105, releases/0.4.4.md:27-31).
- "0.5.6": 0.5.0-0.5.6 (`{"msg", "code"}` errors: 07d6231 src/error.rs:232-262,
  src/error_code.rs; a file over `media.max_file_size` is a 400 `file-upload-error`).
- "0.5.7": 0.5.7+ (the same, but a file over the limit is 413 `validate-file-size`,
  and an uncached `?proxy=` detail is 404 `proxy-not-found`: feb8840 src/error.rs:172,
  :240-242, releases/0.5.7.md "More Consistent Errors").

What every version does, as the double does it:

- `POST /image` takes multipart field `images[]` (31049d3 src/lib.rs:206-230 field
  "images", an array), ingests each file and answers **201**
  `{"msg": "ok", "files": [{"file", "delete_token", "details"}]}` (src/lib.rs:329-368;
  0.4.1 e10cb14 src/lib.rs:281-296).
- `GET /image/download?url=` downloads the URL (a non-2xx origin is pict-rs's
  `Download` error, a 500 `download-file-error`: src/lib.rs:573-594, error.rs:151,
  :199) and ingests it like an upload, answering **201** with the same shape
  (src/lib.rs:596-614).
- `GET /image/original?proxy=<url>` (0.5) downloads and ingests on first use, then
  serves the bytes (src/lib.rs:1049-1057, :1280-1310).
- Ingest: pict-rs processes the media first, transcoding only when the image needs
  re-orienting or `[media.image] format` prescribes another format
  (src/formats/image.rs:40-55), stores the result, then POSTs **the stored bytes**
  to `external_validation`, streamed (chunked) from the store, with the output
  format's Content-Type, under `media.external_validation_timeout` (default 30 s:
  src/config/defaults.rs:266) (src/ingest.rs:195-213). A non-2xx answer becomes
  `UploadError::FailedExternalValidation` (src/ingest.rs:211-213), answered **400**
  `{"msg": "Failed external validation", "code": "failed-external-validation"}`
  (src/error.rs:175, :216, :276-278, :291-303; src/error_code.rs:147-149). A hook
  that cannot be reached or times out is a request error: **500**
  `http-client-error` (src/error.rs:196-198, :287).
- An unknown alias at `/image/original/<alias>` is 404 with an empty body
  (src/lib.rs:1078, :1087); `/healthz` is 200 with an empty body (src/lib.rs:1570-1574).
- `media.max_file_size` is in MiB: `max_file_size * MEGABYTES` with
  `MEGABYTES = 1024 * 1024` (src/lib.rs:92, :208).
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from PIL import Image, ImageOps
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

#: one representative per range admins run (see the module docstring)
PICTRS_VERSIONS = ("0.4.3", "0.5.6", "0.5.7")

#: pict-rs's output media types (31049d3 src/formats/image.rs:93-101, formats/animation.rs)
_MIME = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "jxl": "image/jxl",
    "gif": "image/gif",
}
_PIL_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "jxl": "JXL"}
MEBIBYTE = 1024 * 1024


@dataclass(frozen=True)
class HookCall:
    """One call pict-rs made to the validation hook, and what came back."""

    content_type: str
    status: int  # 0: no answer (connection error or timeout)
    sha256: str  # of the bytes sent
    chunked: bool


class IngestFailed(Exception):
    def __init__(self, status: int, msg: str, code: str) -> None:
        super().__init__(msg)
        self.status, self.msg, self.code = status, msg, code


@dataclass
class PictrsDouble:
    validation_url: str | None
    version: str = "0.5.7"
    #: `media.external_validation_timeout` (0.4.4+; 0.4.3's client waits 30 s)
    timeout_s: float = 30.0
    #: `media.max_file_size`, MiB
    max_file_size: int = 40
    #: `[media.image] format` (0.5) / `[media] format` (0.4): transcode stills to it
    image_format: str | None = None
    stored: dict[str, bytes] = field(default_factory=dict)
    validation_calls: list[HookCall] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)  # URLs pict-rs downloaded
    proxied: dict[str, str] = field(default_factory=dict)  # proxy URL -> alias

    def __post_init__(self) -> None:
        if self.version not in PICTRS_VERSIONS:
            raise ValueError(f"unknown pict-rs range {self.version!r}")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/image", self.upload, methods=["POST"]),
                Route("/image/download", self.download, methods=["GET"]),
                Route("/image/original", self.original_query, methods=["GET"]),
                Route("/image/original/{alias}", self.original, methods=["GET"]),
                Route("/healthz", self.healthz, methods=["GET"]),
            ]
        )

    # -- answers -------------------------------------------------------------------

    def _error(self, failure: IngestFailed) -> JSONResponse:
        """0.5 errors carry a `code`; 0.4's are `{"msg"}` only (e10cb14 src/error.rs:185-200)."""
        body = {"msg": failure.msg}
        if not self.version.startswith("0.4"):
            body["code"] = failure.code
        return JSONResponse(body, failure.status)

    def _created(self, files: list[dict[str, object]]) -> JSONResponse:
        return JSONResponse({"msg": "ok", "files": files}, 201)

    # -- endpoints -----------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return Response(status_code=200)

    async def original(self, request: Request) -> Response:
        alias = request.path_params["alias"]
        if alias not in self.stored:
            return Response(status_code=404)  # empty body
        return Response(self.stored[alias], media_type=_mime_of_alias(alias))

    async def original_query(self, request: Request) -> Response:
        proxy = request.query_params.get("proxy")
        if self.version.startswith("0.4") or proxy is None:
            return Response(status_code=404)  # 0.4 has no ?proxy=; no alias given
        try:
            alias = self.proxied.get(proxy) or (await self._fetch_and_ingest(proxy))["file"]
        except IngestFailed as failure:
            return self._error(failure)
        self.proxied[proxy] = str(alias)
        return Response(self.stored[str(alias)], media_type=_mime_of_alias(str(alias)))

    async def download(self, request: Request) -> Response:
        url = request.query_params.get("url")
        if not url:
            return self._error(IngestFailed(400, "Invalid query", "invalid-query"))
        try:
            return self._created([await self._fetch_and_ingest(url)])
        except IngestFailed as failure:
            return self._error(failure)

    async def upload(self, request: Request) -> Response:
        form = await request.form()
        try:
            uploads = [u for u in form.getlist("images[]") if not isinstance(u, str)]
            if not uploads:
                return self._error(
                    IngestFailed(400, "No files present in upload", "validate-no-files")
                )
            files = []
            for upload in uploads:
                data = await upload.read()
                if len(data) > self.max_file_size * MEBIBYTE:
                    return self._error(self._too_large())
                files.append(await self._ingest(data))
        except IngestFailed as failure:
            return self._error(failure)
        finally:
            await form.close()
        return self._created(files)

    # -- ingest --------------------------------------------------------------------

    def _too_large(self) -> IngestFailed:
        if self.version == "0.5.7":  # feb8840 src/error.rs:172, :240-242: FileSize -> 413
            return IngestFailed(413, "File too large", "validate-file-size")
        return IngestFailed(400, "Couldn't upload file", "file-upload-error")

    async def _fetch_and_ingest(self, url: str) -> dict[str, object]:
        self.fetched.append(url)
        async with httpx.AsyncClient(timeout=30) as client:
            origin = await client.get(url)
        if not origin.is_success:
            raise IngestFailed(
                500,
                f"Unable to download image, bad response {origin.status_code}",
                "download-file-error",
            )
        return await self._ingest(origin.content)

    async def _ingest(self, data: bytes) -> dict[str, object]:
        stored, fmt, (width, height) = _process(data, self.image_format)
        await self._validate(stored, _MIME[fmt])
        alias = f"{uuid.uuid4()}.{fmt}"
        self.stored[alias] = stored
        details: dict[str, object] = {
            "width": width,
            "height": height,
            "frames": None,
            "content_type": _MIME[fmt],
            "created_at": datetime.now(UTC).isoformat(),
        }
        if not self.version.startswith("0.4"):
            details["format"] = "Image"  # ApiDetails (07d6231 src/details.rs:18-33)
        return {"file": alias, "delete_token": str(uuid.uuid4()), "details": details}

    async def _validate(self, data: bytes, mime: str) -> None:
        if self.validation_url is None:
            return

        async def chunks() -> AsyncIterator[bytes]:  # streamed from the store
            for start in range(0, len(data), 8192):
                yield data[start : start + 8192]

        digest = hashlib.sha256(data).hexdigest()
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                answer = await client.post(
                    self.validation_url, content=chunks(), headers={"Content-Type": mime}
                )
        except httpx.HTTPError as exc:
            self.validation_calls.append(HookCall(mime, 0, digest, True))
            raise IngestFailed(500, f"Error making request: {exc}", "http-client-error") from exc
        self.validation_calls.append(HookCall(mime, answer.status_code, digest, True))
        if not answer.is_success:
            raise IngestFailed(400, "Failed external validation", "failed-external-validation")


def _mime_of_alias(alias: str) -> str:
    return _MIME.get(alias.rsplit(".", 1)[-1], "application/octet-stream")


def _process(data: bytes, prescribed: str | None) -> tuple[bytes, str, tuple[int, int]]:
    """What pict-rs stores: the upload as is, unless it must be re-oriented or a
    format is prescribed (31049d3 src/formats/image.rs:40-55); media pict-rs cannot
    read is refused as a validation error (400)."""
    if prescribed == "jxl" or data[:2] == b"\xff\x0a" or data[4:8] == b"JXL ":
        import pillow_jxl  # noqa: F401 - registers the JXL plugin with Pillow
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:
        raise IngestFailed(400, "Error validating upload", "validate-error") from exc
    fmt = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "JXL": "jxl"}.get(
        str(image.format), "png"
    )
    orientation = image.getexif().get(0x0112, 1) if fmt == "jpeg" else 1
    target = prescribed or fmt
    if target == fmt and orientation in (0, 1):
        return data, fmt, image.size
    out = ImageOps.exif_transpose(image) if orientation not in (0, 1) else image
    if target in ("jpeg", "jxl") and out.mode not in ("RGB", "L"):
        out = out.convert("RGB")
    buffer = io.BytesIO()
    out.save(buffer, _PIL_FORMAT[target])
    return buffer.getvalue(), target, out.size

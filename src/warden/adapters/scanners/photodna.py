"""Microsoft PhotoDNA Cloud Service: match media against known child-abuse hashes.

Built from the Match operation's published reference, "PhotoDNA Cloud Service"
on developer.microsoftmoderator.com
(https://developer.microsoftmoderator.com/docs/services/57c7426e2703740ec4c9f4c3/operations/57c7426f27037407c8cc69e6):

- `POST https://api.microsoftmoderator.com/photodna/v1.0/Match[?enhance=true]`
  (`enhance`: "additional detection capabilities", slower);
- headers `Ocp-Apim-Subscription-Key` (the key) and `Content-Type`; the body is
  the image itself, one of image/gif, image/jpeg, image/png, image/bmp or
  image/tiff (a JSON `{"DataRepresentation": "URL", ...}` body is the
  alternative; Warden never hands its media to a public URL);
- one image a request, at most 5 (10 on the v2 page) requests a second:
  beyond, the service answers 429;
- 200 with `Status.Code` 3000 "OK", 3002 invalid or missing parameter, 3004
  unknown or unhandled error, 3206 not an image, 3208 image size out of range
  (at least 160x160 pixels, at most 4 MB); `IsMatch`; `MatchDetails.MatchFlags`
  (each with `Source` and `AdvancedInfo` key/value pairs such as `MatchId`);
  `TrackingId` (the reference to quote to Microsoft and NCMEC).

A match refuses; it is a known-CSAM match, so it is reported as one (alerts,
evidence) and its media never shown. Media in other formats (WebP, AVIF, HEIC,
JPEG XL) is not sent: PhotoDNA would not read it, and converting it here would
mean decoding untrusted media outside the decoder processes, so the failure
mode decides.
"""

from __future__ import annotations

from typing import Any

import httpx

from warden.adapters.scanners.interface import Answer, Submission, json_body, post
from warden.domain.verdict import Decision
from warden.errors import ScannerBadAnswer, ScannerRefused, ScannerUnavailable

ACCEPTED_TYPES = frozenset({"image/gif", "image/jpeg", "image/png", "image/bmp", "image/tiff"})
MAX_BYTES = 4 * 1024 * 1024

_OK = 3000
_SERVICE_ERRORS = frozenset({3004})  # the service's own failure: try again later


def _flags(details: Any) -> list[dict[str, Any]]:
    flags = details.get("MatchFlags") if isinstance(details, dict) else None
    out: list[dict[str, Any]] = []
    for flag in flags if isinstance(flags, list) else []:
        if not isinstance(flag, dict):
            continue
        info = {
            str(kv.get("Key")): kv.get("Value")
            for kv in flag.get("AdvancedInfo") or []
            if isinstance(kv, dict)
        }
        out.append({"source": flag.get("Source"), **info})
    return out


class PhotoDnaScanner:
    """The Match operation; `url` is the full Match URL."""

    kind = "photodna"

    def __init__(
        self, name: str, url: str, client: httpx.AsyncClient, *, key: str, enhance: bool = False
    ) -> None:
        self.name = name
        self.url = url
        self.client = client
        self.key = key
        self.enhance = enhance

    async def scan(self, item: Submission) -> Answer:
        if item.mime not in ACCEPTED_TYPES:
            raise ScannerRefused(
                f"{self.name}: PhotoDNA reads GIF, JPEG, PNG, BMP and TIFF, not {item.mime}",
                scanner=self.name,
            )
        if len(item.data) > MAX_BYTES:
            raise ScannerRefused(f"{self.name}: PhotoDNA takes at most 4 MB", scanner=self.name)
        response = await post(
            self.client,
            self.name,
            self.url,
            params={"enhance": "true" if self.enhance else "false"},
            content=item.data,
            headers={"Ocp-Apim-Subscription-Key": self.key, "Content-Type": item.mime},
        )
        body = json_body(response, self.name)
        if not isinstance(body, dict) or not isinstance(body.get("Status"), dict):
            raise ScannerBadAnswer(f"{self.name}: the answer has no Status", scanner=self.name)
        code = body["Status"].get("Code")
        description = str(body["Status"].get("Description") or "")[:80]
        if code in _SERVICE_ERRORS:
            raise ScannerUnavailable(f"{self.name}: {code} {description}", scanner=self.name)
        if code != _OK:
            raise ScannerRefused(f"{self.name}: {code} {description}", scanner=self.name)
        matched = body.get("IsMatch")
        if not isinstance(matched, bool):
            raise ScannerBadAnswer(f"{self.name}: the answer has no IsMatch", scanner=self.name)
        labels: dict[str, Any] = {"IsMatch": matched, "TrackingId": body.get("TrackingId")}
        if matched:
            labels["MatchFlags"] = _flags(body.get("MatchDetails"))
        return Answer(Decision.REJECT if matched else Decision.ACCEPT, labels, csam=matched)

"""db0's pictrs-safety API (in front of fedi-safety GPU workers) as a scanner.

An admin who already runs pictrs-safety with a fedi-safety worker keeps it: Warden
POSTs the media to pictrs-safety's scan endpoint exactly as pict-rs would, and the
worker decides. What changes is what its *non*-answers mean. pictrs-safety
answers 200 "OK" whenever it could not scan — so that pict-rs stores the image —
and Warden reads those as failures, for the scanner's failure mode (closed by
default) to decide.

The protocol, from github:db0/pictrs-safety at v1.2.2
(844a8e66abb212d17a2aa0be96b148329e1fc91f):

- route `POST /api/v1/scan/<pictrs_id>` (pictrs_safety_api/apis/v1/__init__.py:4,
  under the `/api` blueprint, apis/apiv1.py:7); `pictrs_id` is `IPADDR`
  (address-based auth, apis/v1/base.py:49-52) or one of `KNOWN_PICTRS_IDS`
  (base.py:53-54) — the id is the secret, so it is never logged;
- the body is the raw media; the saved file's extension is taken from the
  Content-Type's subtype (base.py:64-67), so the type must be `image/<ext>`;
- 401 `{"message": ...}` for an unknown id or address (base.py:52, 54);
- 406 `{"message": "Potential CSAM Image detected"}` when the worker said
  `is_csam` (base.py:104-108; the worker posts is_csam/is_nsfw to
  `/api/v1/pop`, base.py:164-185, fed by fedi-safety's
  fedi_safety/pictrs_safety.py:41-51);
- 200 `{"message": "Image OK"}` when the worker cleared it (base.py:109-113);
- 200 with any other message when nothing was decided: "Worker Stale"
  (base.py:55-57), "Queue Full" (:58-61), the scan timing out after
  FEDIVERSE_SAFETY_TIME_THRESHOLD seconds, 120 by default (:90-95), a faulted
  request (:98-102), an unknown state (:114-118), any exception (:119-123).

pictrs-safety can hold a request for two minutes (:90): `timeout_s` must be
below the hook's deadline.
"""

from __future__ import annotations

import httpx

from warden.adapters.scanners.interface import Answer, Submission, json_body, post
from warden.domain.verdict import Decision
from warden.errors import ScannerBadAnswer, ScannerUnavailable

#: The one 200 message that means the worker looked and found nothing (base.py:113).
CLEARED = "Image OK"


class FediSafetyScanner:
    """pictrs-safety's `/api/v1/scan/<pictrs_id>`; `url` is the service's base URL."""

    kind = "fedi_safety"

    def __init__(
        self, name: str, url: str, client: httpx.AsyncClient, *, pictrs_id: str | None = None
    ) -> None:
        self.name = name
        self.endpoint = f"{url.rstrip('/')}/api/v1/scan/{pictrs_id or 'IPADDR'}"
        self.client = client

    async def scan(self, item: Submission) -> Answer:
        mime = item.mime if item.mime.startswith("image/") else "image/png"
        response = await post(
            self.client,
            self.name,
            self.endpoint,
            content=item.data,
            headers={"Content-Type": mime},
            accept=frozenset({406}),
        )
        message = json_body(response, self.name)
        text = message.get("message") if isinstance(message, dict) else None
        if not isinstance(text, str):
            raise ScannerBadAnswer(f"{self.name}: the answer has no message", scanner=self.name)
        if response.status_code == 406:
            return Answer(Decision.REJECT, {"is_csam": True, "message": text})
        if text == CLEARED:
            return Answer(Decision.ACCEPT, {"is_csam": False, "message": text})
        # pictrs-safety's fail-open answers: it could not scan, so there is no verdict
        raise ScannerUnavailable(
            f"{self.name}: pictrs-safety did not scan it ({text[:80]!r})", scanner=self.name
        )

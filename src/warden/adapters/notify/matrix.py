"""Matrix: a message in a room, through the homeserver's client-server API.

`PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}` with
`Authorization: Bearer <access token>` and `{"msgtype": "m.notice", "body": text}`
(Matrix spec, client-server API, "PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}",
https://spec.matrix.org/v1.11/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid;
m.notice is the msgtype for bots, "m.notice", same page §13.2.1.7). A
fresh transaction id per alert makes a retried PUT idempotent. A rate-limited
homeserver answers 429 `M_LIMIT_EXCEEDED` with `retry_after_ms`.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

import httpx

from warden.adapters.notify.message import Alert, deliver


class MatrixRoom:
    kind = "matrix"

    def __init__(
        self, name: str, homeserver: str, room_id: str, client: httpx.AsyncClient, *, token: str
    ) -> None:
        self.name = name
        self.base = homeserver.rstrip("/")
        self.room = quote(room_id, safe="")
        self.client = client
        self.token = token

    async def send(self, alert: Alert) -> None:
        txn = uuid.uuid4().hex
        url = f"{self.base}/_matrix/client/v3/rooms/{self.room}/send/m.room.message/{txn}"
        await deliver(
            self.client,
            self.name,
            "PUT",
            url,
            json={"msgtype": "m.notice", "body": alert.plain()},
            headers={"Authorization": f"Bearer {self.token}"},
        )

"""A generic webhook whose receiver can check that Warden sent it.

The body is the alert as compact JSON (`Alert.as_dict`). Two headers go with it:
`X-Warden-Timestamp` (Unix seconds) and `X-Warden-Signature: sha256=<hex>`,
the HMAC-SHA256, keyed with the shared secret, of `<timestamp>.<body>` — the
scheme Stripe and GitHub webhooks use, so receivers know how to check it:
recompute, compare in constant time, and refuse timestamps older than a few
minutes (a replay). `signature` is what a receiver computes.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx

from warden.adapters.notify.message import Alert, deliver


def signature(key: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class SignedWebhook:
    kind = "signed_webhook"

    def __init__(self, name: str, url: str, client: httpx.AsyncClient, *, key: str) -> None:
        self.name = name
        self.url = url
        self.client = client
        self.key = key

    async def send(self, alert: Alert) -> None:
        body = alert.json_bytes()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Warden-Event": alert.event,
            "X-Warden-Timestamp": stamp,
            "X-Warden-Signature": signature(self.key, stamp, body),
        }
        await deliver(self.client, self.name, "POST", self.url, content=body, headers=headers)

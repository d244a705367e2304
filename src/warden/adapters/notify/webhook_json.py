"""Discord- and Slack-compatible incoming webhooks: one JSON POST per alert.

Discord's "Execute Webhook" takes `{"content": text}` (at most 2000
characters) and answers 204 (https://discord.com/developers/docs/resources/webhook#execute-webhook);
Slack's incoming webhooks take `{"text": text}` and answer 200 "ok"
(https://api.slack.com/messaging/webhooks); Mattermost and Rocket.Chat read
Slack's shape. Both keys are sent, so one channel kind fits them all. The URL
itself is the secret (it embeds the token): it is never logged.
"""

from __future__ import annotations

import httpx

from warden.adapters.notify.message import Alert, deliver

DISCORD_LIMIT = 2000


class JsonWebhook:
    kind = "webhook_json"

    def __init__(self, name: str, url: str, client: httpx.AsyncClient) -> None:
        self.name = name
        self.url = url
        self.client = client

    async def send(self, alert: Alert) -> None:
        text = alert.plain()
        if len(text) > DISCORD_LIMIT:
            text = text[: DISCORD_LIMIT - 1] + "…"
        await deliver(
            self.client, self.name, "POST", self.url, json={"content": text, "text": text}
        )

"""Hive's visual moderation (the v2 synchronous task API) as a scanner.

Built from Hive's published documentation:

- "Synchronously Hit Our Platform", https://docs.thehive.ai/reference/post_v2-task-sync:
  `POST https://api.thehive.ai/api/v2/task/sync`, the file streamed as the
  multipart field `media` (or `url`, which Warden never uses: its media has no
  public address); the request is held open until the result is ready;
- "Authentication", https://docs.thehive.ai/docs/authentication: the header
  `authorization: token <API key>` (one key per project);
- "Classification", https://docs.thehive.ai/reference-link/classification, and
  "Visual Moderation - Overview", https://docs.thehive.ai/docs/visual-content-moderation:
  the task's `status` holds `status.code`/`status.message` ("SUCCESS") and
  `response.output`, a list (one entry per frame, with `time`) of `classes`,
  each `{"class": name, "score": 0..1}`; each model head's scores sum to 1
  (e.g. general_nsfw / general_suggestive / general_not_nsfw_not_suggestive).
  The sync endpoint wraps that status in a one-element list; both shapes are read.

Hive's scores become a decision through `reject_classes` and `review_classes`
(class -> threshold): the admin's policy, like the model's label thresholds.
The labels kept are every class scoring at least 0.01 (best over frames).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from warden.adapters.scanners.interface import Answer, Submission, json_body, post
from warden.domain.verdict import Decision
from warden.errors import ScannerBadAnswer, ScannerUnavailable

_KEEP = 0.01


def _task_status(body: Any) -> dict[str, Any]:
    status = body.get("status") if isinstance(body, dict) else None
    if isinstance(status, list) and status and isinstance(status[0], dict):
        return status[0]
    if isinstance(status, dict):
        return status
    raise ScannerBadAnswer("the answer has no task status")


def scores(body: Any) -> dict[str, float]:
    """Best score per class over every frame of a task answer."""
    task = _task_status(body)
    state = task.get("status") or {}
    code = str(state.get("code", "0")) if isinstance(state, dict) else "0"
    if code != "0":
        message = str(state.get("message", ""))[:80] if isinstance(state, dict) else ""
        raise ScannerUnavailable(f"task status {code} {message}")
    response = task.get("response")
    output = response.get("output") if isinstance(response, dict) else None
    if not isinstance(output, list):
        raise ScannerBadAnswer("the answer has no response.output")
    best: dict[str, float] = {}
    for frame in output:
        for entry in (frame.get("classes") or []) if isinstance(frame, dict) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("class"), str):
                continue
            score = entry.get("score")
            if isinstance(score, int | float) and not isinstance(score, bool):
                name = entry["class"]
                best[name] = max(best.get(name, 0.0), float(score))
    if not best:
        raise ScannerBadAnswer("the answer has no class scores")
    return best


class HiveScanner:
    """One Hive visual moderation project; `url` is the sync task URL."""

    kind = "hive"

    def __init__(
        self,
        name: str,
        url: str,
        client: httpx.AsyncClient,
        *,
        key: str,
        reject_classes: Mapping[str, float],
        review_classes: Mapping[str, float],
    ) -> None:
        self.name = name
        self.url = url
        self.client = client
        self.key = key
        self.reject_classes = dict(reject_classes)
        self.review_classes = dict(review_classes)

    def decide(self, best: Mapping[str, float]) -> Decision:
        if any(best.get(c, 0.0) >= t for c, t in self.reject_classes.items()):
            return Decision.REJECT
        if any(best.get(c, 0.0) >= t for c, t in self.review_classes.items()):
            return Decision.REVIEW
        return Decision.ACCEPT

    async def scan(self, item: Submission) -> Answer:
        ext = item.mime.split("/", 1)[-1] or "bin"
        response = await post(
            self.client,
            self.name,
            self.url,
            headers={"authorization": f"token {self.key}"},
            files={"media": (f"{item.sha256[:16]}.{ext}", item.data, item.mime)},
        )
        body = json_body(response, self.name)
        try:
            best = scores(body)
        except (ScannerBadAnswer, ScannerUnavailable) as exc:
            raise type(exc)(f"{self.name}: {exc.message}", scanner=self.name) from None
        labels = {k: round(v, 4) for k, v in sorted(best.items()) if v >= _KEEP}
        return Answer(self.decide(best), labels)

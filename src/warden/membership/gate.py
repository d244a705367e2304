"""The access gate: the rules in force, the usage counter and the clock, together.

`AccessGate.decide` is what `/authz` calls once it knows who is asking:
judge the rules, then count the use against the rate limits that bind the
person. `RuleSource` keeps the rules file current: it re-reads the file when
its modification time changes (checked at most every few seconds) or when
`reload()` is called, so flipping the uploads switch needs no restart. A file
edited into something invalid is refused with its line and the rules already
in force stay in force.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from warden.errors import RuleFileError
from warden.membership.ratelimit import Claim, UsageCounter
from warden.membership.requirements import Activity, RateLimit, UserFacts
from warden.membership.rulebook import (
    Judgement,
    Rulebook,
    UploadsSwitch,
    judge,
    lint_warnings,
    parse_rulebook,
    rate_limited,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def read_rulebook(path: Path) -> Rulebook:
    """Read and validate a rules file (raises RuleFileError)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(str(path), None, f"cannot read rules file: {exc}") from exc
    return parse_rulebook(text, str(path))


class RuleSource:
    """The rulebook in force, re-read from `path` when the file changes."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        uploads_override: UploadsSwitch | None = None,
        check_every_s: float = 2.0,
        rulebook: Rulebook | None = None,
    ) -> None:
        self.path = path
        self.uploads_override = uploads_override
        self.check_every_s = check_every_s
        self._lock = threading.Lock()
        self._mtime: int | None = None
        self._checked = 0.0
        self._rulebook = rulebook or Rulebook()
        if path is not None:
            self.reload()

    def current(self) -> Rulebook:
        """The rules in force (re-read first when the file changed)."""
        if self.path is not None and time.monotonic() - self._checked >= self.check_every_s:
            self._check()
        return self._rulebook.with_uploads(self.uploads_override)

    def reload(self) -> Rulebook:
        """Re-read the file now; raises RuleFileError and keeps the old rules on a bad file."""
        with self._lock:
            if self.path is None:
                return self._rulebook
            mtime = self._stat()
            rulebook = read_rulebook(self.path)
            self._rulebook, self._mtime = rulebook, mtime
            self._checked = time.monotonic()
            log.info("rules loaded from %s (uploads %s)", self.path, rulebook.uploads.value)
            for warning in lint_warnings(rulebook):
                log.warning("rules file %s: %s", self.path, warning)
            return rulebook

    def _stat(self) -> int | None:
        assert self.path is not None
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return None

    def _check(self) -> None:
        self._checked = time.monotonic()
        if self._stat() == self._mtime:
            return
        try:
            self.reload()
        except RuleFileError as exc:
            self._mtime = self._stat()  # do not retry a bad file on every request
            log.error("rules file changed but is invalid; keeping the rules in force: %s", exc)


class AccessGate:
    """Judges activities against the rules in force and counts rate-limited uses."""

    def __init__(self, rules: RuleSource, usage: UsageCounter, clock: Clock = utc_now) -> None:
        self.rules = rules
        self.usage = usage
        self.clock = clock

    def decide(self, activity: Activity, facts: UserFacts) -> Judgement:
        """The decision for one request; an allowed use is counted."""
        now = self.clock()
        judgement = judge(self.rules.current(), activity, facts, now)
        if not judgement.allowed or not judgement.limits:
            return judgement
        claims = {_claim(activity, facts, limit): limit for limit in judgement.limits}
        full = self.usage.acquire(list(claims), now)
        if full is not None:
            return Judgement(False, rate_limited(activity, facts, claims[full]))
        return judgement

    def explain(self, activity: Activity, facts: UserFacts) -> tuple[Judgement, list[str]]:
        """The decision without counting a use, and the state of each binding rate limit."""
        now = self.clock()
        judgement = judge(self.rules.current(), activity, facts, now)
        notes: list[str] = []
        for limit in judgement.limits:
            claim = _claim(activity, facts, limit)
            used = self.usage.used(claim.key, claim.window, now)
            notes.append(f"rate limit {limit.describe()}: {used} used")
            if used >= limit.count and judgement.allowed:
                judgement = replace(
                    judgement, allowed=False, reason=rate_limited(activity, facts, limit)
                )
        return judgement, notes


def _claim(activity: Activity, facts: UserFacts, limit: RateLimit) -> Claim:
    """One counter per person, activity and limit (its count and window name it)."""
    seconds = int(limit.per.total_seconds())
    key = f"{activity.value}:{facts.person_id}:{limit.count}/{seconds}s"
    return Claim(key, limit.count, limit.per)

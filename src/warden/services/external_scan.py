"""External scanners at run time: who is asked, under which limits, and what a failure means.

The media gate calls `ExternalScans.apply` with the verdict the model and banks
reached. Each configured scanner whose trigger applies (domain/scanners.ScanTrigger:
source, size, only-review) is asked at the same time as the others; each has
its own timeout (the wait for a free slot included), its own concurrency limit
(a semaphore: a flood queues here instead of tripping the vendor's rate limit),
and after a 429 it is not asked again until its Retry-After has passed (those
requests fail at once, without network, under the failure mode). Every answer
or failure becomes an `ExternalVerdict`; `domain.scanners.combine` merges them.

With no scanner configured, `build_external_scans` returns None: no client, no
task, no cost. Secrets come from settings or files and are registered with
`SecretRedactor`, which blanks them in every log record of the HTTP client
libraries (some services carry theirs in the URL).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
from pydantic import SecretStr

from warden.adapters.scanners.fedi_safety import FediSafetyScanner
from warden.adapters.scanners.hive import HiveScanner
from warden.adapters.scanners.http import HttpScanner
from warden.adapters.scanners.interface import ExternalScanner, Submission
from warden.adapters.scanners.media_links import MediaLinks
from warden.adapters.scanners.photodna import PhotoDnaScanner
from warden.config import ScannerSettings, Settings
from warden.domain.banks import BankAction, BankKind
from warden.domain.scanners import (
    ExternalVerdict,
    ScannerFailMode,
    ScanTrigger,
    combine,
    hit,
)
from warden.domain.verdict import Decision, Verdict
from warden.errors import ConfigError, ScannerError, ScannerThrottled, ScannerTimeout
from warden.store.banks import BankStore, NewEntry

log = logging.getLogger(__name__)

#: How long a scanner that answered 429 without a Retry-After is left alone.
DEFAULT_BACKOFF_S = 30.0


def read_secret(secret: SecretStr | None, secret_file: Path | None, what: str) -> str | None:
    """The secret from its file (stripped) or the setting; ConfigError names the
    setting, never the value."""
    if secret_file is not None:
        try:
            value = secret_file.expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{what}.secret_file: cannot read {secret_file}: {exc.strerror}"
            ) from None
        if not value:
            raise ConfigError(f"{what}.secret_file: {secret_file} is empty")
        return value
    return secret.get_secret_value() if secret is not None else None


class SecretRedactor(logging.Filter):
    """Blanks registered secrets in log records (message and arguments).

    Installed on the loggers of the HTTP client (httpx, httpcore), which log
    request URLs; Warden's own messages never contain a secret to begin with."""

    LOGGERS = ("httpx", "httpcore")

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, *secrets: str | None) -> None:
        self.secrets.update(s for s in secrets if s and len(s) >= 4)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self.redact(record.getMessage())
            record.args = None
        return True

    def install(self) -> None:
        for name in self.LOGGERS:
            logger = logging.getLogger(name)
            if self not in logger.filters:
                logger.addFilter(self)

    def remove(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)


#: One redactor for the process: every scanner and alert channel adds to it.
REDACTOR = SecretRedactor()


@dataclass
class ConfiguredScanner:
    """An adapter with its trigger, limits and failure mode."""

    adapter: ExternalScanner
    trigger: ScanTrigger = field(default_factory=ScanTrigger)
    timeout_s: float = 5.0
    concurrency: int = 4
    fail_mode: ScannerFailMode = ScannerFailMode.CLOSED
    feed_flag_bank: bool = False
    quiet_until: float = 0.0  # monotonic time before which a throttled scanner is not asked
    slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.concurrency)

    @property
    def name(self) -> str:
        return self.adapter.name


#: What the flag bank receives for a scanner hit: the verdict and the scanner's name.
Flagger = Callable[[Verdict, str], None]


class ExternalScans:
    """The configured scanners, asked together about one file at a time."""

    def __init__(
        self,
        scanners: Sequence[ConfiguredScanner],
        *,
        client: httpx.AsyncClient | None = None,
        flagger: Flagger | None = None,
        on_feed: Flagger | None = None,
        clock: Callable[[], float] = time.monotonic,
        links: MediaLinks | None = None,
    ) -> None:
        self.scanners = list(scanners)
        self.client = client
        self.links = links  # one-time media URLs (send = "url"); served by /scanner-media
        self.flagger = flagger
        self.on_feed = on_feed  # told (in the event loop) after the flag bank was fed
        self.clock = clock

    def carry_over(self, old: ExternalScans) -> None:
        """Keep the back-off of throttled scanners (by name) of the scanners this
        build replaces (a reload): a vendor that said 429 is not asked sooner for it."""
        quiet = {s.name: s.quiet_until for s in old.scanners}
        for s in self.scanners:
            s.quiet_until = max(s.quiet_until, quiet.get(s.name, 0.0))

    def due(self, source: str, size: int, decision: Decision) -> list[ConfiguredScanner]:
        return [s for s in self.scanners if s.trigger.applies(source, size, decision)]

    async def run(
        self, item: Submission, decision: Decision, *, budget_s: float | None = None
    ) -> tuple[ExternalVerdict, ...]:
        """Ask every scanner due for this item; one verdict each, in configured order.
        `budget_s` caps every scanner's timeout (what is left of the hook's deadline)."""
        due = self.due(item.source, len(item.data), decision)
        if not due:
            return ()
        return tuple(await asyncio.gather(*(self._ask(s, item, budget_s) for s in due)))

    async def _ask(
        self, s: ConfiguredScanner, item: Submission, budget_s: float | None = None
    ) -> ExternalVerdict:
        started = time.perf_counter()
        limit = s.timeout_s if budget_s is None else max(0.0, min(s.timeout_s, budget_s))
        try:
            if self.clock() < s.quiet_until:
                wait = s.quiet_until - self.clock()
                raise ScannerThrottled(
                    f"{s.name}: throttled, not asked for another {wait:.0f} s", scanner=s.name
                )
            try:
                async with asyncio.timeout(limit):
                    async with s.slots:
                        answer = await s.adapter.scan(item)
            except TimeoutError:
                raise ScannerTimeout(
                    f"{s.name}: no verdict within {limit:g} s", scanner=s.name
                ) from None
        except ScannerError as exc:
            if isinstance(exc, ScannerThrottled) and self.clock() >= s.quiet_until:
                backoff = exc.retry_after_s if exc.retry_after_s is not None else DEFAULT_BACKOFF_S
                s.quiet_until = self.clock() + backoff
            return self._failed(s, exc.code, exc.message, started)
        except Exception as exc:  # an adapter bug must not take the gate down
            log.exception("scanner %s failed unexpectedly", s.name)
            return self._failed(s, "scanner_error", type(exc).__name__, started)
        latency = (time.perf_counter() - started) * 1000
        return ExternalVerdict(
            s.name,
            s.adapter.kind,
            answer.decision,
            latency,
            answer.labels,
            s.fail_mode,
            csam=answer.csam,
        )

    def _failed(
        self, s: ConfiguredScanner, code: str, message: str, started: float
    ) -> ExternalVerdict:
        latency = (time.perf_counter() - started) * 1000
        log.warning("scanner %s gave no verdict: %s (%s)", s.name, code, s.fail_mode.value)
        return ExternalVerdict(
            s.name,
            s.adapter.kind,
            None,
            latency,
            fail_mode=s.fail_mode,
            error_code=code,
            error=REDACTOR.redact(message),
        )

    async def apply(
        self,
        verdict: Verdict,
        data: bytes,
        mime: str,
        source: str,
        *,
        budget_s: float | None = None,
    ) -> Verdict:
        """The verdict after asking the scanners due for it (unchanged when none is).

        Each external verdict is recorded as a reason (scanner, decision, raw
        labels, latency) and its latency as a timing `scanner:<name>`; a hit of
        a scanner with `feed_flag_bank` sends the hashes to the flag bank. Media with a
        known-CSAM match is never sent out, whatever its decision and the triggers."""
        if any(m.get("csam") for m in verdict.matches):
            return verdict
        item = Submission(data, mime, verdict.sha256, source)
        externals = await self.run(item, verdict.decision, budget_s=budget_s)
        if not externals:
            return verdict
        merged = combine(verdict.decision, verdict.reasons, externals)
        timings = dict(verdict.timings)
        timings.update({f"scanner:{e.scanner}": e.latency_ms for e in externals})
        out = replace(verdict, decision=merged.decision, reasons=merged.reasons, timings=timings)
        await self._feed(out, externals)
        return out

    async def _feed(self, verdict: Verdict, externals: Iterable[ExternalVerdict]) -> None:
        if self.flagger is None:
            return
        feeding = {s.name for s in self.scanners if s.feed_flag_bank}
        for e in externals:
            if hit(e) and e.scanner in feeding:
                try:
                    await asyncio.to_thread(self.flagger, verdict, e.scanner)
                except Exception:  # the refusal stands; the bank misses one entry
                    log.exception("flag bank not fed for %s (%s)", verdict.sha256, e.scanner)
                    continue
                if self.on_feed is not None:
                    self.on_feed(verdict, e.scanner)

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def build_adapter(
    cfg: ScannerSettings,
    client: httpx.AsyncClient,
    secret: str | None,
    links: MediaLinks | None = None,
) -> ExternalScanner:
    """The adapter for one `[[scanners.external]]` table (ConfigError when it lacks a
    key); `links` serves the media of `send = "url"` scanners."""
    where = f"scanners.external '{cfg.name}'"
    if cfg.send == "url" and (cfg.kind != "http" or links is None):
        raise ConfigError(f"{where}: send = 'url' needs kind = 'http' and scanners.media_url_base")
    if cfg.kind == "http":
        return HttpScanner(
            cfg.name,
            cfg.url,
            client,
            secret=secret,
            secret_header=cfg.secret_header,
            decision_field=cfg.decision_field,
            reject_values=cfg.reject_values,
            review_values=cfg.review_values,
            accept_values=cfg.accept_values,
            labels_field=cfg.labels_field,
            links=links if cfg.send == "url" else None,
            link_ttl_s=cfg.timeout_s,
        )
    if cfg.kind == "fedi_safety":
        return FediSafetyScanner(cfg.name, cfg.url, client, pictrs_id=secret)
    if secret is None:
        raise ConfigError(f"{where}: {cfg.kind} needs its API key (secret or secret_file)")
    if cfg.kind == "photodna":
        return PhotoDnaScanner(cfg.name, cfg.url, client, key=secret, enhance=cfg.enhance)
    return HiveScanner(
        cfg.name,
        cfg.url,
        client,
        key=secret,
        reject_classes=cfg.reject_classes,
        review_classes=cfg.review_classes,
    )


def bank_flagger(settings: Settings, store: BankStore) -> Flagger:
    """Feeds the flag bank (`banks.flag_bank`, PDQ, and its `-sha256` companion, as
    `warden flag` does, both created on first use) with a scanner hit's hashes.
    Unlike `warden flag` it does not re-match the decisions log: a flood of hits
    must not mean a flood of log scans."""

    def feed(verdict: Verdict, scanner: str) -> None:
        name = settings.banks.flag_bank
        note = f"refused by external scanner {scanner}"
        pdq = store.ensure_bank(name, BankKind.PDQ, BankAction.REJECT, note)
        sha = store.ensure_bank(f"{name}-sha256", BankKind.SHA256, BankAction.REJECT, note)
        source, by = f"scanner {scanner}", f"scanner:{scanner}"
        strong = [f.pdq for f in verdict.frames if f.quality >= pdq.min_quality]
        if strong:
            store.add(pdq.name, [NewEntry(v, source, by, note) for v in dict.fromkeys(strong)])
        if verdict.sha256:
            store.add(sha.name, [NewEntry(verdict.sha256, source, by, note)])

    return feed


def build_external_scans(
    settings: Settings,
    *,
    flagger: Flagger | None = None,
    on_feed: Flagger | None = None,
    links: MediaLinks | None = None,
) -> ExternalScans | None:
    """The configured scanners, or None when there are none (nothing is built).
    `links` keeps the one-time media URLs of a previous build (a reload), so that
    links handed out before it are still served."""
    configured = settings.scanners.external
    if not configured:
        return None
    names = [c.name for c in configured]
    if len(set(names)) != len(names):
        raise ConfigError("scanners.external: two scanners share a name")
    links = _media_links(settings, links)
    for cfg in configured:  # before any client exists
        if cfg.send == "url" and (cfg.kind != "http" or links is None):
            raise ConfigError(
                f"scanners.external '{cfg.name}': send = 'url' needs kind = 'http' "
                "and scanners.media_url_base"
            )
    client = httpx.AsyncClient(follow_redirects=False)
    scanners = []
    for cfg in configured:
        secret = read_secret(cfg.secret, cfg.secret_file, f"scanners.external '{cfg.name}'")
        REDACTOR.add(secret)
        scanners.append(
            ConfiguredScanner(
                build_adapter(cfg, client, secret, links),
                ScanTrigger(cfg.run_on, cfg.only_review, cfg.min_bytes),
                timeout_s=cfg.timeout_s,
                concurrency=cfg.concurrency,
                fail_mode=cfg.fail_mode,
                feed_flag_bank=cfg.feed_flag_bank,
            )
        )
    REDACTOR.install()
    return ExternalScans(scanners, client=client, flagger=flagger, on_feed=on_feed, links=links)


def _media_links(settings: Settings, previous: MediaLinks | None) -> MediaLinks | None:
    """The one-time URL store when a scanner fetches by URL (the previous one when its
    base is unchanged, so a reload voids no link in flight); None otherwise."""
    s = settings.scanners
    if s.media_url_base is None or not any(c.send == "url" for c in s.external):
        return None
    if previous is not None and previous.base == s.media_url_base.rstrip("/"):
        return previous
    return MediaLinks(s.media_url_base, ttl_s=max(c.timeout_s for c in s.external))

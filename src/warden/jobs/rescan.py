"""`warden rescan`: scan what pict-rs already stores, with the same scanner and banks.

Stores: a pict-rs filesystem store (a folder, walked lazily) or an
S3-compatible bucket (boto3, listed page by page). Work is spread with an
existing engine, never a home-made scheduler: a `ProcessPoolExecutor` on one
machine (the scanner is built once per process by the pool's initializer), or
Ray past one machine (one actor per worker holds the model; GPU actors when
CUDA is present). Each worker loads the hash banks from the database, so a
stored copy of known-bad media is recognised exactly as the gate would.

Results come back to this process, which alone writes: the decisions log
(source `rescan`), the evidence store for media refused for a label or a hash
match (the bytes travel back only for those), then the resumable ledger. The
ledger is written last, so a crash re-scans a key rather than losing its
decision. With `--purge`, refused keys are mapped back to pict-rs aliases
(`GET /internal/identifier` for each alias Lemmy knows) and purged through
pict-rs, rate-limited, each purge recorded in the ledger.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warden.config import Settings
from warden.domain.verdict import Verdict
from warden.errors import EvidenceError
from warden.media.pipeline import ScanContext, Scanner

if TYPE_CHECKING:
    from warden.adapters.pictrs import PictrsAdmin
    from warden.store.decisions import DecisionLog
    from warden.store.quarantine import EvidenceStore
    from warden.store.rescan_ledger import RescanLedger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreSpec:
    """Where stored media lives; small and picklable, so workers open it themselves."""

    folder: str | None = None
    bucket: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None

    def describe(self) -> str:
        return self.folder or f"s3://{self.bucket}/{self.prefix}"


def _s3(spec: StoreSpec) -> Any:
    import boto3

    return boto3.client(
        "s3", endpoint_url=spec.endpoint_url, region_name=spec.region or "us-east-1"
    )


def list_keys(spec: StoreSpec) -> Iterator[str]:
    """Every object key (S3) or file path relative to the folder, lazily, in a stable order."""
    if spec.folder:
        root = Path(spec.folder)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                yield str((Path(dirpath) / name).relative_to(root))
        return
    paginator = _s3(spec).get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=spec.bucket, Prefix=spec.prefix):
        for item in page.get("Contents", []):
            yield str(item["Key"])


def read_key(spec: StoreSpec, key: str, client: Any = None) -> bytes:
    if spec.folder:
        return (Path(spec.folder) / key).read_bytes()
    body = (client or _s3(spec)).get_object(Bucket=spec.bucket, Key=key)["Body"]
    data: bytes = body.read()
    return data


@dataclass(frozen=True)
class RescanResult:
    key: str
    decision: str  # accept | review | reject | error
    reasons: tuple[str, ...]
    sha256: str | None
    verdict: Verdict | None  # a portable copy (None when the key could not be read)
    data: bytes | None = None  # the media, only when it must be preserved as evidence


def _bank_matcher(settings: Settings) -> Any:
    """The banks as the gate holds them, loaded once per worker (None without a database)."""
    from warden.media.matcher import BankMatcher
    from warden.store.banks import BankStore, BankSync
    from warden.store.database import Database

    matcher = BankMatcher()
    database = Database(settings.database_url)
    try:
        BankSync(BankStore(database), matcher).load()
    finally:
        database.dispose()
    return matcher


def _migrate(settings: Settings) -> None:
    """Bring the database to the current schema once, before workers read the banks."""
    from warden.store.database import Database

    database = Database(settings.database_url)
    try:
        database.upgrade()
    finally:
        database.dispose()


class RescanWorker:
    """Scans keys of one store; one per process or Ray actor (model and banks load once)."""

    def __init__(self, settings_json: str, spec: StoreSpec) -> None:
        from warden.config import Settings
        from warden.services import build_scanner

        settings = Settings.model_validate_json(settings_json)
        self.scanner: Scanner = build_scanner(settings, matcher=_bank_matcher(settings))
        self.spec = spec
        self._client = _s3(spec) if spec.bucket else None

    def scan(self, key: str) -> RescanResult:
        from warden.store.quarantine import should_preserve

        try:
            data = read_key(self.spec, key, self._client)
        except Exception as exc:  # a store error costs this key only
            return RescanResult(key, "error", (f"unreadable: {exc}",), None, None)
        verdict = self.scanner.scan(data, ScanContext(source="rescan", filename=key))
        return RescanResult(
            key,
            verdict.decision.value,
            tuple(verdict.codes),
            verdict.sha256,
            verdict.portable(),
            data if should_preserve(verdict) else None,
        )


_worker: RescanWorker | None = None


def _init_process(settings_json: str, spec: StoreSpec) -> None:
    global _worker
    _worker = RescanWorker(settings_json, spec)


def _scan_in_process(key: str) -> RescanResult:
    assert _worker is not None, "pool initializer did not run"
    return _worker.scan(key)


def _settings_for_workers(settings: Settings, workers: int) -> str:
    copy = settings.model_copy(deep=True)
    if copy.model.threads == 0:
        copy.model.threads = max(1, (os.cpu_count() or 1) // max(workers, 1))
    return copy.model_dump_json()


def scan_with_pool(
    settings: Settings, spec: StoreSpec, keys: Iterable[str], workers: int, window: int = 64
) -> Iterator[RescanResult]:
    """Scan keys with a process pool; results stream in input order, memory stays bounded."""
    _migrate(settings)
    if workers <= 1:
        worker = RescanWorker(_settings_for_workers(settings, 1), spec)
        yield from (worker.scan(k) for k in keys)
        return
    with ProcessPoolExecutor(
        max_workers=workers,
        initializer=_init_process,
        initargs=(_settings_for_workers(settings, workers), spec),
    ) as pool:
        batch: list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) >= window:
                yield from pool.map(_scan_in_process, batch, chunksize=4)
                batch = []
        if batch:
            yield from pool.map(_scan_in_process, batch, chunksize=4)


def scan_with_ray(
    settings: Settings, spec: StoreSpec, keys: Iterable[str], address: str, workers: int
) -> Iterator[RescanResult]:
    """Scan keys on Ray: `workers` actors, each holding one scanner; GPUs used when present."""
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as exc:
        from warden.errors import ConfigError

        raise ConfigError("--ray needs Ray: pip install 'warden[ray]'") from exc

    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=max(workers, 1), include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    _migrate(settings)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= workers else 0  # type: ignore[no-untyped-call]
    actor_cls = ray.remote(num_cpus=1, num_gpus=gpus)(RescanWorker)
    if gpus:
        settings = settings.model_copy(deep=True)
        settings.model.providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    settings_json = _settings_for_workers(settings, workers)
    pool = ActorPool([actor_cls.remote(settings_json, spec) for _ in range(max(workers, 1))])
    window: list[str] = []
    for key in keys:  # bounded windows keep memory flat on millions of keys
        window.append(key)
        if len(window) >= 256:
            yield from pool.map(lambda actor, k: actor.scan.remote(k), window)
            window = []
    if window:
        yield from pool.map(lambda actor, k: actor.scan.remote(k), window)


class RescanRecorder:
    """Writes what the gate writes for each result: the decision, then the evidence."""

    def __init__(
        self, decisions: DecisionLog | None, evidence: EvidenceStore | None, config_version: str
    ) -> None:
        self.decisions = decisions
        self.evidence = evidence
        self.config_version = config_version
        self.evidence_errors = 0

    def __call__(self, result: RescanResult) -> tuple[int | None, str | None]:
        from warden.store.quarantine import evidence_metadata

        if result.verdict is None:
            return None, None
        evidence_id = self.evidence.new_id() if self.evidence is not None and result.data else None
        decision_id = None
        if self.decisions is not None:
            decision_id = self.decisions.record(
                result.verdict,
                source="rescan",
                config_version=self.config_version,
                evidence_id=evidence_id,
            )
        if evidence_id is not None and self.evidence is not None and result.data is not None:
            metadata = evidence_metadata(
                result.verdict,
                source="rescan",
                uploader=None,
                declared_type=None,
                config_version=self.config_version,
                decision_id=decision_id,
                store_key=result.key,
            )
            try:
                self.evidence.preserve(result.data, metadata, item_id=evidence_id)
            except EvidenceError:
                log.exception("EVIDENCE NOT PRESERVED for %s (%s)", result.sha256, result.key)
                self.evidence_errors += 1
                evidence_id = None
        return decision_id, evidence_id


def run_rescan(
    settings: Settings,
    spec: StoreSpec,
    ledger: RescanLedger,
    *,
    workers: int,
    ray_address: str | None = None,
    recorder: Callable[[RescanResult], tuple[int | None, str | None]] | None = None,
    on_result: Callable[[RescanResult], None] = lambda r: None,
) -> dict[str, int]:
    """Scan every key not yet in the ledger; returns counts by decision for this run."""
    keys = (k for k in list_keys(spec) if not ledger.seen(k))
    results = (
        scan_with_ray(settings, spec, keys, ray_address, workers)
        if ray_address
        else scan_with_pool(settings, spec, keys, workers)
    )
    counts: dict[str, int] = {}
    for result in results:
        decision_id, evidence_id = recorder(result) if recorder else (None, None)
        ledger.record(result, decision_id=decision_id, evidence_id=evidence_id)
        counts[result.decision] = counts.get(result.decision, 0) + 1
        on_result(result)
    return counts


def _norm(path: str) -> str:
    return path.strip("/")


def _same_object(key: str, identifier: str) -> bool:
    """A store key and a pict-rs identifier name the same object when one is a
    path suffix of the other (the folder given may be pict-rs's root or its files/)."""
    a, b = _norm(key), _norm(identifier)
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


@dataclass
class RescanPurgeReport:
    refused: int = 0
    mapped: int = 0
    unmapped: int = 0
    purged: int = 0
    already_gone: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def purge_refused(
    ledger: RescanLedger,
    pictrs: PictrsAdmin,
    aliases: Iterable[str],
    *,
    rate: float,
    on_step: Callable[[str, str], None] = lambda key, result: None,
    max_errors: int = 20,
) -> RescanPurgeReport:
    """Purge through pict-rs every stored object the rescan refused (`reject` only:
    `review` stays for a human). Resumable: each purge is recorded in the ledger."""
    from warden.adapters.pictrs import PictrsError
    from warden.jobs.purge import RateLimiter

    report = RescanPurgeReport()
    refused = ledger.refused_unpurged()
    report.refused = len(refused)
    todo = [key for key, alias in refused.items() if alias is None]
    by_name: dict[str, list[str]] = {}
    for key in todo:
        by_name.setdefault(_norm(key).rsplit("/", 1)[-1], []).append(key)
    for alias in aliases:  # one identifier call per alias, until every refused key is found
        if not by_name:
            break
        identifier = pictrs.identifier(alias)
        if identifier is None:
            continue
        name = _norm(identifier).rsplit("/", 1)[-1]
        for key in list(by_name.get(name, ())):
            if _same_object(key, identifier):
                ledger.set_alias(key, alias)
                by_name[name].remove(key)
        if name in by_name and not by_name[name]:
            del by_name[name]
    report.unmapped = sum(len(v) for v in by_name.values())
    limiter = RateLimiter(rate)
    for key, alias in ledger.purge_todo():
        report.mapped += 1
        try:
            limiter.wait()
            result = pictrs.purge(alias)
        except PictrsError as exc:
            ledger.mark_purge(key, "failed", exc.message)
            report.failed += 1
            report.errors.append(f"{key} ({alias}): {exc.message}")
            on_step(key, "failed")
            if report.failed >= max_errors:
                raise
            continue
        state = "purged" if result.purged else "gone"
        ledger.mark_purge(key, state, ",".join(result.aliases) or None)
        if result.purged:
            report.purged += 1
        else:
            report.already_gone += 1
        on_step(key, state)
    for key in sorted(k for v in by_name.values() for k in v):
        report.errors.append(f"{key}: no pict-rs alias known to Lemmy points at it")
    return report

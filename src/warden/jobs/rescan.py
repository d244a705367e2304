"""`warden rescan`: scan what pict-rs already stores, with the same scanner and banks.

Stores: a pict-rs filesystem store (a folder, walked lazily), an
S3-compatible bucket (boto3, listed page by page), or pict-rs 0.5 itself
(every stored file listed once by `/internal/hashes`, read from its public
`/image/original/`), for admins without direct access to the store. Work is spread with an
existing engine, never a home-made scheduler: a `ProcessPoolExecutor` on one
machine (the scanner is built once per process by the pool's initializer), or
Ray past one machine (one actor per worker holds the model; GPU actors when
CUDA is present). Each worker loads the hash banks from the database, so a
stored copy of known-bad media is recognised exactly as the gate would.

Results come back to this process, which alone writes: the decisions log
(source `rescan`), the evidence store for media refused for a label or a hash
match (the bytes travel back only for those), then the resumable ledger. The
ledger is written last, so a crash re-scans a key rather than losing its
decision. `--purge` is `warden.jobs.rescan_purge`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warden.adapters.pictrs import PictrsAdmin, fetch_original
from warden.config import Settings
from warden.domain.policy import FailMode
from warden.domain.verdict import Verdict
from warden.errors import ConfigError
from warden.media.keypoint_stage import KeypointStage
from warden.media.matcher import BankMatcher
from warden.media.pipeline import ScanContext, Scanner
from warden.services import bank_store, build_scanner, open_database
from warden.services.bank_sync import BankSync
from warden.services.keypoint_sync import KeypointSync
from warden.services.recorder import DecisionRecorder, Facts, Recorded
from warden.store.keypoint_features import KeypointFeatureStore
from warden.store.quarantine import should_preserve

if TYPE_CHECKING:
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
    pictrs_url: str | None = None  # read through pict-rs itself (0.5): keys are aliases

    def describe(self) -> str:
        if self.pictrs_url:
            return f"pict-rs {self.pictrs_url}"
        return self.folder or f"s3://{self.bucket}/{self.prefix}"


def _s3(spec: StoreSpec) -> Any:
    import boto3

    return boto3.client(
        "s3", endpoint_url=spec.endpoint_url, region_name=spec.region or "us-east-1"
    )


def list_keys(spec: StoreSpec, api_key: str | None = None) -> Iterator[str]:
    """Every object key (S3), file path relative to the folder, or (through pict-rs 0.5,
    which lists each stored file once with `/internal/hashes`) one alias per file,
    lazily. pict-rs 0.4 raises `HashListingUnavailable`."""
    if spec.pictrs_url:
        with PictrsAdmin(spec.pictrs_url, api_key or "") as pictrs:
            for stored in pictrs.stored_files():
                if stored.aliases:
                    yield stored.aliases[0]
        return
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
    """The bytes of one stored object (through pict-rs: its public original route)."""
    if spec.pictrs_url:
        original = fetch_original(spec.pictrs_url, key)
        if original is None:
            raise FileNotFoundError(f"pict-rs no longer has {key}")
        return original
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


def _held_banks(settings: Settings) -> tuple[BankMatcher, KeypointStage | None]:
    """The banks as the gate holds them, loaded once per worker: the hashes and the
    held pictures' keypoints (issue 16), so a rescan after a flag finds the crops
    and small turns of the flagged picture already in storage, as the gate would."""
    matcher = BankMatcher()
    stage = KeypointStage() if settings.banks.keypoints else None
    database = open_database(settings)
    try:
        store = bank_store(database)
        held = None if stage is None else KeypointSync(KeypointFeatureStore(database), store, stage)
        BankSync(store, matcher, keypoints=held).load()
    finally:
        database.dispose()
    return matcher, stage


def _migrate(settings: Settings) -> None:
    """Bring the database to the current schema once, before workers read the banks."""
    database = open_database(settings)
    try:
        database.upgrade()
    finally:
        database.dispose()


class RescanWorker:
    """Scans keys of one store; one per process or Ray actor (model and banks load once)."""

    def __init__(self, settings_json: str, spec: StoreSpec) -> None:
        settings = Settings.model_validate_json(settings_json)
        matcher, held = _held_banks(settings)
        self.scanner: Scanner = build_scanner(settings, matcher=matcher, keypoints=held)
        self.spec = spec
        self._client = _s3(spec) if spec.bucket else None

    def scan(self, key: str) -> RescanResult:
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
    """Records each rescan result exactly as the gate records an upload, through the
    one decision recorder (services/recorder.py): evidence first, then the row,
    a failed evidence write recorded as `evidence_error`, a failed row write
    answered under the `rescan` failure mode (closed) with `store_error`."""

    def __init__(
        self,
        decisions: DecisionLog | None,
        evidence: EvidenceStore | None,
        config_version: str,
        *,
        fail_modes: Mapping[str, FailMode] | None = None,
    ) -> None:
        self.recorder = DecisionRecorder(
            decisions,
            evidence,
            fail_modes=fail_modes or {"rescan": FailMode.CLOSED},
            config_version=config_version,
            group_commit=False,  # one writer, in order: nothing to group
        )

    @property
    def evidence_errors(self) -> int:
        return self.recorder.evidence_errors

    def __call__(self, result: RescanResult) -> Recorded | None:
        """The recorded verdict, or None for a key that could not be read (no verdict)."""
        if result.verdict is None:
            return None
        facts = Facts("rescan", store_key=result.key)
        return self.recorder.record(result.verdict, facts, result.data)


def _as_recorded(result: RescanResult, recorded: Recorded) -> RescanResult:
    """The result as it was recorded (a failed row write changes the verdict)."""
    verdict = recorded.verdict
    if verdict is result.verdict:
        return result
    return replace(
        result,
        decision=verdict.decision.value,
        reasons=tuple(verdict.codes),
        verdict=verdict.portable(),
    )


def run_rescan(
    settings: Settings,
    spec: StoreSpec,
    ledger: RescanLedger,
    *,
    workers: int,
    ray_address: str | None = None,
    recorder: Callable[[RescanResult], Recorded | None] | None = None,
    on_result: Callable[[RescanResult], None] = lambda r: None,
) -> dict[str, int]:
    """Scan every key not yet in the ledger; returns counts by decision for this run."""
    api_key = settings.pictrs.api_key.get_secret_value() if settings.pictrs.api_key else None
    keys = (k for k in list_keys(spec, api_key) if not ledger.seen(k))
    results = (
        scan_with_ray(settings, spec, keys, ray_address, workers)
        if ray_address
        else scan_with_pool(settings, spec, keys, workers)
    )
    counts: dict[str, int] = {}
    for scanned in results:
        recorded = recorder(scanned) if recorder else None
        result = scanned if recorded is None else _as_recorded(scanned, recorded)
        if recorded is None or recorded.logged:
            # a key whose decision row could not be written stays out of the ledger,
            # so the next run scans it again rather than losing its decision
            ledger.record(
                result,
                decision_id=recorded.decision_id if recorded else None,
                evidence_id=recorded.evidence_id if recorded else None,
            )
        counts[result.decision] = counts.get(result.decision, 0) + 1
        on_result(result)
    return counts

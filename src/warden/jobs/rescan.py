"""`warden rescan`: scan what pict-rs already stores, with the same scanner and banks.

Stores: a pict-rs filesystem store (a folder, walked lazily) or an
S3-compatible bucket (boto3, listed page by page). Work is spread with an
existing engine, never a home-made scheduler: a `ProcessPoolExecutor` on one
machine (the scanner is built once per process by the pool's initializer), or
Ray past one machine (one actor per worker holds the model; GPU actors when
CUDA is present). Results go to a resumable ledger: a re-run skips every key
already scanned.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warden.config import Settings
from warden.media.pipeline import ScanContext, Scanner


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
    verdict: dict[str, Any] | None


class RescanWorker:
    """Scans keys of one store; one per process or Ray actor (the model loads once)."""

    def __init__(self, settings_json: str, spec: StoreSpec) -> None:
        from warden.config import Settings
        from warden.services import build_scanner

        settings = Settings.model_validate_json(settings_json)
        self.scanner: Scanner = build_scanner(settings)
        self.spec = spec
        self._client = _s3(spec) if spec.bucket else None

    def scan(self, key: str) -> RescanResult:
        try:
            data = read_key(self.spec, key, self._client)
        except Exception as exc:  # a store error costs this key only
            return RescanResult(key, "error", (f"unreadable: {exc}",), None, None)
        verdict = self.scanner.scan(data, ScanContext(source="rescan", filename=key))
        return RescanResult(
            key, verdict.decision.value, tuple(verdict.codes), verdict.sha256, verdict.as_dict()
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


def run_rescan(
    settings: Settings,
    spec: StoreSpec,
    ledger: Any,
    *,
    workers: int,
    ray_address: str | None = None,
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
        ledger.record(result)
        counts[result.decision] = counts.get(result.decision, 0) + 1
        on_result(result)
    return counts

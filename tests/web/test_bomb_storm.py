"""Bombs through the real `/pictrs/validate`: named refusals in time, a decision row for
every answer, memory bounded under a storm of 20, and the gate still serving after.

Issue 12 findings 1-4 and part of 8 (a failed evidence write left `evidence_id`
pointing at nothing).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests import bombs
from tests.conftest import encode, gradient
from tests.web.gate import FACE_REJECT, gate_settings
from warden.media.decode import DecodeLimits
from warden.media.decoder_pool import Analysis
from warden.services import Services
from warden.web.app import create_app

TIMEOUT_S = 2.0
GIB = 1024**3


def _client(services: Services) -> httpx.AsyncClient:
    app = create_app(services.settings, services)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://warden", timeout=60
    )


@pytest.fixture
def services(tmp_path, db_url, classifier, gate_services_tracked) -> Iterator[Services]:
    settings = gate_settings(
        tmp_path, db_url, media={"decode_timeout_s": TIMEOUT_S}, server={"scan_workers": 2}
    )
    built = gate_services_tracked(settings, classifier)
    yield built
    built.scanner.close()


WORST: dict[str, tuple[Callable[[], bytes], str]] = {
    "jpeg-5000-scans": (lambda: bombs.progressive_scan_bomb(5000), "too_many_scans"),
    "jpeg-90-scans-of-100MP": (lambda: bombs.progressive_scan_bomb(90), "too_many_scans"),
    "gif-canvas-growth": (bombs.gif_canvas_growth, "too_many_pixels"),
    "gif-50-bytes-4GB": (bombs.gif_tiny_huge, "too_many_pixels"),
    "tiff-second-page": (lambda: bombs.tiff_pages([(16, 16), (20_000, 20_000)]), "too_many_pixels"),
    "webp-30-bytes": (bombs.webp_tiny_huge, "too_many_pixels"),
    "tiff-tile-overflow": (lambda: bombs.tiff_pages([(16, 16)], tile=0xFFFFFFF0), "corrupt_media"),
}


async def test_each_bomb_is_refused_by_name_in_time_with_a_decision_row(services: Services):
    assert services.decisions is not None
    async with _client(services) as client:
        for name, (build, code) in WORST.items():
            started = time.monotonic()
            answer = await client.post("/pictrs/validate", content=build())
            elapsed = time.monotonic() - started
            assert answer.status_code == 422, (name, answer.text)
            assert answer.json()["error"] == code, (name, answer.text)
            assert elapsed < TIMEOUT_S + 1.0, (name, elapsed)
            latest = services.decisions.recent(limit=1)[0]
            assert latest.verdict.codes[0] == code and latest.verdict.decision == "reject"
        ordinary = await client.post("/pictrs/validate", content=encode(gradient(800, 600)))
    assert ordinary.status_code == 200, ordinary.text
    assert len(services.decisions.recent(limit=100)) == len(WORST) + 1


#: Servers the test session starts beside Warden (the PostgreSQL cluster, nginx,
#: Chromium) are children of pytest too, but not part of the service: their
#: subtrees are left out of the measurement.
#: other servers the test session started (PostgreSQL, nginx, Playwright's driver and
#: browser): not part of the service measured
NOT_THE_SERVICE = frozenset(
    {"postgres", "nginx", "chromium", "chrome", "headless_shell", "node", "raylet", "gcs_server"}
)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        if pid != root and _command(pid) in NOT_THE_SERVICE:
            continue
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def tree_rss(root: int) -> int:
    """Resident memory of a process and all its descendants, in bytes (from /proc)."""
    total = 0
    for pid in _descendants(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


@contextmanager
def peak_rss(root: int, every_s: float = 0.01) -> Iterator[list[int]]:
    """Samples the tree's RSS while the block runs; yields [peak] (filled at the end)."""
    peak = [tree_rss(root)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(every_s):
            peak[0] = max(peak[0], tree_rss(root))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


async def test_twenty_concurrent_bombs_keep_memory_bounded_and_every_answer_logged(
    services: Services,
):
    assert services.decisions is not None
    kinds = [
        bombs.progressive_scan_bomb(5000),
        bombs.gif_canvas_growth(),
        bombs.gif_tiny_huge(),
        bombs.tiff_pages([(16, 16), (20_000, 20_000)]),
        bombs.webp_tiny_huge(),
        bombs.tiff_pages([(16, 16)], tile=0xFFFFFFF0),
        bombs.webp_tiny_huge("VP8L"),
        bombs.progressive_scan_bomb(14, side=8_000),  # in every limit: decodes (~0.5 s)
    ]
    storm = [kinds[i % len(kinds)] for i in range(20)]
    async with _client(services) as client:
        await client.post("/pictrs/validate", content=encode(gradient(320, 240)))  # warm
        before = tree_rss(os.getpid())
        with peak_rss(os.getpid()) as peak:
            answers = await asyncio.gather(
                *(client.post("/pictrs/validate", content=body) for body in storm)
            )
        after = await client.post("/pictrs/validate", content=encode(gradient(800, 600)))
    grown = peak[0] - before
    print(
        f"process tree RSS: {before / GIB:.2f} GiB before the storm, peak {peak[0] / GIB:.2f} "
        f"GiB during 20 bombs (+{grown / GIB:.2f} GiB)"
    )
    # The service runs inside this test process, which carries whatever earlier tests
    # loaded (models, indexes, browsers' drivers); what 20 bombs may add is what a
    # standalone `warden serve` (about 0.45 GiB with its model) has left under 1.5 GiB.
    assert grown <= 1.0 * GIB
    for body, answer in zip(storm, answers, strict=True):
        if body is kinds[-1]:  # a plain grey picture within every limit: decoded, judged
            assert answer.status_code == 200, answer.text
        else:
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"] in ("too_many_scans", "too_many_pixels", "corrupt_media")
    assert after.status_code == 200, after.text
    assert len(services.decisions.recent(limit=100)) == 1 + len(storm) + 1


async def test_a_decode_past_the_deadline_is_killed_and_the_next_upload_accepted(
    tmp_path, db_url, classifier, gate_services_tracked
):
    """The deadline is the backstop for whatever costs more than its header says:
    with the scan budget lifted, 90 scans of 100 MP (~4 s) are stopped at 1 s."""
    settings = gate_settings(
        tmp_path,
        db_url,
        media={"decode_timeout_s": 1.0, "max_scan_pixels": 10**15},
        server={"scan_workers": 1},
    )
    services = gate_services_tracked(settings, classifier)
    assert services.decisions is not None
    async with _client(services) as client:
        started = time.monotonic()
        slow = await client.post("/pictrs/validate", content=bombs.progressive_scan_bomb(90))
        elapsed = time.monotonic() - started
        after = await client.post("/pictrs/validate", content=encode(gradient(800, 600)))
    services.scanner.close()
    assert slow.status_code == 422 and slow.json()["error"] == "decode_timeout"
    assert elapsed < 2.0
    assert after.status_code == 200, after.text  # the one worker was replaced at once
    codes = [r.verdict.codes for r in services.decisions.recent(limit=10)]
    assert codes == [[], ["decode_timeout"]]


class _Exploding:
    def run(
        self, data: bytes, limits: DecodeLimits, *, give_up_at: float | None = None
    ) -> Analysis:
        raise OverflowError("int too large to convert")

    def is_heavy(self, data: bytes) -> bool:
        return False

    def start(self) -> None: ...

    def close(self) -> None: ...


async def test_an_exception_anywhere_is_answered_with_a_row_never_a_500(services: Services):
    assert services.decisions is not None and services.scanner.matcher is not None
    services.scanner.decoder = _Exploding()
    async with _client(services) as client:
        answer = await client.post("/pictrs/validate", content=encode(gradient(320, 240)))
    assert answer.status_code == 503 and answer.json()["error"] == "scan_error"
    row = services.decisions.recent(limit=1)[0]
    assert row.verdict.codes == ["scan_error"] and row.verdict.decision == "reject"
    assert "OverflowError" in row.verdict.reasons[0].message


async def test_a_failed_evidence_write_is_recorded_and_names_no_evidence(
    tmp_path, db_url, classifier, astronaut, gate_services_tracked
):
    services = gate_services_tracked(gate_settings(tmp_path, db_url, **FACE_REJECT), classifier)
    assert services.evidence is not None and services.decisions is not None
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    services.evidence.root = blocker  # every write into it fails
    async with _client(services) as client:
        answer = await client.post("/pictrs/validate", content=encode(astronaut))
    services.scanner.close()
    assert answer.status_code == 422 and answer.json()["error"] == "label_reject"
    row = services.decisions.recent(limit=1)[0]
    assert row.evidence_id is None
    assert row.verdict.codes == ["label_reject", "evidence_error"]
    assert "could not be preserved" in row.verdict.reasons[1].message

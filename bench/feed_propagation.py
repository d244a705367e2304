"""Hash feeds: how fast a flag on one Warden protects another, and a 100,000-entry sync.

Two real Wardens on loopback (uvicorn, the bundled model, SQLite): A publishes
its flag bank, B subscribes at the default `feeds.poll_interval_s` and follows its banks every
`banks.refresh_s` (default 5 s: the matcher picks up what a feed added on that
schedule). Each round
flags a fresh synthetic picture on A (what `warden flag` does) and times until
B's /pictrs/validate refuses a resized copy; with push (A posts each batch to
B's inbox) and pull only. Baseline, same run: the time until A itself refuses
the copy (its own bank follower), the floor any propagation sits on.

Then, in a fresh process, a subscriber syncs a 100,000-entry feed from scratch:
time and peak RSS, against adding the same 100,000 hashes to a local bank
directly (what `warden hashes import` does) in the same run.

    .venv/bin/python bench/feed_propagation.py [--push-rounds 10] [--pull-rounds 4]
        [--poll S] [--entries 100000] [--part all|propagation|sync]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import uvicorn
from fastapi import FastAPI
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.feeds.instances import Instance
from tests.feeds.test_instances import admin_flag
from tests.servers.nginx import free_port, wait_for_port

from warden.config import load_settings
from warden.domain.banks import BankAction, BankKind
from warden.domain.feeds import Category, Trust
from warden.media.classify import NudeNetClassifier
from warden.services.feeds import build_feed_service
from warden.store.banks import BankStore, NewEntry
from warden.store.database import Database
from warden.store.feeds import FeedStore
from warden.web.errors import answer_warden_errors
from warden.web.routers import feeds as feeds_router

BANK = "local-confirmed"


def picture(seed: int) -> tuple[bytes, bytes]:
    """A synthetic picture with a strong, unique PDQ, and a resized JPEG copy of it."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    image = Image.fromarray(blocks, "RGB").resize((480, 480), Image.Resampling.BILINEAR)
    png, jpeg = io.BytesIO(), io.BytesIO()
    image.save(png, "PNG")
    image.resize((320, 320)).save(jpeg, "JPEG", quality=75)
    return png.getvalue(), jpeg.getvalue()


def until_refused(
    wardens: list[Instance], media: bytes, start: float, limit_s: float
) -> list[float]:
    """Seconds from `start` until each Warden first refuses `media`, polled side by side."""
    found: dict[str, float] = {}
    while len(found) < len(wardens):
        if time.monotonic() - start > limit_s:
            raise RuntimeError(f"not refused within {limit_s} s: {found}")
        for w in wardens:
            if w.name not in found and w.validate(media).status_code == 422:
                found[w.name] = time.monotonic() - start
        time.sleep(0.02)
    return [found[w.name] for w in wardens]


def peak_rss() -> float:
    """This process's peak resident memory (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> float:
    """Reset the peak to the current RSS (Linux: `5` > clear_refs); the current RSS."""
    Path("/proc/self/clear_refs").write_text("5")
    return peak_rss()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def propagation(args: argparse.Namespace, root: Path) -> None:
    model = NudeNetClassifier(threads=1)
    model.warm_up()
    feeds = {"poll_interval_s": args.poll, "publish_check_s": 1.0}
    a = Instance("a", root, model, feeds=feeds, banks={"refresh_s": 5.0}).start()
    b = Instance("b", root, model, feeds=feeds, banks={"refresh_s": 5.0}).start()
    try:
        a.banks.ensure_bank(BANK, BankKind.PDQ, BankAction.REJECT, "flags")
        b.feeds.subscribe(a.feed_url(BANK), a.feeds.signer.fingerprint, "from-a", Trust.REJECT)
        seed = 0
        phase = random.Random(13)
        for mode, rounds, push in (
            ("push", args.push_rounds, [b.inbox]),
            ("pull", args.pull_rounds, []),
        ):
            a.feeds.publish(BANK, Category.SPAM, push=push)
            own, remote = [], []
            for _ in range(rounds):
                seed += 1
                original, copy = picture(seed)
                path = root / f"flag-{seed}.png"
                path.write_bytes(original)
                assert b.validate(copy).status_code == 200
                if not push:  # flag at a random point of B's poll cycle, not right after a poll
                    time.sleep(phase.uniform(0, args.poll))
                start = time.monotonic()
                admin_flag(a, path)
                mine, theirs = until_refused([a, b], copy, start, 180)
                own.append(mine)
                remote.append(theirs)
            print(
                f"{mode:4}: {rounds} flags  B refuses after p50 {pct(remote, 0.5):6.2f} s  "
                f"p95 {pct(remote, 0.95):6.2f} s  | baseline A itself p50 {pct(own, 0.5):5.2f} s"
                f"  p95 {pct(own, 0.95):5.2f} s  | ratio p50 {statistics.median(remote) / max(statistics.median(own), 1e-3):5.2f}x"
            )
    finally:
        a.stop()
        b.stop()


def sync_from_scratch(args: argparse.Namespace, root: Path) -> None:
    rng = np.random.default_rng(7)
    values = [bytes(row).hex() for row in rng.integers(0, 256, (args.entries, 32), dtype=np.uint8)]
    settings = load_settings(None, data_dir=root / "pub")
    pub_db = Database(f"sqlite:///{root / 'pub.db'}")
    pub_db.upgrade()
    banks = BankStore(pub_db)
    banks.ensure_bank(BANK, BankKind.PDQ, BankAction.REJECT, "bench")
    t0 = time.monotonic()
    banks.add(BANK, (NewEntry(v, "bench", "bench", "") for v in values))
    baseline = time.monotonic() - t0
    publisher = build_feed_service(settings, FeedStore(pub_db), banks)
    publisher.publish(BANK, Category.SPAM)
    t0 = time.monotonic()
    publisher.refresh_published()
    logged = time.monotonic() - t0
    app = FastAPI()
    app.state.services = SimpleNamespace(feeds=publisher)
    app.include_router(feeds_router.router)
    answer_warden_errors(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    wait_for_port(port)

    sub_settings = load_settings(None, data_dir=root / "sub")
    sub_db = Database(f"sqlite:///{root / 'sub.db'}")
    sub_db.upgrade()
    subscriber = build_feed_service(sub_settings, FeedStore(sub_db), BankStore(sub_db))
    subscriber.subscribe(
        f"http://127.0.0.1:{port}/feeds/v1/{BANK}",
        publisher.signer.fingerprint,
        "from-pub",
        Trust.REJECT,
    )
    rss0 = reset_peak_rss()
    t0 = time.monotonic()
    applied = asyncio.run(subscriber.sync_all())
    took = time.monotonic() - t0
    rss1 = peak_rss()
    held = sum(1 for _ in BankStore(sub_db).entries("from-pub"))
    server.should_exit = True
    assert applied == held == args.entries, (applied, held)
    print(
        f"sync : {args.entries:,} entries from scratch in {took:6.2f} s "
        f"({args.entries / took:,.0f}/s), peak RSS {rss1:,.0f} MB (+{rss1 - rss0:,.0f} MB)  | "
        f"baseline local add {baseline:5.2f} s, ratio {took / baseline:4.2f}x  | "
        f"publisher log built in {logged:5.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--push-rounds", type=int, default=10)
    parser.add_argument("--pull-rounds", type=int, default=4)
    parser.add_argument("--poll", type=float, default=30.0, help="B's feeds.poll_interval_s")
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--part", choices=("all", "propagation", "sync"), default="all")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.part in ("all", "propagation"):
            propagation(args, root)
        if args.part == "sync":
            sync_from_scratch(args, root)
    if args.part == "all":  # a fresh process, so its peak RSS is the sync's own
        subprocess.run(
            [sys.executable, __file__, "--part", "sync", "--entries", str(args.entries)],
            check=True,
        )


if __name__ == "__main__":
    main()

"""Several Wardens on loopback for the feed tests: each a real app (real scanner with
the bundled model, its own SQLite database and key) served by uvicorn in a thread,
lifespan included, so its background feed loops and bank follower really run."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tests.servers.nginx import free_port, wait_for_port
from tests.web.gate import gate_services, gate_settings
from warden.media.classify import Classifier
from warden.services.feeds import FeedService
from warden.store.banks import BankStore
from warden.web.app import create_app

FAST = {"poll_interval_s": 0.3, "publish_check_s": 0.1}


class Instance:
    """One Warden on 127.0.0.1:<free port>."""

    def __init__(self, name: str, root: Path, classifier: Classifier, **overrides: Any) -> None:
        self.name = name
        folder = root / name
        folder.mkdir(mode=0o700)
        overrides.setdefault("feeds", FAST)
        overrides.setdefault("banks", {"refresh_s": 0.2})
        self.settings = gate_settings(folder, f"sqlite:///{folder / 'warden.db'}", **overrides)
        self.services = gate_services(self.settings, classifier)
        self.app = create_app(self.settings, self.services)
        feeds = self.services.feeds  # built by build_services, run by Services.start
        assert isinstance(feeds, FeedService)
        self.feeds = feeds
        assert self.services.database is not None
        self.banks = BankStore(self.services.database)
        self.port = free_port()
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name=name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def feed_url(self, feed: str) -> str:
        return f"{self.url}/feeds/v1/{feed}"

    @property
    def inbox(self) -> str:
        return f"{self.url}/feeds/v1/inbox"

    def start(self) -> Instance:
        self.thread.start()
        wait_for_port(self.port, timeout_s=60)
        return self

    def stop(self) -> None:
        if not self.thread.is_alive() and self.server.should_exit:
            return  # stopped already
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.services.scanner.close()
        if self.services.database is not None:
            self.services.database.dispose()

    def validate(self, media: bytes) -> httpx.Response:
        return httpx.post(
            f"{self.url}/pictrs/validate",
            content=media,
            headers={"Content-Type": "image/jpeg"},
            timeout=30,
        )

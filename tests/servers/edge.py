"""The whole API edge on loopback: a Lemmy double, Warden, and nginx with the shipped snippet.

`Edge` starts all three and stops them in reverse order; tests and the
benchmark share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.servers.lemmy_double import LemmyDouble
from tests.servers.nginx import Nginx, free_port, lemmy_edge_config
from tests.servers.uvicorn_thread import ServedApp
from warden.config import Settings, load_settings
from warden.media.pipeline import Scanner
from warden.services import (
    Services,
    build_access_gate,
    build_identity,
    build_services,
    decode_limits,
)
from warden.web.app import create_app


def edge_settings(workdir: Path, lemmy_url: str, rules_file: Path, **rules: Any) -> Settings:
    return load_settings(
        None,
        data_dir=workdir / "data",
        lemmy={"url": lemmy_url, "api": "auto", "identity_ttl_s": 30},
        rules={"file": rules_file, "reload_interval_s": 0, **rules},
    )


def edge_services(settings: Settings) -> Services:
    """Warden's services without the classifier (the edge never scans)."""
    scanner = Scanner(
        limits=decode_limits(settings),
        policy=settings.policy.label_policy(),
        classifier=None,
    )
    return build_services(
        settings,
        scanner=scanner,
        access=build_access_gate(settings),
        identity=build_identity(settings),
    )


@dataclass
class Edge:
    lemmy: LemmyDouble
    services: Services
    warden: ServedApp
    nginx: Nginx
    rules_file: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx.ports[0]}"

    @classmethod
    def start(
        cls, workdir: Path, api: str, rules: str, *, static: bool = False, workers: int = 1
    ) -> Edge:
        lemmy = LemmyDouble(api)
        lemmy.start()
        rules_file = workdir / "rules.toml"
        rules_file.write_text(rules)
        services = edge_services(edge_settings(workdir, lemmy.url, rules_file))
        warden = ServedApp(create_app(services.settings, services), on_stop=services.aclose)
        warden.start()
        port = free_port()
        static_port = free_port() if static else None
        body = lemmy_edge_config(
            port=port, lemmy_url=lemmy.url, warden_port=warden.port, static_port=static_port
        )
        nginx = Nginx(workdir / "nginx", body, [port], workers=workers)
        try:
            nginx.start()
        except Exception:
            warden.stop()
            lemmy.stop()
            raise
        return cls(lemmy, services, warden, nginx, rules_file)

    def stop(self) -> None:
        self.nginx.stop()
        self.warden.stop()
        self.lemmy.stop()

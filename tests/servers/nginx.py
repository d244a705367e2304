"""A real nginx (Debian's package) started from a generated config on loopback.

`lemmy_edge_config` builds the config Warden is tested behind: Lemmy's
server block with the shipped deploy/nginx/warden.conf included verbatim,
the shipped route map, and the shipped upstream file pointed at the test's
Warden. tests/deploy/ runs the same snippets inside lemmy-ansible's own
templates.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SNIPPETS = REPO / "deploy" / "nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise RuntimeError("nginx is not installed (scripts/system-deps.sh installs it)")
    return found


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class Nginx:
    """nginx in the foreground under `workdir`, with `http_body` as its http block."""

    def __init__(self, workdir: Path, http_body: str, ports: list[int], workers: int = 1) -> None:
        self.workdir = workdir
        self.ports = ports
        workdir.mkdir(parents=True, exist_ok=True)
        temps = "\n".join(
            f"  {name}_temp_path {workdir / name};"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(
            f"worker_processes {workers};\ndaemon off;\npid {workdir / 'nginx.pid'};\n"
            f"error_log {workdir / 'error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            f"http {{\n  access_log off;\n{temps}\n{http_body}\n}}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def from_config(cls, workdir: Path, config: str, ports: list[int]) -> Nginx:
        """nginx running `config`, a whole nginx.conf (e.g. lemmy-ansible's
        nginx_internal.conf), with only the pid file and error log added: files it
        includes by relative path are looked up beside it, in `workdir`."""
        nginx = cls(workdir, "", ports)
        (workdir / "logs").mkdir(exist_ok=True)  # the default access_log, relative to -p
        nginx.conf.write_text(
            f"daemon off;\npid {workdir / 'nginx.pid'};\n"
            f"error_log {workdir / 'error.log'} warn;\n{config}"
        )
        return nginx

    def start(self) -> None:
        binary = nginx_binary()
        check = subprocess.run(
            [binary, "-t", "-q", "-p", str(self.workdir), "-c", str(self.conf)],
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused the config: {check.stderr}")
        self.process = subprocess.Popen(
            [binary, "-p", str(self.workdir), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for port in self.ports:
            wait_for_port(port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stderr is not None:
                self.process.stderr.close()
            self.process = None

    def errors(self) -> str:
        log = self.workdir / "error.log"
        return log.read_text() if log.exists() else ""


def lemmy_edge_config(
    *, port: int, lemmy_url: str, warden_port: int, static_port: int | None = None
) -> str:
    """Lemmy's server block guarded by the shipped snippet (verbatim).

    With `static_port`, a second server answers `return 200` on that port and
    `/api/v3/post` plus `/plain/api/v3/post` (no auth_request) proxy to it,
    for the overhead benchmark.
    """
    upstream = (
        (SNIPPETS / "warden-upstream.conf")
        .read_text()
        .replace("127.0.0.1:8790", f"127.0.0.1:{warden_port}")
    )
    upstream = f"include {SNIPPETS / 'warden-routes.conf'};\n{upstream}"
    bench = ""
    if static_port is not None:
        bench = f"""
    upstream static_upstream {{ server 127.0.0.1:{static_port}; keepalive 32; }}
    server {{ listen 127.0.0.1:{static_port}; location / {{ return 200 'static'; }} }}"""
        routes = """
        location = /api/v3/post { proxy_pass http://static_upstream; proxy_http_version 1.1; proxy_set_header Connection ""; }
        location = /plain/api/v3/post { auth_request off; proxy_pass http://static_upstream; proxy_http_version 1.1; proxy_set_header Connection ""; }"""
    else:
        routes = ""
    return f"""
  {upstream}
  {bench}
  server {{
    listen 127.0.0.1:{port};
    include {SNIPPETS / "warden.conf"};
    {routes}
    location / {{
      proxy_pass {lemmy_url};
      proxy_set_header Host $host;
    }}
  }}
"""


#: POSTs that must never depend on Warden: federation inboxes (LemmyNet/lemmy 0.19.3
#: crates/apub/src/http/routes.rs:56-61, 1.0.0-beta.1 crates/apub/apub/src/http/routes.rs:79-81;
#: /site_inbox was the site inbox before 0.19, migrations/2023-11-07-135409_inbox_unique/
#: up.sql:8-17 and down.sql:13), login
#: (0.19.3 src/api_routes_http.rs:297; 1.0.0-beta.1 crates/api/routes/src/lib.rs:346),
#: votes (0.19.3 src/api_routes_http.rs:210, :235; 1.0.0-beta.1 lib.rs:291, :315)
#: and the rest of the API (an edit, a follow, a report)
FREE_POSTS = [
    "/inbox",
    "/site_inbox",
    "/c/main/inbox",
    "/u/someone/inbox",
    "/api/v3/user/login",
    "/api/v4/account/auth/login",
    "/api/v3/post/like",
    "/api/v4/post/like",
    "/api/v3/comment/like",
    "/api/v4/comment/like",
    "/api/v3/community/follow",
    "/api/v3/post/report",
    "/api/v3/user/register",
]

"""lemmy-ansible's own configs, rendered and patched as docs/deploy.md says, on loopback.

The templates in tests/fixtures/lemmy-ansible/<tag>/ are rendered with Jinja2
the way the playbook's `ansible.builtin.template` task renders them
(LemmyNet/lemmy-ansible 1.5.18 lemmy.yml:263-281; Ansible's template module
trims block lines, `trim_blocks` true), then deploy/lemmy-ansible/apply.py
patches them exactly as an admin runs it. Only then, and only here, Docker's
service names and the public ports become loopback addresses so real nginx can
run the result: `lemmy:8536`, `lemmy-ui:1234` and the proxy-facing port go to
recording servers, `warden:8790` (and the host path's 127.0.0.1:8790) to the
test's Warden, TLS to a throwaway certificate. Every replaced string must be in
the rendered file, so a lemmy-ansible release that changes them fails loudly.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from tests.servers.nginx import Nginx, free_port

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "lemmy-ansible"
APPLY = REPO / "deploy" / "lemmy-ansible" / "apply.py"
DOMAIN = "lemmy.test"

#: lemmy-ansible release -> template variables that make it render a config nginx
#: accepts (1.5.18 needs `anubis` on: issue #300, see the fixtures' README)
RELEASES: dict[str, dict[str, Any]] = {"1.5.17": {}, "1.5.18": {"anubis": True}}


def render(tag: str, name: str, **variables: Any) -> str:
    """One of lemmy-ansible's templates at `tag`, rendered like the playbook does."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(FIXTURES / tag),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
    )
    values: dict[str, Any] = {
        "domain": DOMAIN,
        "lemmy_port": 32000,
        "nginx_internal_resolver": "127.0.0.1",
        "lemmy_docker_image": "dessalines/lemmy:0.19.20",
        "lemmy_docker_ui_image": "dessalines/lemmy-ui:0.19.20",
        "postgres_shm": "2g",
    }
    env.filters["bool"] = ansible_bool
    return env.get_template(name).render(values | variables)


def ansible_bool(value: Any) -> bool:
    """Ansible's `bool` filter, which the templates use (`anubis|bool`)."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("yes", "on", "1", "true", "y", "t")


def apply(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """deploy/lemmy-ansible/apply.py, run as an admin runs it."""
    return subprocess.run(
        [sys.executable, str(APPLY), *map(str, args)], capture_output=True, text=True
    )


def replace(text: str, old: str, new: str) -> str:
    assert old in text, f"lemmy-ansible's config no longer has {old!r}"
    return text.replace(old, new)


def install_snippets(dest: Path, warden_port: int) -> Path:
    """/etc/warden/nginx as docs/deploy.md fills it, Warden's address made loopback."""
    dest.mkdir(parents=True, exist_ok=True)
    sources = [*sorted((REPO / "deploy" / "nginx").glob("*.conf"))]
    sources.append(REPO / "deploy" / "lemmy-ansible" / "warden-proxy.conf")
    for source in sources:
        text = source.read_text()
        text = text.replace("warden:8790", f"127.0.0.1:{warden_port}")
        text = text.replace("127.0.0.1:8790", f"127.0.0.1:{warden_port}")
        (dest / source.name).write_text(text)
    return dest


def self_signed(workdir: Path) -> tuple[Path, Path]:
    cert, key = workdir / "fullchain.pem", workdir / "privkey.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", f"/CN={DOMAIN}", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@dataclass
class Deployment:
    """One patched lemmy-ansible nginx, running."""

    nginx: Nginx
    url: str  # where clients reach it
    config: Path  # the patched file apply.py wrote
    scratch: Path | None = None  # removed on stop

    def stop(self) -> None:
        self.nginx.stop()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def proxy_container(
    workdir: Path, tag: str, *, lemmy_port: int, ui_port: int, warden_port: int
) -> Deployment:
    """The `proxy` container's nginx: nginx_internal.conf through `apply.py proxy`,
    served the way the compose override mounts it."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "nginx_internal.conf"
    source.write_text(render(tag, "nginx_internal.conf", **RELEASES[tag]))
    shutil.copy(FIXTURES / tag / "proxy_params", workdir / "proxy_params")
    done = apply("proxy", source)
    assert done.returncode == 0, done.stderr
    patched = workdir / "nginx_internal.warden.conf"
    snippets = install_snippets(workdir / "etc-warden-nginx", warden_port)
    port = free_port()
    text = patched.read_text()
    text = replace(text, "worker_processes auto;", "worker_processes 1;")
    text = replace(text, "listen 1236;", f"listen 127.0.0.1:{free_port()};")
    text = replace(text, "listen 8536;", f"listen 127.0.0.1:{port};")
    text = replace(text, "lemmy-ui:1234", f"127.0.0.1:{ui_port}")
    text = replace(text, "lemmy:8536", f"127.0.0.1:{lemmy_port}")
    if "anubis:8924" in text:
        text = text.replace("anubis:8924", f"127.0.0.1:{ui_port}")
    text = replace(text, "/etc/warden/nginx", str(snippets))
    nginx = Nginx.from_config(workdir / "run", text, [port])
    shutil.copy(workdir / "proxy_params", workdir / "run" / "proxy_params")
    nginx.start()
    return Deployment(nginx, f"http://127.0.0.1:{port}", patched)


def host_nginx(workdir: Path, tag: str, *, upstream_port: int, warden_port: int) -> Deployment:
    """nginx on the host: the site from templates/nginx.conf through `apply.py host`,
    with /etc/nginx/conf.d/warden.conf at http level."""
    workdir.mkdir(parents=True, exist_ok=True)
    site = workdir / f"{DOMAIN}.conf"
    site.write_text(render(tag, "nginx.conf", lemmy_port=upstream_port))
    done = apply("host", site)
    assert done.returncode == 0, done.stderr
    snippets = install_snippets(workdir / "etc-warden-nginx", warden_port)
    conf_d = (REPO / "deploy" / "nginx" / "conf.d-warden.conf").read_text()
    cert, key = self_signed(workdir)
    port = free_port()
    text = site.read_text()
    # the playbook makes it, owned by nginx's workers (www-data): lemmy.yml:240-241;
    # here nginx's workers run as nobody and cannot enter pytest's private tmp folder
    cache = Path(tempfile.mkdtemp(prefix="warden-nginx-cache-"))
    (cache / DOMAIN).mkdir(mode=0o777)
    cache.chmod(0o755)
    (cache / DOMAIN).chmod(0o777)
    text = replace(text, "/var/cache/lemmy/", f"{cache}/")
    text = replace(text, "    listen 80;", f"    listen 127.0.0.1:{free_port()};")
    text = replace(text, "    listen [::]:80;\n", "")
    text = replace(text, "listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;")
    text = replace(text, "    listen [::]:443 ssl http2;\n", "")
    text = replace(text, f"/etc/letsencrypt/live/{DOMAIN}/fullchain.pem", str(cert))
    text = replace(text, f"/etc/letsencrypt/live/{DOMAIN}/privkey.pem", str(key))
    text = replace(text, "/var/log/nginx/access.log", str(workdir / "access.log"))
    text = text.replace("/etc/warden/nginx", str(snippets))
    conf_d = replace(conf_d, "/etc/warden/nginx", str(snippets))
    nginx = Nginx(workdir / "run", f"{conf_d}\n{text}", [port])
    try:
        nginx.start()
    except Exception:
        shutil.rmtree(cache, ignore_errors=True)
        raise
    return Deployment(nginx, f"https://127.0.0.1:{port}", site, cache)

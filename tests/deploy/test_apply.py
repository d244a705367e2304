"""deploy/lemmy-ansible/ on lemmy-ansible's own templates, without running nginx:
the route map, apply.py (idempotent, refuses what nginx would refuse), the
Compose override and Warden's settings for it (issue 11, item 14).
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest
import yaml

from tests.deploy.lemmy_ansible import FIXTURES, RELEASES, REPO, ansible_bool, apply, render
from warden.adapters.lemmy import routes

TAGS = sorted(RELEASES)


def test_route_map_asks_exactly_about_what_warden_maps() -> None:
    """warden-routes.conf and routes.py name the same POSTs, each anchored on both ends."""
    text = (REPO / "deploy" / "nginx" / "warden-routes.conf").read_text()
    patterns = re.findall(r'^\s*"(~[^"]*)"\s+(\w+);', text, re.MULTILINE)
    assert patterns and all(verdict == "ask" for _, verdict in patterns)
    paths = set()
    for pattern, _ in patterns:
        found = re.fullmatch(r"~\^POST:(/[a-z0-9_/]+)/\?\$", pattern)
        assert found, f"not a tightly anchored POST path: {pattern}"
        paths.add(found.group(1))
    assert paths == set(routes._POST)
    assert re.search(r"^\s*default\s+pass;", text, re.MULTILINE)


@pytest.mark.parametrize("tag", TAGS)
def test_apply_twice_is_apply_once(tmp_path: Path, tag: str) -> None:
    source = tmp_path / "nginx_internal.conf"
    source.write_text(render(tag, "nginx_internal.conf", **RELEASES[tag]))
    out = tmp_path / "nginx_internal.warden.conf"
    assert apply("proxy", source).returncode == 0
    once = out.read_text()
    assert apply("proxy", source).returncode == 0
    assert out.read_text() == once
    # and when pointed at its own output by mistake, it still adds its lines once
    again = tmp_path / "again.conf"
    assert apply("proxy", out, "--out", again).returncode == 0
    assert again.read_text().split("\n", 1)[1] == once.split("\n", 1)[1]
    assert once.count("include /etc/warden/nginx/warden.conf;") == 1
    assert once.count("include /etc/warden/nginx/warden-routes.conf;") == 1
    assert apply("check", out, "--source", source).returncode == 0
    source.write_text(source.read_text() + "\n# a later playbook run changed it\n")
    stale = apply("check", out, "--source", source)
    assert stale.returncode == 1 and "older than its source" in stale.stdout

    site = tmp_path / "site.conf"
    site.write_text(render(tag, "nginx.conf"))
    assert apply("host", site).returncode == 0
    once = site.read_text()
    assert apply("host", site).returncode == 0
    assert site.read_text() == once
    assert once.count("include /etc/warden/nginx/warden.conf;") == 1
    # the line sits in the 443 server block, not in the port-80 redirect
    tls_block = once.split("listen 443", 1)[0].rsplit("server {", 1)[1]
    assert "include /etc/warden/nginx/warden.conf;" in tls_block


@pytest.mark.parametrize("tag", TAGS)
def test_apply_patches_the_templates_in_a_checkout(tmp_path: Path, tag: str) -> None:
    """Patching lemmy-ansible's templates themselves keeps Warden through every
    playbook run; the result must still render to what patching the output gives."""
    for name, mode in (("nginx.conf", "host"), ("nginx_internal.conf", "proxy")):
        template = tmp_path / tag / name
        template.parent.mkdir(exist_ok=True)
        template.write_text((FIXTURES / tag / name).read_text())
        assert apply(mode, template, "--out", template).returncode == 0
        text = template.read_text()
        assert text.count("include /etc/warden/nginx/warden.conf;") == 1
        env = jinja2.Environment(trim_blocks=True)
        env.filters["bool"] = ansible_bool
        rendered = env.from_string(text)
        assert "include /etc/warden/nginx/warden.conf;" in rendered.render(
            domain="lemmy.test", lemmy_port=1, nginx_internal_resolver="127.0.0.11", anubis=True
        )


def test_broken_1_5_18_rendering_is_refused_by_name(tmp_path: Path) -> None:
    """lemmy-ansible 1.5.18 without anubis drops the server block's closing brace
    (issue #300): apply.py says so and writes nothing."""
    source = tmp_path / "nginx_internal.conf"
    source.write_text(render("1.5.18", "nginx_internal.conf"))
    done = apply("proxy", source)
    assert done.returncode == 2
    assert "issue #300" in done.stderr and "closing `}`" in done.stderr
    assert not (tmp_path / "nginx_internal.warden.conf").exists()


def test_override_adds_warden_beside_lemmy_and_pictrs() -> None:
    """The compose override: a `warden` service, the proxy's config swapped by mount
    target, pict-rs's hook pointed at Warden by service name."""
    base = yaml.safe_load(render("1.5.18", "docker-compose.yml", anubis=True))
    override = yaml.safe_load(
        (REPO / "deploy/lemmy-ansible/docker-compose.override.yml").read_text()
    )
    warden = override["services"]["warden"]
    assert warden["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert (REPO / warden["build"]["dockerfile"]).exists()
    assert "depends_on" not in warden  # nothing waits for Warden
    assert warden["ports"] == ["127.0.0.1:8790:8790"]
    proxy_base = {v.split(":")[1] for v in base["services"]["proxy"]["volumes"]}
    proxy_over = {
        v.split(":")[1]: v.split(":")[0] for v in override["services"]["proxy"]["volumes"]
    }
    assert "/etc/nginx/nginx.conf" in proxy_base  # replaced, same target
    assert proxy_over["/etc/nginx/nginx.conf"] == "./nginx_internal.warden.conf"
    assert proxy_over["/etc/warden/nginx"] == "./warden/nginx"
    assert "depends_on" not in override["services"]["proxy"]
    env = override["services"]["pictrs"]["environment"]
    assert "PICTRS__MEDIA__EXTERNAL_VALIDATION=http://warden:8790/pictrs/validate" in env
    assert set(override["services"]) - set(base["services"]) == {"warden"}
    # path B's override: the same, without the proxy part
    host_path = yaml.safe_load(
        (REPO / "deploy/lemmy-ansible/host-nginx/docker-compose.override.yml").read_text()
    )
    assert host_path["services"] == {k: v for k, v in override["services"].items() if k != "proxy"}


def test_shipped_warden_settings_load_and_reach_the_stack_by_name() -> None:
    """deploy/lemmy-ansible/warden.toml is valid Warden configuration for that project."""
    from warden.config import load_settings

    settings = load_settings(REPO / "deploy" / "lemmy-ansible" / "warden.toml")
    assert settings.server.host == "0.0.0.0" and settings.server.port == 8790
    assert settings.lemmy.url == "http://lemmy:8536"
    assert settings.pictrs.url == "http://pictrs:8080"
    assert settings.server.proxy_allow_from and settings.server.pictrs_allow_from
    assert str(settings.rules.file) == "/etc/warden/rules.toml"
    override = (REPO / "deploy/lemmy-ansible/docker-compose.override.yml").read_text()
    assert "./warden/warden.toml:/etc/warden/warden.toml" in override
    assert "./warden/rules.toml:/etc/warden/rules.toml" in override


def test_shipped_settings_listen_only_with_the_evidence_key_from_warden_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside its container Warden listens on 0.0.0.0, where it refuses a generated
    evidence key; docs/deploy.md step 2 writes WARDEN_EVIDENCE__KEY into
    warden/warden.env, which the override reads as an optional env_file (a missing
    file stops only Warden: compose-go e70e961 types/project.go:821-828)."""
    import yaml

    from warden.config import load_settings
    from warden.services.exposure import listening_problems
    from warden.store.quarantine import generate_key

    toml = REPO / "deploy" / "lemmy-ansible" / "warden.toml"
    monkeypatch.delenv("WARDEN_EVIDENCE__KEY", raising=False)
    without = listening_problems(load_settings(toml), "0.0.0.0")
    assert len(without) == 1 and "WARDEN_EVIDENCE__KEY" in without[0]
    monkeypatch.setenv("WARDEN_EVIDENCE__KEY", generate_key())
    assert listening_problems(load_settings(toml), "0.0.0.0") == []
    for path in ("docker-compose.override.yml", "host-nginx/docker-compose.override.yml"):
        warden = yaml.safe_load((REPO / "deploy/lemmy-ansible" / path).read_text())["services"][
            "warden"
        ]
        assert warden["env_file"] == [{"path": "./warden/warden.env", "required": False}]
    assert "WARDEN_EVIDENCE__KEY=" in (REPO / "docs" / "deploy.md").read_text()


def test_apply_refuses_a_half_removed_block(tmp_path: Path) -> None:
    """A `# BEGIN warden` without its `# END warden` (an admin's half edit) is not
    guessed at: apply.py names it and writes nothing."""
    site = tmp_path / "site.conf"
    site.write_text(render("1.5.17", "nginx.conf"))
    assert apply("host", site).returncode == 0
    damaged = site.read_text().replace("    # END warden\n", "")
    site.write_text(damaged)
    done = apply("host", site)
    assert done.returncode == 2 and "no `# END warden`" in done.stderr
    assert site.read_text() == damaged

#!/usr/bin/env python3
"""Put Warden's nginx snippets into lemmy-ansible's nginx configs; safe to run again.

lemmy-ansible renders its configs on every playbook run (LemmyNet/lemmy-ansible
1.5.18 lemmy.yml:263-281) and neither has an include folder, so Warden's lines
have to be put into the rendered file (or into the template in your
lemmy-ansible checkout). This script does that and nothing else, the same way
every time: the lines it adds sit between `# BEGIN warden` and `# END warden`
markers, which it removes before adding them again, so running it twice gives
the same file as running it once.

    apply.py proxy nginx_internal.conf [--out nginx_internal.warden.conf]
        lemmy-ansible's `proxy` container (templates/nginx_internal.conf). Writes a
        copy, by default nginx_internal.warden.conf beside it, which
        deploy/lemmy-ansible/docker-compose.override.yml mounts in place of the
        rendered file: a playbook run re-renders nginx_internal.conf but leaves the
        copy, so Warden stays in front of Lemmy until you run this again.
    apply.py host /etc/nginx/sites-available/DOMAIN.conf [--out FILE]
        nginx on the host (templates/nginx.conf, its `listen 443` server block),
        in place unless --out is given. Works on the template in your lemmy-ansible
        checkout too (the lines it adds contain no Jinja).
    apply.py check FILE [--source nginx_internal.conf]
        exit status 0 when FILE has Warden's lines (and, with --source, was made
        from the source as it is now), 1 otherwise.

Only the Python 3 standard library is used (lemmy-ansible's hosts have python3:
lemmy.yml:70-79). docs/deploy.md walks through the whole installation.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

BEGIN = "# BEGIN warden (added by deploy/lemmy-ansible/apply.py: docs/deploy.md)"
END = "# END warden"
SNIPPETS = "/etc/warden/nginx"
SOURCE_MARK = "# warden: made from {name} sha256={digest}"

#: http-level lines for the proxy container (warden-proxy.conf: `warden:8790` by name)
PROXY_HTTP = (
    f"include {SNIPPETS}/warden-routes.conf;",
    f"include {SNIPPETS}/warden-proxy.conf;",
)
#: server-level lines, the same for both paths
SERVER = (f"include {SNIPPETS}/warden.conf;",)


class ApplyError(Exception):
    """The config does not look like lemmy-ansible's; nothing was written."""


def strip_marked(text: str) -> str:
    """`text` without any block this script added before (and without its source mark)."""
    out: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("# BEGIN warden"):
            inside = True
            continue
        if inside:
            if stripped == END:
                inside = False
            continue
        if stripped.startswith("# warden: made from "):
            continue
        out.append(line)
    if inside:
        raise ApplyError(f"a `# BEGIN warden` line has no `{END}`: fix the file by hand first")
    return "".join(out)


def _block(lines: tuple[str, ...], indent: str) -> list[str]:
    return [f"{indent}{BEGIN}\n", *(f"{indent}{line}\n" for line in lines), f"{indent}{END}\n"]


def _server_opening(lines: list[str], listen: re.Pattern[str]) -> int:
    """Index of the `server {` line whose block holds the first `listen` line matching."""
    for index, line in enumerate(lines):
        if listen.match(line):
            for back in range(index, -1, -1):
                if re.match(r"^\s*server\s*\{\s*(#.*)?$", lines[back]):
                    return back
            break
    raise ApplyError(f"no server block with a line like `{listen.pattern}`")


def _indent_after(lines: list[str], index: int) -> str:
    for line in lines[index + 1 :]:
        if line.strip():
            return line[: len(line) - len(line.lstrip())]
    return "    "


def _check_balanced(text: str, name: str) -> None:
    """Refuse a config whose braces do not pair up: nginx would refuse it too.

    lemmy-ansible 1.5.18 renders nginx_internal.conf without the server block's
    closing brace unless `anubis` is on (templates/nginx_internal.conf:89-95;
    LemmyNet/lemmy-ansible issue #300, fixed by pull request #301)."""
    depth = 0
    for raw in text.splitlines():
        line = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", "", raw)  # Jinja, in templates
        line = re.sub(r"'[^']*'|\"[^\"]*\"", "", line).split("#", 1)[0]
        depth += line.count("{") - line.count("}")
        if depth < 0:
            break
    if depth != 0:
        raise ApplyError(
            f"{name}: its braces do not pair up, so nginx would refuse it as it is. "
            "lemmy-ansible 1.5.18 without `anubis` renders nginx_internal.conf without "
            "the server block's closing `}` (LemmyNet/lemmy-ansible issue #300): add it "
            "(or update lemmy-ansible) and run this again"
        )


def patch_proxy(text: str, name: str = "nginx_internal.conf") -> str:
    """lemmy-ansible's proxy-container config with Warden's lines in it."""
    _check_balanced(text, name)
    digest = hashlib.sha256(text.encode()).hexdigest()
    lines = strip_marked(text).splitlines(keepends=True)
    server = _server_opening(lines, re.compile(r"^\s*listen\s+8536\s*;"))
    lines[server + 1 : server + 1] = _block(SERVER, _indent_after(lines, server))
    for index, line in enumerate(lines):
        if re.match(r"^\s*http\s*\{\s*(#.*)?$", line):
            lines[index + 1 : index + 1] = _block(PROXY_HTTP, _indent_after(lines, index))
            break
    else:
        raise ApplyError("no `http {` line: this is not lemmy-ansible's nginx_internal.conf")
    return SOURCE_MARK.format(name=name, digest=digest) + "\n" + "".join(lines)


def patch_host(text: str, name: str = "nginx.conf") -> str:
    """lemmy-ansible's host nginx site with Warden's line in its 443 server block."""
    _check_balanced(text, name)
    lines = strip_marked(text).splitlines(keepends=True)
    server = _server_opening(lines, re.compile(r"^\s*listen\s+(\S+:)?443\b"))
    lines[server + 1 : server + 1] = _block(SERVER, _indent_after(lines, server))
    return "".join(lines)


def is_current(patched: str, source: str | None) -> bool:
    """Whether `patched` holds Warden's lines (made from `source` as it is now, if given)."""
    if "# BEGIN warden" not in patched:
        return False
    if source is None:
        return True
    digest = hashlib.sha256(source.encode()).hexdigest()
    return f"sha256={digest}" in patched.splitlines()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    proxy = sub.add_parser("proxy", help="the proxy container's nginx_internal.conf")
    proxy.add_argument("source", type=Path)
    proxy.add_argument("--out", type=Path)
    host = sub.add_parser("host", help="the host nginx site (its 443 server block)")
    host.add_argument("site", type=Path)
    host.add_argument("--out", type=Path)
    check = sub.add_parser("check", help="exit 0 when FILE has Warden's lines")
    check.add_argument("file", type=Path)
    check.add_argument("--source", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            source = args.source.read_text() if args.source else None
            current = is_current(args.file.read_text(), source)
            print(
                f"{args.file}: {'has' if current else 'lacks (or is older than its source)'} "
                "Warden's lines"
            )
            return 0 if current else 1
        if args.command == "proxy":
            out = args.out or args.source.with_name("nginx_internal.warden.conf")
            out.write_text(patch_proxy(args.source.read_text(), args.source.name))
        else:
            out = args.out or args.site
            out.write_text(patch_host(args.site.read_text(), args.site.name))
    except (ApplyError, OSError) as exc:
        print(f"apply.py: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

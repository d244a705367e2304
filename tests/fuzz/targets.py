"""The fuzz targets: one function per harness, bytes in, silent unless a contract breaks.

Each target calls one of Warden's parsers the way the service calls it, checks
the contract that parser documents, and returns what happened in one word
(the refusal code, `accept` or `ok`) for the regression replays: the media decoder refuses with a
`MediaError` subclass and nothing else, the credential and route readers never
raise, the rules parser raises only `RuleFileError`, the hash-list reader only
`HashFileError`. An exception outside the contract propagates (libFuzzer
records the input as a crash); a result that breaks a stated property raises
`ContractBroken`. Targets import Warden lazily so that the harness can
instrument the imports first.
"""

from __future__ import annotations

import io
import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tests.fuzz.inputs import decode_headers, decode_request_line, selector


class ContractBroken(AssertionError):
    """A parser returned something its contract rules out."""


def decoder(data: bytes) -> str:
    """`decode(data, DecodeLimits())`: frames within the limits, or a MediaError.

    A refusal that only came from a failed allocation (`MemoryError`, under the
    replay's address-space limit) reads `memory_error`: the limits should have
    refused the file before the decoder asked for the memory.
    """
    from warden.errors import MediaError
    from warden.media.decode import DecodeLimits, decode

    limits = DecodeLimits()
    try:
        media = decode(data, limits)
    except MediaError as exc:
        if not exc.code or not exc.message:
            raise ContractBroken(f"refusal without a code or a message: {exc!r}") from exc
        return "memory_error" if isinstance(exc.__cause__, MemoryError) else exc.code
    info = media.info
    if not 1 <= len(media.frames) <= limits.sample_frames:
        raise ContractBroken(f"{len(media.frames)} frames sampled (limit {limits.sample_frames})")
    if (
        info.width * info.height > limits.max_pixels
        or max(info.width, info.height) > limits.max_side
    ):
        raise ContractBroken(f"accepted {info.width}x{info.height}, beyond the limits")
    for frame in media.frames:
        if frame.image.mode != "RGB":
            raise ContractBroken(f"frame {frame.index} is {frame.image.mode}, not RGB")
    return "accept"


def sniff(data: bytes) -> str:
    """What runs on the bytes before any decoder: format sniffing, the polyglot walk
    (JPEG segments, PNG chunks with their text inflated, GIF blocks, RIFF, BMP) and
    the structural preflight (JPEG scan count, WebP canvas). Only MediaError refusals;
    the format of a file of 64 bytes or more depends on its first 64 alone."""
    from warden.errors import MediaError, PolyglotMedia, UnsupportedFormat
    from warden.media import decode as module

    try:
        fmt = module.sniff(data)
    except UnsupportedFormat as exc:
        return exc.code
    if module.FORMATS.get(fmt.name) is not fmt:
        raise ContractBroken(f"sniff returned an unknown format {fmt!r}")
    if len(data) >= 64 and module.sniff(data[:64] + b"\x00" * 64) is not fmt:
        raise ContractBroken("the format depends on more than the first 64 bytes")
    try:
        module.check_polyglot(data, fmt)
    except PolyglotMedia as exc:
        return exc.code
    preflight = getattr(module, "preflight", None)  # the decoder's byte-level checks
    if preflight is not None:
        try:
            preflight(data, module.DecodeLimits())
        except MediaError as exc:
            return exc.code
    return fmt.name


def credentials(data: bytes) -> str:
    """`read_credentials` over raw header pairs (as bytes or latin-1 text): never raises."""
    from warden.adapters.lemmy.credentials import CredentialKind, printable_token
    from warden.adapters.lemmy.credentials import read_credentials as read

    pairs = decode_headers(data)
    texts = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in pairs]
    first = read(pairs)
    if read(texts) != first:
        raise ContractBroken("bytes and their latin-1 text read differently")
    _ = first.code, first.message
    if first.kind is CredentialKind.TOKEN:
        if first.token is None or first.token != first.v4 or not printable_token(first.token):
            raise ContractBroken(f"TOKEN verdict without a usable token: {first!r}")
    elif first.token is not None:
        raise ContractBroken(f"{first.kind} verdict carries a token: {first!r}")
    auth = [v for k, v in pairs if k == b"authorization"]
    plain = len(auth) == 1 and not any(k == b"cookie" for k, _ in pairs)
    lone = auth[0][7:].decode("latin-1") if plain and auth[0].startswith(b"Bearer ") else ""
    if printable_token(lone) and (first.kind is not CredentialKind.TOKEN or first.token != lone):
        raise ContractBroken(f"a lone Bearer header was not read as its token: {first!r}")
    return first.kind.value


def routes(data: bytes) -> str:
    """`activity_for(method, uri)`: never raises; the path it judges is canonical."""
    from warden.adapters.lemmy.routes import activity_for, normalise_path

    method, uri = decode_request_line(data)
    activity = activity_for(method, uri)
    path = normalise_path(uri)
    segments = path.split("/")[1:]
    if not path.startswith("/") or "//" in path or (path != "/" and path.endswith("/")):
        raise ContractBroken(f"{uri!r} normalised to a non-canonical {path!r}")
    if any(s in (".", "..") for s in segments):
        raise ContractBroken(f"{uri!r} normalised to {path!r}, with dot segments left")
    if activity_for(method.swapcase(), uri) is not activity:
        raise ContractBroken(f"the method's case changes the activity for {method!r}")
    if uri.startswith("/") and activity_for(method, "/." + uri) is not activity:
        raise ContractBroken(f"a leading /. changes the activity for {uri!r}")
    return "none" if activity is None else activity.value


def lemmy_parse_ip(addr: str) -> str | None:
    """Lemmy's `parse_ip`, as a model to compare with: the address Lemmy charges a value to.

    LemmyNet/lemmy 0.19.3 crates/utils/src/rate_limit/mod.rs:211-221: a value
    ending in `]` is `IpAddr::from_str` of everything after its first character,
    else `IpAddr::from_str`, else `SocketAddr::from_str` (Rust std: IPv4 with
    ASCII digits, IPv6 without a zone; `ip:port` or `[ipv6]:port`, `%` and a
    decimal zone allowed inside the brackets, the port a decimal u16).
    """

    def ip(text: str) -> str | None:
        if not text.isascii() or "%" in text:
            return None
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            return None

    def decimal(text: str, bound: int) -> bool:
        # Rust's read_number(10, None, true): leading zeros allowed and never overflow, so
        # `1.2.3.4:000...080` is port 80 however many zeros (and int() refuses > 4,300 digits)
        digits = text.lstrip("0") or "0"
        return text.isascii() and text.isdigit() and len(digits) <= 10 and int(digits) <= bound

    if addr.endswith("]"):
        return ip(addr[:-1][1:]) if addr[:-1] else None
    found = ip(addr)
    if found is not None:
        return found
    host, colon, port = addr.rpartition(":")
    if not colon or not decimal(port, 65535):
        return None
    if host.startswith("[") and host.endswith("]"):
        inner, percent, zone = host[1:-1].partition("%")
        v6 = ip(inner)
        ok = v6 is not None and ":" in v6 and (not percent or decimal(zone, 2**32 - 1))
        return v6 if ok else None
    v4 = ip(host)
    return v4 if v4 is not None and ":" not in v4 else None


def lemmy_client_ip(forwarded: list[str], xff: str | None, real: str | None = None) -> str | None:
    """The address Lemmy charges a request to, from the headers, as a model: actix-web's
    `realip_remote_addr` (web-v4.4.0 actix-web/src/info.rs:74-111: headers that are
    not visible ASCII are skipped, the first `for=` wins, else the first value of the
    first X-Forwarded-For, both trimmed as Rust trims) and then `lemmy_parse_ip`.
    Lemmy sits behind nginx, which sends it `X-Forwarded-For $proxy_add_x_forwarded_for`
    (lemmy-ansible files/proxy_params:3): a request without one reaches Lemmy with
    `$remote_addr`, which Warden gets as X-Real-IP (deploy/nginx/warden.conf:60).
    None: Lemmy falls back to the peer or to 127.0.0.1."""
    from warden.adapters.lemmy.credentials import RUST_WHITESPACE as ws

    def visible(value: str) -> bool:
        return all(32 <= ord(c) < 127 or c == "\t" for c in value)

    for header in filter(visible, forwarded):
        for pair in (p for part in header.split(";") for p in part.split(",")):
            name, eq, value = pair.strip(ws).partition("=")
            if eq and name.strip(ws).lower() == "for":
                return lemmy_parse_ip(value.strip(ws).strip('"'))
    xff = real if xff is None else xff
    if xff is not None and visible(xff):
        return lemmy_parse_ip(xff.split(",", 1)[0].strip(ws))
    return None


def forwarding(data: bytes) -> str:
    """`client_address` over Forwarded/X-Forwarded-For/X-Real-IP: None or an IP address,
    and the address Lemmy itself charges the request to wherever Lemmy reads one."""
    from warden.adapters.lemmy.forwarding import client_address

    pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in decode_headers(data)]
    forwarded = [v for k, v in pairs if k == "forwarded"]
    xff = next((v for k, v in pairs if k == "x-forwarded-for"), None)
    real = next((v for k, v in pairs if k == "x-real-ip"), None)
    found = client_address(forwarded, xff, real)
    if found is not None:
        try:
            ipaddress.ip_address(found)
        except ValueError as exc:
            raise ContractBroken(f"client_address returned {found!r}, not an IP") from exc
    lemmys = lemmy_client_ip(forwarded, xff, real)
    if (found is not None or lemmys is not None) and found != lemmys and (forwarded or xff):
        raise ContractBroken(
            f"Warden forwards {found!r} where Lemmy charges {lemmys!r} "
            f"(Forwarded {forwarded!r}, X-Forwarded-For {xff!r})"
        )
    return "none" if found is None else "address"


_NOW = datetime(2026, 11, 25, tzinfo=UTC)


def rulebook(data: bytes) -> str:
    """`parse_rulebook`: a rulebook every request can be judged against, or RuleFileError."""
    from warden.errors import RuleFileError
    from warden.membership.requirements import (
        Activity,
        ModeratedCommunity,
        UserFacts,
    )
    from warden.membership.rulebook import judge, lint_warnings, parse_rulebook

    try:
        book = parse_rulebook(data.decode("utf-8", "replace"), "fuzz.toml")
    except RuleFileError as exc:
        return exc.code
    lint_warnings(book)
    old = _NOW - timedelta(days=400)
    people = [
        UserFacts(1, "new", _NOW, 0, 0),
        UserFacts(2, "mod", old, 50, 5, moderates=(ModeratedCommunity(1, old),)),
        UserFacts(3, "admin", old, 0, 0, admin=True),
    ]
    for activity in Activity:
        for facts in people:
            verdict = judge(book, activity, facts, _NOW)
            for limit in verdict.limits:
                limit.describe()
    return "ok"


def hashlist(data: bytes) -> str:
    """`hash_exchange.read` over a csv or te file: lines whose hashes the index accepts,
    or HashFileError."""
    from warden.adapters.hash_exchange import FORMATS, read
    from warden.domain.banks import BankKind
    from warden.errors import HashFileError
    from warden.media.hashlist import hex_to_words

    choice, rest = selector(data, len(FORMATS) * 3)
    fmt = FORMATS[choice % len(FORMATS)]
    kind = (None, BankKind.PDQ, BankKind.SHA256)[choice // len(FORMATS)]
    # as `warden hashes import` reads a file: UTF-8 text, universal newlines
    stream = io.StringIO(rest.decode("utf-8", "replace"), newline=None)
    try:
        lines = list(read(stream, fmt, kind=kind))
    except HashFileError:
        return "bad_hash_file"
    for line in lines:
        if line.kind is BankKind.PDQ:
            hex_to_words([line.value])
        elif len(bytes.fromhex(line.value)) != 32:
            raise ContractBroken(f"sha256 line {line.line} is not 32 bytes: {line.value!r}")
    return "ok"


TARGETS: dict[str, Callable[[bytes], str]] = {
    "decoder": decoder,
    "sniff": sniff,
    "credentials": credentials,
    "routes": routes,
    "forwarding": forwarding,
    "rulebook": rulebook,
    "hashlist": hashlist,
}

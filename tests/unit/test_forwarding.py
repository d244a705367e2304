"""The client address Warden forwards: the one Lemmy's rate limiter reads, form by form.

Each case says what Lemmy 0.19.3 (actix-web 4.4.1) and 1.0.0-beta.1 (actix-web
4.13.0) charge the request to; None is "no address" (Lemmy: the peer, or 127.0.0.1
for a value it cannot parse). The fuzz model (tests/fuzz/targets.py) checks 0.19.3.
"""

from __future__ import annotations

import pytest

from warden.adapters.lemmy.forwarding import bare_address, client_address, parse_ip

V6 = "2001:db8::1"


@pytest.mark.parametrize(
    ("value", "lemmy_019", "lemmy_10"),
    [
        ("1.2.3.4", "1.2.3.4", "1.2.3.4"),
        ("1.2.3.4:8000", "1.2.3.4", "1.2.3.4"),
        ("1.2.3.4:65535", "1.2.3.4", "1.2.3.4"),
        ("1.2.3.4:0000000000000080", "1.2.3.4", "1.2.3.4"),  # read_number allows zeros
        ("1.2.3.4:" + "0" * 5000 + "1", "1.2.3.4", "1.2.3.4"),  # no int() of 5,001 digits
        ("1.2.3.4:65536", None, None),  # the port is a u16
        ("1.2.3.4:99999", None, None),
        ("1.2.3.4:²", None, None),  # str.isdigit() is not Rust's ASCII digit
        ("1.2.3.4:", None, None),
        ("01.2.3.4", None, None),  # no octal-looking octets, in Rust as in Python
        (V6, V6, V6),
        (f"[{V6}]:8000", V6, V6),
        (f"[{V6}%3]:8000", V6, V6),  # a decimal scope inside the brackets, dropped
        (f"[{V6}%eth0]:8000", None, None),
        (f"[{V6}%4294967296]:8000", None, None),  # the scope is a u32
        ("fe80::1%eth0", None, None),  # Python's ip_address takes a zone; Rust does not
        ("fe80::1%3", None, None),
        (f"[{V6}]", V6, None),  # 0.19.3 mod.rs:212-213 strips `]` and the first char
        ("x::1]", "::1", None),
        ("]", None, None),
        ("[::1]junk", None, None),
        ("[1.2.3.4]:80", None, None),  # SocketAddrV6 needs an IPv6 inside the brackets
        ("[1.2.3.4]", "1.2.3.4", None),
        ("::1:80", "::1:80", "::1:80"),  # IpAddr is tried first: an IPv6 address
        (" 1.2.3.4", None, None),  # parse_ip itself does not trim
        ("1.2.3.4\u00b2", None, None),
    ],
)
def test_parse_ip_is_lemmys(value: str, lemmy_019: str | None, lemmy_10: str | None) -> None:
    assert parse_ip(value) == lemmy_019
    assert parse_ip(value, lemmy_major=1) == lemmy_10


@pytest.mark.parametrize(
    ("forwarded", "xff", "real_ip", "expected"),
    [
        # http's HeaderValue::to_str refuses bytes outside visible ASCII and tab: actix
        # skips such a Forwarded header and takes nothing from such an X-Forwarded-For
        (['for="[2001:db8::1]:4711", for\xc0\xce\xc6\xc7.51.100.1'], None, None, None),
        (["for=\xe9", "for=192.0.2.9"], None, None, "192.0.2.9"),
        ([], "\x1c1.2.3.4", "10.0.0.1", None),  # Python's strip() would take \x1c away
        ([], "1.2.3.4:\xb2", None, None),
        ([], "\t1.2.3.4 \t, 10.0.0.1", None, "1.2.3.4"),  # Rust trims spaces and tabs
        ([], "[::1]junk", None, None),
        ([], "x::1]", None, "::1"),
        (['for = "1.2.3.4" ; proto=https'], "5.6.7.8", None, "1.2.3.4"),  # pair and name trimmed
        (['proto=https;FOR=" 1.2.3.4"'], None, None, None),  # unquote does not trim again
        (['for=""1.2.3.4""'], None, None, "1.2.3.4"),  # every quote is trimmed
        (["for=unknown, for=1.2.3.4"], None, None, None),  # the first for= wins
        (["proto=https"], None, "203.0.113.5", "203.0.113.5"),  # nginx's $remote_addr
        (["proto=https"], "", "203.0.113.5", None),
        # X-Real-IP stands for the `X-Forwarded-For: $remote_addr` nginx sends Lemmy, so it
        # is read as that header is (found by fuzzing, with Forwarded headers lacking for=)
        (["1%+ed:"], None, "[::],ed:1%+", "::"),
        ([], None, " 203.0.113.5 , 10.0.0.1", "203.0.113.5"),
        ([], None, "\x1c203.0.113.5", None),
    ],
)
def test_client_address_is_read_like_actix_then_lemmy_019(
    forwarded: list[str], xff: str | None, real_ip: str | None, expected: str | None
) -> None:
    assert client_address(forwarded, xff, real_ip) == expected


def test_actix_4_13_strips_the_port_and_brackets_from_for() -> None:
    """Lemmy 1.0.0-beta.1 locks actix-web 4.13.0, whose `for=` goes through
    `bare_address` (web-v4.13.0 actix-web/src/info.rs:24-37, :117)."""
    assert bare_address("[2001:db8::1]:4711") == V6
    assert bare_address("[[2001:db8::1]]") == V6
    assert bare_address("1.2.3.4:80") == "1.2.3.4"
    assert bare_address(V6) == "2001"
    one = {"lemmy_major": 1}
    assert client_address(['for="[2001:db8::1]:4711"'], None, None, **one) == V6
    assert client_address(['for="[1.2.3.4]:80"'], None, None, **one) == "1.2.3.4"
    assert client_address([f"for={V6}"], None, None, **one) is None  # "2001"
    assert client_address([f"for={V6}"], None, None) == V6  # 0.19.3 reads it whole
    assert client_address([], f"[{V6}]", None, **one) is None

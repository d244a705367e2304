"""Warden reads the Lemmy token exactly as Lemmy 0.19 and 1.0 do (issue 11, item 1).

Every vector states what the real Lemmy reads (derived by hand from the Rust
source cited in `tests/servers/lemmy_credentials.py`) and checks both Warden's
reading and the double's independent one against it, then Warden's verdict.
"""

from __future__ import annotations

import random

import pytest

from tests.servers.lemmy_credentials import lemmy_token
from warden.adapters.lemmy.credentials import CredentialKind, lemmy_reads, read_credentials

Headers = list[tuple[str, str | bytes]]

TOKEN = CredentialKind.TOKEN
NONE = CredentialKind.NONE
UNREADABLE = CredentialKind.UNREADABLE
AMBIGUOUS = CredentialKind.AMBIGUOUS

# (id, headers, what Lemmy 0.19 reads, what Lemmy 1.0 reads, Warden's verdict, judged token)
VECTORS: list[tuple[str, Headers, str | None, str | None, CredentialKind, str | None]] = [
    ("nothing", [], None, None, NONE, None),
    ("bearer", [("Authorization", "Bearer REAL")], "REAL", "REAL", TOKEN, "REAL"),
    ("cookie", [("Cookie", "jwt=REAL")], "REAL", "REAL", TOKEN, "REAL"),
    (
        "lemmy-ui: both, same",
        [("Authorization", "Bearer REAL"), ("Cookie", "jwt=REAL")],
        "REAL",
        "REAL",
        TOKEN,
        "REAL",
    ),
    # the scheme is case-sensitive: Lemmy skips `bearer` and reads the cookie
    (
        "bearer junk + cookie",
        [("Authorization", "bearer junk"), ("Cookie", "jwt=REAL")],
        "REAL",
        "REAL",
        AMBIGUOUS,
        None,
    ),
    ("lowercase bearer alone", [("Authorization", "bearer REAL")], None, None, UNREADABLE, None),
    # the first jwt cookie wins, across one header ...
    ("two jwt cookies", [("Cookie", "jwt=REAL; jwt=junk")], "REAL", "REAL", AMBIGUOUS, None),
    # ... and across headers
    (
        "two Cookie headers",
        [("Cookie", "jwt=REAL"), ("Cookie", "jwt=junk")],
        "REAL",
        "REAL",
        AMBIGUOUS,
        None,
    ),
    # names and values are percent-decoded
    ("encoded name", [("Cookie", "j%77t=REAL")], "REAL", "REAL", TOKEN, "REAL"),
    ("encoded value", [("Cookie", "jwt=RE%41L")], "REAL", "REAL", TOKEN, "REAL"),
    ("quoted value", [("Cookie", 'jwt="REAL"')], "REAL", "REAL", TOKEN, "REAL"),
    ("spaces around", [("Cookie", "  jwt = REAL ;x=1")], "REAL", "REAL", TOKEN, "REAL"),
    ("encoded quotes stay", [("Cookie", "jwt=%22REAL%22")], '"REAL"', '"REAL"', TOKEN, '"REAL"'),
    ("name is case-sensitive", [("Cookie", "JWT=junk; jwt=REAL")], "REAL", "REAL", AMBIGUOUS, None),
    # an old account in one channel, a new one in the other
    (
        "Bearer old + cookie new",
        [("Authorization", "Bearer OLD"), ("Cookie", "jwt=NEW")],
        "OLD",
        "OLD",
        AMBIGUOUS,
        None,
    ),
    (
        "bearer old + cookie new",
        [("Authorization", "bearer OLD"), ("Cookie", "jwt=NEW")],
        "NEW",
        "NEW",
        AMBIGUOUS,
        None,
    ),
    (
        "two Authorization headers",
        [("Authorization", "Bearer NEW"), ("Authorization", "Bearer OLD")],
        "NEW",
        "NEW",
        AMBIGUOUS,
        None,
    ),
    # a cookie that does not parse: 0.19 (actix-web 4.4-4.11) drops every cookie,
    # 1.0 (actix-web 4.13) only that one
    ("piece without =", [("Cookie", "foo; jwt=REAL")], None, "REAL", TOKEN, "REAL"),
    ("nameless piece", [("Cookie", "=x; jwt=REAL")], None, "REAL", TOKEN, "REAL"),
    (
        "bad UTF-8 after decoding",
        [("Cookie", "x=%FF"), ("Cookie", "jwt=REAL")],
        None,
        "REAL",
        TOKEN,
        "REAL",
    ),
    ("bad jwt cookie first", [("Cookie", "jwt=%FF; jwt=REAL")], None, "REAL", AMBIGUOUS, None),
    # a header that is not UTF-8 loses every cookie on both versions
    ("header not UTF-8", [("Cookie", b"x=\xff; jwt=REAL")], None, None, UNREADABLE, None),
    # Bearer parsing: first header, >= 8 bytes, visible ASCII, split at the first space
    (
        "Bearer too short + cookie",
        [("Authorization", "Bearer"), ("Cookie", "jwt=REAL")],
        "REAL",
        "REAL",
        TOKEN,
        "REAL",
    ),
    (
        "Bearer tab + cookie",
        [("Authorization", "Bearer\tREAL"), ("Cookie", "jwt=REAL")],
        "REAL",
        "REAL",
        TOKEN,
        "REAL",
    ),
    ("Bearer two spaces", [("Authorization", "Bearer  REAL")], " REAL", " REAL", UNREADABLE, None),
    (
        "Bearer token with space",
        [("Authorization", "Bearer RE AL")],
        "RE AL",
        "RE AL",
        UNREADABLE,
        None,
    ),
    (
        "Bearer non-ASCII + cookie",
        [("Authorization", b"Bearer R\xc3\xa9AL"), ("Cookie", "jwt=REAL")],
        "REAL",
        "REAL",
        AMBIGUOUS,
        None,
    ),
    (
        "Basic + cookie",
        [("Authorization", "Basic Zm9vOmJhcg=="), ("Cookie", "jwt=REAL")],
        "REAL",
        "REAL",
        TOKEN,
        "REAL",
    ),
    (
        "logged-out cookie + Bearer",
        [("Authorization", "Bearer REAL"), ("Cookie", "jwt=")],
        "REAL",
        "REAL",
        TOKEN,
        "REAL",
    ),
    ("empty jwt cookie", [("Cookie", "jwt=")], "", "", UNREADABLE, None),
    ("header name case", [("authorization", "Bearer REAL")], "REAL", "REAL", TOKEN, "REAL"),
    # Rust's trim is Unicode White_Space: NBSP goes, U+001F stays
    ("NBSP trimmed", [("Cookie", "jwt=\u00a0REAL\u00a0".encode())], "REAL", "REAL", TOKEN, "REAL"),
    ("U+001F kept", [("Cookie", b"jwt=REAL\x1f")], "REAL\x1f", "REAL\x1f", UNREADABLE, None),
    ("bare jwt", [("Cookie", "jwt")], None, None, NONE, None),
    ("bad percent kept", [("Cookie", "jwt=RE%4GL")], "RE%4GL", "RE%4GL", TOKEN, "RE%4GL"),
]


@pytest.mark.parametrize(
    ("headers", "v3", "v4", "kind", "token"),
    [pytest.param(*vector[1:], id=vector[0]) for vector in VECTORS],
)
def test_reads_the_token_lemmy_reads(
    headers: Headers, v3: str | None, v4: str | None, kind: CredentialKind, token: str | None
) -> None:
    assert lemmy_reads(headers) == (v3, v4)
    assert (lemmy_token(headers, "v3"), lemmy_token(headers, "v4")) == (v3, v4)
    credentials = read_credentials(headers)
    assert (credentials.kind, credentials.token) == (kind, token)
    assert (credentials.v3, credentials.v4) == (v3, v4)


def test_refusals_name_the_problem() -> None:
    ambiguous = read_credentials([("Cookie", "jwt=A"), ("Cookie", "jwt=B")])
    assert ambiguous.code == "ambiguous_login"
    assert "more than one login" in ambiguous.message
    assert "2 jwt cookies" in ambiguous.message
    unreadable = read_credentials([("Authorization", "bearer A")])
    assert unreadable.code == "incorrect_login"  # what Lemmy answers itself
    assert "an Authorization header" in unreadable.message


def test_double_takes_lemmy_versions() -> None:
    headers = [("Cookie", "foo; jwt=REAL")]
    assert lemmy_token(headers, "0.19.3") is None
    assert lemmy_token(headers, "1.0.0-beta.1") == "REAL"
    with pytest.raises(ValueError):
        lemmy_token(headers, "0.18")


# -- fuzzing: Warden and the double agree, and Warden never judges another account --

NAMES = ["jwt", "JWT", "j%77t", "jw%74", " jwt", '"jwt"', "", "x", "jwt\u00a0"]
VALUES = ["A", "B", "A%41", "%FF", '"A"', "A B", "", "%", "B\u00a0", "\u00e9"]
GARBAGE = ["foo", "=x", "x=%C3", ";", "  ", "jwt"]
AUTHS: list[str | bytes] = [
    "Bearer A",
    "Bearer B",
    "bearer A",
    "Bearer  A",
    "Bearer\tB",
    "BearerA",
    "Basic Zm9v",
    "Bearer",
    b"Bearer A\xff",
    "Bearer A B",
]


def _random_headers(rng: random.Random) -> Headers:
    headers: Headers = []
    for _ in range(rng.randint(0, 4)):
        if rng.random() < 0.35:
            headers.append(("Authorization", rng.choice(AUTHS)))
            continue
        pieces = []
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.2:
                pieces.append(rng.choice(GARBAGE))
            else:
                pieces.append(f"{rng.choice(NAMES)}={rng.choice(VALUES)}")
        text = rng.choice([";", "; ", " ;"]).join(pieces)
        # now and then a header that is not UTF-8
        headers.append(("Cookie", text.encode() + b"\xff" if rng.random() < 0.05 else text))
    rng.shuffle(headers)
    return headers


def test_fuzzed_headers_agree_with_the_double_and_stay_safe() -> None:
    rng = random.Random(11)
    kinds = set()
    for _ in range(5000):
        headers = _random_headers(rng)
        v3, v4 = lemmy_token(headers, "v3"), lemmy_token(headers, "v4")
        assert lemmy_reads(headers) == (v3, v4), headers
        credentials = read_credentials(headers)
        kinds.add(credentials.kind)
        if credentials.kind is CredentialKind.TOKEN:
            # the account Warden judges is the one 1.0 acts as; 0.19 acts as it or refuses
            assert credentials.token == v4, headers
            assert v3 in (v4, None), headers
        elif credentials.kind is CredentialKind.NONE:
            assert v3 is None and v4 is None, headers
    assert kinds == set(CredentialKind)

"""How a harness reads structured input (header lists, a method and a URI) from bytes.

The format is plain text so that seeds are readable and the fuzzer's byte
mutations stay meaningful: one header per line, `name: value`, the value
taken as raw bytes (nothing is unescaped). `encode_headers` writes the same
format for the seed corpora, so every seed decodes back to what it was made from.
"""

from __future__ import annotations


def decode_headers(data: bytes) -> list[tuple[bytes, bytes]]:
    """`name: value` lines -> raw header pairs, names lower-cased as ASGI servers give them."""
    pairs: list[tuple[bytes, bytes]] = []
    for line in data.split(b"\n"):
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        if value.startswith(b" "):
            value = value[1:]
        pairs.append((name.strip().lower(), value))
    return pairs


def encode_headers(pairs: list[tuple[str, str]]) -> bytes:
    """Header pairs -> the line format `decode_headers` reads (values as latin-1 bytes)."""
    return b"\n".join(f"{n}: {v}".encode("latin-1") for n, v in pairs)


def decode_request_line(data: bytes) -> tuple[str, str]:
    """`METHOD URI` -> (method, uri) as Starlette hands nginx's headers over (latin-1)."""
    method, _, uri = data.decode("latin-1").partition(" ")
    return method, uri


def selector(data: bytes, choices: int) -> tuple[int, bytes]:
    """The first byte picks one of `choices` variants; the rest is the input proper."""
    if not data:
        return 0, b""
    return data[0] % choices, data[1:]

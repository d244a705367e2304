"""Seed corpora for the fuzz targets, generated here rather than downloaded.

Images are tiny synthetic pictures (gradients and noise) saved by Pillow, and
its plugins, in every format the decoder accepts, in the variants that take
different code paths (progressive JPEG, EXIF rotation, palette transparency,
16-bit greyscale, animations, multi-page and tiled TIFF), plus a few files
that are not images or are two things at once. The parsers get the header
sets, request lines, rules files and hash lists the README and the adapters'
docstrings describe. No photograph of a person is ever part of a corpus.

    python -m tests.fuzz.seeds OUTDIR      # OUTDIR/<target>/<seed name>
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from tests.fuzz.inputs import encode_headers

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def _picture(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A gradient with a little structure: enough for every encoder to do real work."""
    width, height = size
    image = Image.linear_gradient("L").resize(size)
    rgb = Image.merge(
        "RGB", (image, image.rotate(90), image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    )
    for x in range(0, width, 3):
        rgb.putpixel((x, (x * 7) % height), (255, 0, 0))
    return rgb.convert(mode)


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _frames(count: int, size: tuple[int, int]) -> list[Image.Image]:
    return [_picture(size).rotate(30 * i) for i in range(count)]


def image_seeds() -> dict[str, bytes]:
    """Small valid files of each format and of the variants that decode differently."""
    import pillow_heif
    import pillow_jxl  # noqa: F401 - registers the JPEG XL writer

    pillow_heif.register_heif_opener()
    small = _picture((16, 12))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    frames = _frames(3, (12, 10))
    seeds = {
        "baseline.jpg": _save(small, "JPEG", quality=80),
        "progressive.jpg": _save(small, "JPEG", progressive=True, quality=70),
        "grey.jpg": _save(small.convert("L"), "JPEG"),
        "cmyk.jpg": _save(small.convert("CMYK"), "JPEG"),
        "exif-rotated.jpg": _save(small, "JPEG", exif=exif),
        "rgb.png": _save(small, "PNG"),
        "rgba.png": _save(small.convert("RGBA"), "PNG"),
        "palette-transparent.png": _save(small.convert("P"), "PNG", transparency=0),
        "grey16.png": _save(small.convert("I;16"), "PNG"),
        "animated.png": _save(frames[0], "PNG", save_all=True, append_images=frames[1:]),
        "still.gif": _save(small.convert("P"), "GIF"),
        "animated.gif": _save(frames[0], "GIF", save_all=True, append_images=frames[1:], loop=0),
        "lossy.webp": _save(small, "WEBP", quality=50),
        "lossless.webp": _save(small.convert("RGBA"), "WEBP", lossless=True),
        "animated.webp": _save(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
        "rgb.bmp": _save(small, "BMP"),
        "palette.bmp": _save(small.convert("P"), "BMP"),
        "raw.tiff": _save(small, "TIFF"),
        "deflate.tiff": _save(small, "TIFF", compression="tiff_adobe_deflate"),
        "pages.tiff": _save(frames[0], "TIFF", save_all=True, append_images=frames[1:]),
        "tiled.tiff": _save(_picture((32, 32)), "TIFF", tile=(16, 16)),
        "rgb.avif": _save(small, "AVIF", quality=50),
        "rgb.heic": _save(small, "HEIF", quality=50),
        "rgb.jxl": _save(small, "JXL"),
    }
    # not images, or two things at once: the sniffer's and polyglot check's paths
    seeds["doc.pdf"] = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    seeds["drawing.svg"] = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>'
    seeds["page-in.jpg"] = seeds["baseline.jpg"] + b"<script>alert(1)</script>"
    seeds["zip-in.png"] = seeds["rgb.png"] + b"PK\x05\x06" + b"\x00" * 18
    seeds["video.mp4"] = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    return seeds


def header_seeds() -> dict[str, bytes]:
    """Credential header sets: the ones clients send, and the ones that must be refused."""
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"
    other = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIyIn0.b3Ro"
    sets: dict[str, list[tuple[str, str]]] = {
        "none": [("host", "lemmy.example")],
        "bearer": [("authorization", f"Bearer {token}")],
        "cookie": [("cookie", f"theme=dark; jwt={token}")],
        "lemmy-ui": [("authorization", f"Bearer {token}"), ("cookie", f"jwt={token}")],
        "disagree": [("authorization", f"Bearer {token}"), ("cookie", f"jwt={other}")],
        "two-cookies": [("cookie", f"jwt={token}"), ("cookie", f"jwt={other}")],
        "lower-bearer": [("authorization", f"bearer {token}"), ("cookie", f"jwt={other}")],
        "quoted": [("cookie", f'jwt="{token}"')],
        "percent": [("cookie", "%6Awt=" + token.replace(".", "%2E"))],
        "bad-piece": [("cookie", f"=x; jwt={token}")],
        "logout": [("cookie", "jwt=")],
        "not-utf8": [("cookie", f"a=\xff; jwt={token}")],
        "basic": [("authorization", "Basic dXNlcjpwYXNz")],
    }
    return {name: encode_headers(pairs) for name, pairs in sets.items()}


def route_seeds() -> dict[str, bytes]:
    lines = {
        "upload-v3": "POST /pictrs/image",
        "upload-v4": "POST /api/v4/image?x=1",
        "post": "POST /api/v3/post",
        "invite": "POST /api/v4/account/invite/",
        "dotted": "POST //api/v3/../v3/./community",
        "encoded": "POST /api/v3/%70ost#frag",
        "read": "GET /api/v3/post/list",
        "lower": "post /api/v4/comment",
    }
    return {name: line.encode("latin-1") for name, line in lines.items()}


def forwarding_seeds() -> dict[str, bytes]:
    sets: dict[str, list[tuple[str, str]]] = {
        "forwarded": [("forwarded", "for=203.0.113.7;proto=https")],
        "forwarded-v6": [("forwarded", 'for="[2001:db8::1]:4711", for=198.51.100.1')],
        "xff": [("x-forwarded-for", "203.0.113.7, 10.0.0.1")],
        "xff-port": [("x-forwarded-for", "203.0.113.7:51000")],
        "real-ip": [("x-real-ip", "192.0.2.4")],
        "all": [
            ("x-real-ip", "192.0.2.4"),
            ("x-forwarded-for", "unknown"),
            ("forwarded", "by=1.1.1.1;for=_hidden"),
        ],
    }
    return {name: encode_headers(pairs) for name, pairs in sets.items()}


def rulebook_seeds() -> dict[str, bytes]:
    readme = """uploads = "on"            # on | off | admins | moderators — the uploads switch

[rules.upload_image]
all = ["account_age >= 7d", "comments >= 5"]
rate_limit = { count = 3, per = "1d", unless = "account_age >= 30d" }

[rules.create_community]
any = ['role in ["admin", "moderator"]', { all = ["account_age >= 30d", "posts >= 1"] }]
"""
    books = {
        "readme.toml": readme,
        "min-age.toml": 'moderator_community_min_age = "30d"\n' + readme,
        "moderators.toml": 'uploads = "moderators"\n[rules.send_private_message]\n'
        'all = ["role != user", "posts < 10"]\nmessage = "Ask a moderator."\n'
        'rate_limit = [{ count = 5, per = "1h" }, { count = 20, per = "1w" }]\n',
        "off.toml": 'uploads = "off"\n',
        "bad.toml": '[rules.upload_image]\nall = ["karma > 3"]\n',
    }
    return {name: text.encode("utf-8") for name, text in books.items()}


def hashlist_seeds() -> dict[str, bytes]:
    # the first byte selects the format and the kind of bare lines (see targets.hashlist)
    csv_text = f"hash,kind,bank,note\n{PDQ},pdq,ncmec,wave 1\n{SHA},sha256,,\n\n"
    te_text = f"# signals\npdq {PDQ}\nphoto_sha256 {SHA}\nvideo_md5 abc\n{PDQ}\n"
    return {
        "list.csv": b"\x00" + csv_text.encode(),
        "signals.te": b"\x01" + te_text.encode(),
        "bare-pdq.te": b"\x03" + f"{PDQ}\n{PDQ.upper()}\r\n".encode(),
        "bare-sha.te": b"\x05" + f"{SHA}\n".encode(),
        "quoted.csv": b"\x02" + f'hash,kind\n"{PDQ}",PDQ\n'.encode(),
    }


SEEDS: dict[str, Callable[[], dict[str, bytes]]] = {
    "decoder": image_seeds,
    "sniff": image_seeds,
    "credentials": header_seeds,
    "routes": route_seeds,
    "forwarding": forwarding_seeds,
    "rulebook": rulebook_seeds,
    "hashlist": hashlist_seeds,
}


def write(target: str, folder: Path) -> int:
    """Write `target`'s seeds into `folder` (kept if already there); how many were new."""
    folder.mkdir(parents=True, exist_ok=True)
    new = 0
    for name, data in SEEDS[target]().items():
        path = folder / f"seed-{name}"
        if not path.exists():
            path.write_bytes(data)
            new += 1
    return new


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.fuzz.seeds OUTDIR", file=sys.stderr)
        return 2
    for target in SEEDS:
        count = write(target, Path(argv[0]) / target)
        print(f"{target}: {count} new seeds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

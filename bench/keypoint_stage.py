"""What the keypoint stage adds to a scan (issue 16), at 0, 10, 100 and 1,000 held pictures.

Held pictures: distinct views cut from the photographs of tests/photos.py (a
40-70 % window at a random place, some mirrored), described as a flag stores
them. Queries: every wallpaper of tests/photos.py (nobody flagged them:
the common case, where the stage must say no quickly) and edits of some held
pictures (a crop, a 3 degree turn: the stage must say yes). Each query is one
`Scanner.prepare` (decode, hash, keypoint stage) with the stage and without it,
interleaved A B A B in the same run, CPU time of this process
(`time.process_time`, OpenCV's threads included). Also the parts of the stage
and the multi-index candidates against the brute-force vote they replace.

    .venv/bin/python bench/keypoint_stage.py [--repeat 3] [--sizes 0,10,100,1000]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import photos

from warden.config import load_settings
from warden.domain.banks import Bank, BankKind
from warden.media import keypoints
from warden.media.decode import decode
from warden.media.decoder_pool import InProcessDecoder
from warden.media.keypoint_stage import HeldPicture, KeypointStage
from warden.media.pipeline import ScanContext, Scanner
from warden.services.scanning import decode_limits

SETTINGS = load_settings(None)


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()


def views(count: int, seed: int = 16) -> list[bytes]:
    """`count` distinct pictures: windows of the photographs, as JPEG files."""
    rng = random.Random(seed)
    sources = [photos.picture(n, 2048) for n in photos.PHOTOGRAPHS]
    out = []
    for i in range(count):
        image = sources[i % len(sources)]
        w, h = image.size
        share = rng.uniform(0.4, 0.7)
        cw, ch = int(w * share), int(h * share)
        x, y = rng.randrange(0, w - cw), rng.randrange(0, h - ch)
        view = image.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.3:
            view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out.append(jpeg(view.resize((min(cw, 1024), round(ch * min(cw, 1024) / cw)))))
    return out


def described(data: bytes) -> keypoints.Features:
    media = decode(data, decode_limits(SETTINGS))
    return keypoints.features(media.frames[0].image)


def scanner(stage: KeypointStage | None) -> Scanner:
    return Scanner(
        limits=decode_limits(SETTINGS),
        policy=SETTINGS.policy.label_policy(),
        classifier=None,
        decoder=InProcessDecoder(),
        keypoints=stage,
    )


def cpu_ms(run: Callable[[], object]) -> float:
    t0 = time.process_time()
    run()
    return (time.process_time() - t0) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="0,10,100,1000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    load = os.getloadavg()[0]
    print(f"load average {load:.2f} at the start; CPU ms per scan of this process")
    files = views(max(sizes))
    held = [described(d) for d in files]
    unrelated = [jpeg(im) for im in photos.wallpapers().values()]
    bank = Bank(1, "local-confirmed", BankKind.PDQ)
    plain = scanner(None)

    print(
        f"{'held':>5} {'without':>8} {'with':>8} {'added':>7} {'ratio':>6} {'copies':>7}"
        f" {'orb':>5} {'cands':>6} {'verify':>7} {'brute':>7} {'matched':>8} {'load':>5}"
    )
    for size in sizes:
        stage = KeypointStage()
        stage.set_banks([bank])
        stage.replace(HeldPicture(i, 1, "", held[i]) for i in range(size))
        scan = scanner(stage)
        copies = [jpeg(Image.open(io.BytesIO(files[i])).rotate(3)) for i in range(0, size, 10)]
        queries = unrelated + copies
        for data in queries[:3]:  # warm both (first calls load decoders and kernels)
            plain.prepare(data, ScanContext())
            scan.prepare(data, ScanContext())
        without: dict[bool, list[float]] = {False: [], True: []}  # by "is a copy"
        with_stage: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeat):
            for n, data in enumerate(queries):  # A B A B: the same file without and with
                copy = n >= len(unrelated)
                without[copy].append(cpu_ms(lambda d=data: plain.prepare(d, ScanContext())))
                with_stage[copy].append(cpu_ms(lambda d=data, s=scan: s.prepare(d, ScanContext())))
        matched = sum(scan.prepare(d, ScanContext()).verdict is not None for d in copies)
        wrong = sum(scan.prepare(d, ScanContext()).verdict is not None for d in unrelated)
        feats = [described(d) for d in unrelated[:10]]
        index = stage.index
        orb = statistics.mean(
            cpu_ms(
                lambda d=d: keypoints.features(decode(d, decode_limits(SETTINGS)).frames[0].image)
            )
            - cpu_ms(lambda d=d: decode(d, decode_limits(SETTINGS)))
            for d in unrelated[:10]
        )
        cands = statistics.mean(cpu_ms(lambda f=f, ix=index: ix.candidates(f)) for f in feats)
        verify = (
            statistics.mean(
                cpu_ms(lambda f=f, ix=index: ix._verify(ix._tables, f, ix.candidates(f)))
                for f in feats
            )
            - cands
        )
        brute = (
            statistics.mean(cpu_ms(lambda f=f, ix=index: ix.brute_candidates(f)) for f in feats[:3])
            if size
            else 0.0
        )
        a, b = statistics.mean(without[False]), statistics.mean(with_stage[False])
        copies_added = (
            statistics.mean(with_stage[True]) - statistics.mean(without[True]) if copies else 0.0
        )
        print(
            f"{size:>5} {a:>8.1f} {b:>8.1f} {b - a:>7.1f} {b / a:>6.2f} {copies_added:>7.1f}"
            f" {orb if size else 0:>5.1f} {cands if size else 0:>6.1f} {verify if size else 0:>7.1f}"
            f" {brute:>7.1f} {matched:>4}/{len(copies):<3} {os.getloadavg()[0]:>5.2f}"
        )
        if wrong:
            print(f"      !! {wrong} unrelated pictures matched")
    print(
        "without/with/added/ratio: pictures nobody flagged (the common case); copies: CPU"
        " the stage adds to a 3-degree turned copy of a held picture (found and verified);"
        " orb/cands/verify: the stage's parts; brute: the brute-force vote the candidates"
        " replace"
    )


if __name__ == "__main__":
    main()

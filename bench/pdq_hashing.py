"""PDQ hashing cost per image: `pdqhash` (ThreatExchange's C++ through Cython) against
Warden's compiled hasher (media/pdq_hasher.py), same images, same run.

Both hash the same RGB arrays; the hashes are checked equal bit for bit before
anything is timed. Timed as CPU milliseconds per image, in interleaved rounds
(each round times every contender once; each keeps its best round), so load
from other work on the machine costs them alike. Also Warden's robust extra
hashes of a frame (media/variants.py `robust_frames`, query side), which the
scanner computes whenever a hash bank matcher exists.

    .venv/bin/python bench/pdq_hashing.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pdqhash
from PIL import Image
from skimage import data

from warden.media import hashing, pdq_hasher, variants
from warden.media.decode import Frame

NAMES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "camera")
SIZES = ((320, 240), (640, 480), (800, 600), (1024, 683), (1024, 1024))


def cpu_ms(fn: Callable[[np.ndarray], object], items: list[np.ndarray]) -> float:
    """CPU ms per item for one pass over `items`."""
    t0 = time.process_time()
    for item in items:
        fn(item)
    return (time.process_time() - t0) * 1000 / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    photos = [Image.fromarray(getattr(data, n)()).convert("RGB") for n in NAMES]
    pdq_hasher.warm_up()
    contenders: dict[str, Callable[[np.ndarray], object]] = {
        "pdqhash.compute": pdqhash.compute,
        "compiled compute": pdq_hasher.compute,
        "pdqhash.compute_dihedral": pdqhash.compute_dihedral,
        "compiled compute_dihedral": pdq_hasher.compute_dihedral,
    }
    print(f"CPU ms per image, best of {args.rounds} interleaved rounds, {len(NAMES)} photos")
    print(
        f"{'size':>10} "
        + " ".join(f"{k:>26}" for k in contenders)
        + f" {'single x':>9} {'dihedral x':>10}"
    )
    for size in SIZES:
        items = [np.asarray(p.resize(size)) for p in photos]
        for item in items:  # bit for bit before any timing
            bits, quality = pdqhash.compute_dihedral(item)
            ours, our_quality = pdq_hasher.compute_dihedral(item)
            assert [hashing.bits_to_hex(b) for b in bits] == [o.hex() for o in ours]
            assert quality == our_quality
        best = dict.fromkeys(contenders, float("inf"))
        for _ in range(args.rounds):
            for name, fn in contenders.items():
                best[name] = min(best[name], cpu_ms(fn, items))
        single = best["pdqhash.compute"] / best["compiled compute"]
        dihedral = best["pdqhash.compute_dihedral"] / best["compiled compute_dihedral"]
        label = f"{size[0]}x{size[1]}"
        print(
            f"{label:>10} "
            + " ".join(f"{v:26.2f}" for v in best.values())
            + f" {single:8.1f}x {dihedral:9.1f}x"
        )

    frames = [[Frame(0, p.resize((640, 480)))] for p in photos]
    robust = float("inf")
    for _ in range(args.rounds):
        t0 = time.process_time()
        for frame in frames:
            variants.robust_frames(frame)
        robust = min(robust, (time.process_time() - t0) * 1000 / len(frames))
    print(f"\nrobust extra hashes (query side) of a 640x480 frame: {robust:.2f} CPU ms")


if __name__ == "__main__":
    main()

"""PDQ index: build time, memory and query latency at 1 M and 10 M hashes, vs NumPy brute force.

Random 256-bit hashes plus planted near-duplicates at distances 0..31 (must be
found) and decoys at 32..40 (must not). Recall is checked against brute force
(popcount over every row) for a sample of queries in the same run.

    .venv/bin/python bench/hash_match.py [--sizes 1000000 10000000] [--queries 400]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from warden.media.hashlist import PdqIndex, popcount_distance


def flip(rng: np.random.Generator, word: np.ndarray, bits: int) -> np.ndarray:
    out = word.copy()
    for b in rng.choice(256, bits, replace=False):
        out[b // 64] ^= np.uint64(1) << np.uint64(63 - b % 64)
    return out


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(n: int, queries: int, brute_queries: int, rng: np.random.Generator) -> None:
    before = rss_mb()
    words = rng.integers(0, np.iinfo(np.uint64).max, (n, 4), dtype=np.uint64, endpoint=True)
    t0 = time.perf_counter()
    index = PdqIndex.from_words(words, np.arange(n))
    build = time.perf_counter() - t0
    t = index._snap.tables
    array_mb = (
        t.words.nbytes + t.ids.nbytes + t.order.nbytes + t.low.nbytes + t.offsets.nbytes
    ) / 2**20
    index.query_words(words[0])  # compile (or load the cached) search kernel before timing
    hit_lat, miss_lat, brute_lat = [], [], []
    checks: list[tuple[np.ndarray, list[int]]] = []
    found = expected = 0
    for k in range(queries):
        hit = k % 2 == 0
        target = int(rng.integers(0, n))
        distance = int(rng.integers(0, 32)) if hit else int(rng.integers(32, 41))
        query = (
            flip(rng, words[target], distance)
            if k % 4 != 3
            else rng.integers(0, 2**63, 4, dtype=np.uint64)
        )
        t1 = time.perf_counter()
        hits = index.query_words(query)
        (hit_lat if hit else miss_lat).append(time.perf_counter() - t1)
        if hit:
            expected += 1
            found += any(h.entry == target for h in hits)
        if k < brute_queries:
            checks.append((query, sorted(h.entry for h in hits)))
    # brute force after the timed queries: its 300 MB sweep would evict the index
    # from the caches and make the next timed query look slow
    for query, got in checks:
        t2 = time.perf_counter()
        brute = np.nonzero(popcount_distance(words, query) <= 31)[0]
        brute_lat.append(time.perf_counter() - t2)
        assert got == sorted(brute.tolist()), "index and brute force disagree"
    ms = lambda xs, p: np.percentile(xs, p) * 1000  # noqa: E731
    print(
        f"\n{n:,} hashes: build {build:.1f} s, index (hashes + tables) {array_mb:,.0f} MiB, peak RSS during build +{rss_mb() - before:,.0f} MiB"
    )
    print(
        f"  query, planted hit (d<=31): p50 {ms(hit_lat, 50):.3f} ms  p99 {ms(hit_lat, 99):.3f} ms"
    )
    print(
        f"  query, miss / decoy (d>=32): p50 {ms(miss_lat, 50):.3f} ms  p99 {ms(miss_lat, 99):.3f} ms"
    )
    print(
        f"  brute force (NumPy popcount): p50 {ms(brute_lat, 50):.1f} ms  -> speed-up x{np.median(brute_lat) / np.median(hit_lat + miss_lat):.0f}"
    )
    print(
        f"  recall of planted hits: {found}/{expected}; exact agreement with brute force on {len(brute_lat)} queries"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--brute", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    for n in args.sizes:
        run(n, args.queries, args.brute, rng)


if __name__ == "__main__":
    main()

"""The PDQ index's search kernel, compiled with numba (the layout: media/hashlist.py).

Kept apart from the index so that the compiled code and its cache are one small
module; `cache=True` stores the machine code beside it, so a start loads it
instead of compiling (warm_up in media/matcher.py does that before requests).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, inline="always")
def pop64(x: Any) -> Any:
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@numba.njit(cache=True, nogil=True)
def search_many(
    queries: Any,
    words: Any,
    order: Any,
    low: Any,
    offsets: Any,
    starts: Any,
    lengths: Any,
    masks: Any,
    weights: Any,
    budget: int,
    radius: int,
    byte_pop: Any,
    cand: Any,
    out_query: Any,
    out_rows: Any,
    out_dist: Any,
    sink: Any,
) -> int:
    """Fill out_query/out_rows/out_dist with (query number, row, distance) for every
    row within radius of each of the (Q, 4) queries; return the count.

    One call for all the hashes of a file (eight orientations per frame and the
    robust hashes): the per-call costs (buffers, the trip into compiled code)
    are paid once, not once per hash.

    Per query and table, first gather candidate positions: buckets with bits of
    budget left are scanned (their low bytes are contiguous), buckets with none
    left are binary-searched for the query's low bits (a bucket is sorted by
    them). Then the candidates are verified in a separate tight loop whose loads
    do not depend on each other, so the CPU overlaps their cache misses. A row
    can be found through several tables; the caller removes duplicates.
    Returns -1 when a buffer is too small (the caller grows them, asks again).
    """
    n_masks = masks.shape[0]
    firsts = np.empty(n_masks, np.int64)
    lasts = np.empty(n_masks, np.int64)
    found = 0
    for k in range(queries.shape[0]):
        q = queries[k]
        for t in range(starts.shape[0]):
            start = starts[t]
            length = lengths[t]
            w = start // 64
            end = start % 64 + length
            if end <= 64:
                value = (q[w] >> np.uint64(64 - end)) & np.uint64((1 << length) - 1)
            else:
                hi = q[w] << np.uint64(end - 64)
                lo = q[w + 1] >> np.uint64(128 - end)
                value = (hi | lo) & np.uint64((1 << length) - 1)
            low_bits = length - 16
            q_top = np.int64(value >> np.uint64(low_bits))
            q_low = np.int64(value & np.uint64((1 << low_bits) - 1))
            # the buckets' bounds first, in a loop with no branch on what it loads: the
            # loads (scattered over the table, cache misses at any size) all overlap
            for m in range(n_masks):
                bucket = q_top ^ masks[m]
                firsts[m] = offsets[t, bucket]
                lasts[m] = offsets[t, bucket + 1]
            # then the first low byte of every bucket, likewise (a prefetch in effect)
            touch = np.int64(0)
            for m in range(n_masks):
                touch += np.int64(low[t, min(firsts[m], low.shape[1] - 1)])
            sink[0] += touch  # the loads' sum goes somewhere, so they are not dropped
            n_cand = 0
            for m in range(n_masks):
                left = budget - weights[m]
                first = firsts[m]
                last = lasts[m]
                if left == 0:
                    a, b = first, last
                    while a < b:
                        mid = (a + b) >> 1
                        if np.int64(low[t, mid]) < q_low:
                            a = mid + 1
                        else:
                            b = mid
                    while a < last and np.int64(low[t, a]) == q_low:
                        if n_cand == cand.shape[0]:
                            return -1
                        cand[n_cand] = a
                        n_cand += 1
                        a += 1
                else:
                    for j in range(first, last):
                        if byte_pop[np.int64(low[t, j]) ^ q_low] <= left:
                            if n_cand == cand.shape[0]:
                                return -1
                            cand[n_cand] = j
                            n_cand += 1
            for c in range(n_cand):
                row = np.int64(order[t, cand[c]])
                d = (
                    pop64(words[row, 0] ^ q[0])
                    + pop64(words[row, 1] ^ q[1])
                    + pop64(words[row, 2] ^ q[2])
                    + pop64(words[row, 3] ^ q[3])
                )
                if d <= radius:
                    if found == out_rows.shape[0]:
                        return -1
                    out_query[found] = k
                    out_rows[found] = row
                    out_dist[found] = d
                    found += 1
    return found


def find(
    queries: np.ndarray,
    words: np.ndarray,
    order: np.ndarray,
    low: np.ndarray,
    offsets: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    masks: np.ndarray,
    weights: np.ndarray,
    budget: int,
    radius: int,
    byte_pop: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query numbers, rows, distances) of every row within radius of each query, in
    one kernel call; duplicates (a row found through two tables) left in. Buffers
    start small (a scan finds nothing nearly always) and grow on a retry."""
    queries = np.ascontiguousarray(queries, dtype=np.uint64).reshape(-1, 4)
    size = 64
    cand = np.empty(1 << 12, dtype=np.int64)
    sink = np.zeros(1, dtype=np.int64)
    while True:
        out_query = np.empty(size, dtype=np.int64)
        out_rows = np.empty(size, dtype=np.int64)
        out_dist = np.empty(size, dtype=np.int64)
        found = search_many(
            queries,
            words,
            order,
            low,
            offsets,
            starts,
            lengths,
            masks,
            weights,
            budget,
            radius,
            byte_pop,
            cand,
            out_query,
            out_rows,
            out_dist,
            sink,
        )
        if found >= 0:
            return out_query[:found], out_rows[:found], out_dist[:found]
        size *= 16
        cand = np.empty(len(cand) * 16, dtype=np.int64)

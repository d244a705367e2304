"""Hash banks at scale (issue 16): index queries vs brute force, import rate, cold
`warden hashes match`, bank load at a `warden serve` start, memory.

1. Index: build time, memory and query latency of `PdqIndex` on random 256-bit
   hashes with planted near-duplicates at 0..31 bits (must be found) and decoys
   at 32..40 (must not), checked against brute force (popcount over every row)
   in the same run.
2. Import: a ThreatExchange-format list of N random PDQ hashes read by
   `hash_exchange.read` into `BankStore.add`, on SQLite and PostgreSQL (the
   issue's baseline: 1 M in 193 s through `warden hashes import`).
3. Start: a bank of N entries in SQLite; in a fresh process each, the bank
   load `warden serve` does before answering, (a) built from the table (what
   every start did before: the baseline) and (b) opened from the saved index,
   with peak RSS; then `warden hashes match <pdq>` as a whole process, cold
   (the saved index present), and its answer compared with brute force.

    .venv/bin/python bench/hash_match.py [--sizes 1000000 10000000] [--import-n 300000]
        [--start-sizes 1000000 3000000] [--no-postgres] [--skip-index]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from warden.adapters import hash_exchange
from warden.domain.banks import BankKind
from warden.media.hashlist import PdqIndex, load_kernel, popcount_distance, words_to_hex
from warden.store.banks import BankStore, NewEntry
from warden.store.database import Database

ROOT = Path(__file__).resolve().parent.parent


def flip(rng: np.random.Generator, word: np.ndarray, bits: int) -> np.ndarray:
    out = word.copy()
    for b in rng.choice(256, bits, replace=False):
        out[b // 64] ^= np.uint64(1) << np.uint64(63 - b % 64)
    return out


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_words(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, np.iinfo(np.uint64).max, (n, 4), dtype=np.uint64, endpoint=True)


def run_index(n: int, queries: int, brute_queries: int, rng: np.random.Generator) -> None:
    before = rss_mb()
    words = random_words(rng, n)
    t0 = time.perf_counter()
    index = PdqIndex.from_words(words, np.arange(n))
    build = time.perf_counter() - t0
    arrays = index.arrays() or {}
    array_mb = sum(a.nbytes for a in arrays.values()) / 2**20
    load_kernel()  # what `warden serve` does at start; NumPy is timed apart below
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
    numpy_lat = []
    for query, _ in checks:
        t3 = time.perf_counter()
        index.query_words(query, compiled=False)
        numpy_lat.append(time.perf_counter() - t3)
    # brute force after the timed queries: its sweep would evict the index from the caches
    for query, got in checks:
        t2 = time.perf_counter()
        brute = np.nonzero(popcount_distance(words, query) <= 31)[0]
        brute_lat.append(time.perf_counter() - t2)
        assert got == sorted(brute.tolist()), "index and brute force disagree"
    ms = lambda xs, p: np.percentile(xs, p) * 1000  # noqa: E731
    print(
        f"\n[index] {n:,} hashes: build {build:.1f} s, arrays {array_mb:,.0f} MiB, "
        f"peak RSS during build +{rss_mb() - before:,.0f} MiB"
    )
    print(
        f"  query, planted hit (d<=31): p50 {ms(hit_lat, 50):.3f} ms  p99 {ms(hit_lat, 99):.3f} ms"
    )
    print(
        f"  query, miss/decoy (d>=32): p50 {ms(miss_lat, 50):.3f} ms  p99 {ms(miss_lat, 99):.3f} ms"
    )
    speedup = np.median(brute_lat) / np.median(hit_lat + miss_lat)
    print(
        f"  brute force (NumPy popcount): p50 {ms(brute_lat, 50):.1f} ms -> speed-up x{speedup:.0f}"
    )
    print(f"  NumPy search (one-shot processes, no numba): p50 {ms(numpy_lat, 50):.2f} ms")
    print(
        f"  recall of planted hits {found}/{expected}; agrees with brute force on {len(brute_lat)}"
    )


def run_import(url: str, label: str, n: int, rng: np.random.Generator) -> None:
    db = Database(url)
    db.upgrade()
    store = BankStore(db)
    store.create_bank("bench", BankKind.PDQ)
    text = "".join(f"pdq {h}\n" for h in words_to_hex(random_words(rng, n)))
    t0 = time.perf_counter()  # from the file's text, as `warden hashes import --format te`
    lines = hash_exchange.read(io.StringIO(text), "te")
    result = store.add("bench", (NewEntry(ln.value, "bench.te", "bench") for ln in lines))
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    half = io.StringIO(text[: len(text) // 2])
    lines = hash_exchange.read(half, "te")
    again = store.add("bench", (NewEntry(ln.value, "bench.te", "bench") for ln in lines))
    second = time.perf_counter() - t1
    assert result.added == n and again.existing == n // 2, (result, again)
    print(
        f"\n[import, store level] {label}: {n:,} new entries in {first:.1f} s = "
        f"{n / first:,.0f} entries/s; re-import of {n // 2:,} present ones "
        f"{n // 2 / second:,.0f} entries/s (issue 16 baseline: 1 M in 193 s = 5,181/s)"
    )
    db.dispose()


def import_cli(src: Path, env: dict[str, str], hash_file: Path) -> tuple[float, float, str]:
    """`warden hashes banks create` then `warden hashes import` of `hash_file`, run
    from the tree at `src`, as processes; (wall s, CPU s of the import, its output)."""
    env = dict(env, PYTHONPATH=str(src))
    cmd = [sys.executable, "-c", "from warden.cli import main; main()", "hashes"]
    subprocess.run(
        [*cmd, "banks", "create", "bench", "--kind", "pdq"],
        env=env,
        check=True,
        capture_output=True,
        cwd=src.parent,
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(
        [*cmd, "import", "--format", "te", "--bank", "bench", str(hash_file)],
        env=env,
        capture_output=True,
        text=True,
        cwd=src.parent,
        check=False,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(done.stderr)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, done.stdout.strip()


def run_import_cli(
    n: int,
    baseline: Path | None,
    postgres_url: Callable[[str], str] | None,
    rng: np.random.Generator,
) -> None:
    """`warden hashes import` of an N-line ThreatExchange file as a whole process, on
    SQLite and PostgreSQL, this tree against `baseline` (a copy of the tree before,
    e.g. `git archive HEAD`), interleaved, each on a fresh database."""
    with tempfile.TemporaryDirectory(prefix="warden-bench-") as tmp:
        hash_file = Path(tmp) / "list.te"
        hash_file.write_text("".join(f"pdq {h}\n" for h in words_to_hex(random_words(rng, n))))
        trees = [("this tree", ROOT / "src")]
        if baseline is not None:
            trees.insert(0, ("baseline", baseline / "src"))
        backends = ["SQLite"] + (["PostgreSQL"] if postgres_url else [])
        print(f"\n[import, `warden hashes import --format te`, whole process] {n:,} lines")
        for backend in backends:
            for k, (label, src) in enumerate(trees):
                data = Path(tmp) / f"{backend}-{k}"
                data.mkdir(mode=0o700)
                env = dict(os.environ, WARDEN_DATA_DIR=str(data))
                if backend == "PostgreSQL" and postgres_url is not None:
                    env["WARDEN_DATABASE__URL"] = postgres_url(f"bench_cli_{k}")
                wall, cpu, out = import_cli(src, env, hash_file)
                print(
                    f"  {backend:10} {label:9}: {wall:5.1f} s wall = {n / wall:8,.0f} lines/s"
                    f" (CPU {cpu:.1f} s = {n / cpu:,.0f}/s) [{out.splitlines()[0]}]"
                )


def make_bank_db(path: Path, words: np.ndarray) -> None:
    """A migrated SQLite database with one PDQ bank of these hashes (data generation,
    not measured: rows written raw, indexes rebuilt once at the end)."""
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    BankStore(db).create_bank("big", BankKind.PDQ)
    db.dispose()
    con = sqlite3.connect(path)
    indexes = con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='hash_entries'"
        " AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:
        con.execute(f"DROP INDEX {name}")
    now = "2026-11-25 00:00:00.000000"
    hexes = words_to_hex(words)
    step = 500_000
    for start in range(0, len(hexes), step):
        con.executemany(
            "INSERT INTO hash_entries (bank_id, value, source, added_by, reason, created_at)"
            " VALUES (1, ?, 'bench', 'bench', '', ?)",
            ((h, now) for h in hexes[start : start + step]),
        )
    for _, sql in indexes:
        con.execute(sql)
    con.commit()
    con.close()


LOAD = """
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from warden.config import Settings
from warden.media.matcher import BankMatcher
from warden.services.bank_sync import BankSync, bank_sync
from warden.store.banks import BankStore
from warden.store.database import Database
imported = time.perf_counter() - t0
settings = Settings(data_dir=Path(sys.argv[1]))
store = BankStore(Database(settings.database_url))
matcher = BankMatcher()
sync = bank_sync(settings, store, matcher) if sys.argv[2] == "saved" else BankSync(store, matcher)
t1 = time.perf_counter()
sizes = sync.load()
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"load": time.perf_counter() - t1, "imports": imported,
  "rss_mb": int(status["VmHWM"].split()[0]) / 1024, "now_mb": int(status["VmRSS"].split()[0]) / 1024,
  "arrays_mb": matcher.nbytes() / 2**20, "sizes": sizes}))
"""


# `warden hashes match <pdq>` without the CLI's imports and with warm=False (its few
# queries in NumPy, numba not imported): what the command costs once the CLI imports
# only what it needs
MATCH = """
import sys
from pathlib import Path
from warden.config import Settings
from warden.domain.verdict import FrameHash
from warden.media.matcher import BankMatcher
from warden.services.bank_sync import bank_sync
from warden.store.banks import BankStore
from warden.store.database import Database
settings = Settings(data_dir=Path(sys.argv[1]))
matcher = BankMatcher()
bank_sync(settings, BankStore(Database(settings.database_url)), matcher, warm=False).load()
for m in matcher.match("", (FrameHash(0, sys.argv[2], 100),)):
    print("\u2502 " + " \u2502 ".join([m.bank.name, m.bank.action.value, str(m.entry_id)]) + " \u2502")
"""


def child(args: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    wall = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{args[:3]} failed:\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout


def run_start(n: int, rng: np.random.Generator) -> None:
    with tempfile.TemporaryDirectory(prefix="warden-bench-") as tmp:
        data = Path(tmp)
        words = random_words(rng, n)
        t0 = time.perf_counter()
        make_bank_db(data / "warden.db", words)
        print(f"\n[start] {n:,} entries (database generated in {time.perf_counter() - t0:.0f} s)")
        py = sys.executable
        for mode, what in (
            ("rebuild", "built from the table (baseline: every start before)"),
            ("saved", "first start with saving (builds, then saves)"),
            ("saved", "opened from the saved index"),
        ):
            wall, out = child([py, "-c", LOAD, str(data), mode])
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"  {what}: load {r['load']:.2f} s (process {wall:.2f} s, imports "
                f"{r['imports']:.2f} s), peak RSS {r['rss_mb']:,.0f} MiB (VmHWM; now {r['now_mb']:,.0f}),"
                f" arrays {r['arrays_mb']:,.0f} MiB"
            )
        target = int(rng.integers(0, n))
        query = flip(rng, words[target], 12)
        qhex = words_to_hex(query[None, :])[0]
        env = dict(os.environ, WARDEN_DATA_DIR=str(data))
        cli = [str(Path(sys.executable).with_name("warden")), "hashes", "match", qhex]
        py_match = [sys.executable, "-c", MATCH, str(data), qhex]
        t1 = time.perf_counter()
        brute = set((np.nonzero(popcount_distance(words, query) <= 31)[0] + 1).tolist())
        brute_s = time.perf_counter() - t1
        for label, args in (
            ("`warden hashes match <pdq>`", cli),
            ("same, lean (warm=False)", py_match),
        ):
            walls = []
            for _ in range(3):
                wall, out = child(args, env)
                walls.append(wall)
            rows = [[f.strip() for f in line.split("\u2502")] for line in out.splitlines()]
            entries = {int(r[3]) for r in rows if len(r) > 3 and r[1] == "big"}
            print(
                f"  {label} whole process: {min(walls):.2f} s best of 3 "
                f"({', '.join(f'{w:.2f}' for w in walls)}); entries {sorted(entries)} vs brute "
                f"force {sorted(brute)} ({brute_s:.2f} s in-process, table already in memory): "
                f"{'same' if entries == brute else 'DIFFERENT'}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--brute", type=int, default=5)
    parser.add_argument("--import-n", type=int, default=300_000)
    parser.add_argument("--start-sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--cli-import-n", type=int, default=1_000_000)
    parser.add_argument(
        "--baseline", type=Path, help="a copy of the tree before (git archive HEAD | tar -x)"
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--skip-index", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    if not args.skip_index:
        for n in args.sizes:
            run_index(n, args.queries, args.brute, rng)
    running = None
    if (args.import_n or args.cli_import_n) and not args.no_postgres:
        sys.path.insert(0, str(ROOT))
        from tests.servers.postgres import start_postgres  # test helper

        running = start_postgres()
    try:
        if args.import_n:
            with tempfile.TemporaryDirectory(prefix="warden-bench-") as tmp:
                run_import(f"sqlite:///{tmp}/import.db", "SQLite", args.import_n, rng)
            if running is not None:
                url = running.server.create_database("bench_import")
                run_import(url, "PostgreSQL", args.import_n, rng)
        if args.cli_import_n:
            server = running.server if running is not None else None
            run_import_cli(
                args.cli_import_n,
                args.baseline,
                server.create_database if server is not None else None,
                rng,
            )
    finally:
        if running is not None:
            from tests.servers.postgres import stop_postgres

            stop_postgres(running)
    for n in args.start_sizes:
        run_start(n, rng)


if __name__ == "__main__":
    main()
